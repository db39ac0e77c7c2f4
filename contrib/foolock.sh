# foolock.sh: shell functions for devices that have curl and a POSIX shell but not the
# foolock CLI. Source it, then call the functions:
#
#   . /path/to/foolock.sh
#   FOOLOCK_SERVER=http://nas.local:8080 FOOLOCK_JOB=backup
#   if foolock_acquire 10m; then run_backup; foolock_release; fi
#
# Settings (environment or shell variables):
#   FOOLOCK_SERVER      server URL                 default http://localhost:8080
#   FOOLOCK_JOB         job name                   default "default"
#   FOOLOCK_CLIENT      this device's client id    default: the hostname's first label,
#                       lower-cased (the same id the foolock CLI derives)
#   FOOLOCK_AUTH_TOKEN  sent as "Authorization: Bearer ..." when set
#
# Functions print the server's JSON reply on stdout and return
#   0  the server said yes (HTTP 200)
#   1  it said no (held by someone else, not the holder, bad request)
#   3  the server could not be reached
#
#   foolock_acquire [TTL] [WAIT]  take or renew the lock (TTL and WAIT like 30s, 5m);
#                                 with WAIT the server holds the request until the job is
#                                 free or WAIT ends
#   foolock_release               give the lock back
#   foolock_status                who holds the job
#
# Only POSIX sh features and utilities (uname, od, tr, sed, tail) plus curl. Internal
# names start with _foolock_ so sourcing this file does not clobber yours.

# The client id: FOOLOCK_CLIENT, else the hostname up to the first dot, lower-cased (on a
# Mac the Bonjour LocalHostName, as the foolock CLI does).
_foolock_client() {
    if [ -n "${FOOLOCK_CLIENT:-}" ]; then
        printf '%s' "$FOOLOCK_CLIENT"
        return
    fi
    # A Mac's Bonjour name stays put across networks; elsewhere (no scutil) use uname -n.
    _foolock_host=$(scutil --get LocalHostName 2>/dev/null) || _foolock_host=
    if [ -z "$_foolock_host" ]; then
        _foolock_host=$(uname -n 2>/dev/null)
    fi
    _foolock_host=${_foolock_host%%.*}
    if [ -z "$_foolock_host" ]; then
        _foolock_host=foolock-client
    fi
    printf '%s' "$_foolock_host" | tr 'ABCDEFGHIJKLMNOPQRSTUVWXYZ' 'abcdefghijklmnopqrstuvwxyz'
}

# Percent-encodes a query value. Plain names pass through; anything else is encoded byte
# by byte (an encoded letter means the same as the letter, so this is always correct).
_foolock_urlencode() {
    case $1 in
    *[!A-Za-z0-9._~-]* | '')
        printf '%s' "$1" | od -An -tx1 -v | tr -d ' \n' | sed 's/\(..\)/%\1/g'
        ;;
    *)
        printf '%s' "$1"
        ;;
    esac
}

# _foolock_call METHOD QUERY [MAX_TIME]: one request; prints the body, returns 0/1/3.
_foolock_call() {
    _foolock_url="${FOOLOCK_SERVER:-http://localhost:8080}"
    _foolock_url="${_foolock_url%/}/lock?$2"
    _foolock_max=${3:-}
    # Build curl's arguments in "$@" (local to this function) so none is ever word-split.
    set -- -sS --connect-timeout 5 -X "$1" -w '\n%{http_code}'
    if [ -n "$_foolock_max" ]; then
        set -- "$@" --max-time "$_foolock_max"
    fi
    if [ -n "${FOOLOCK_AUTH_TOKEN:-}" ]; then
        set -- "$@" -H "Authorization: Bearer $FOOLOCK_AUTH_TOKEN"
    fi
    _foolock_out=$(curl "$@" "$_foolock_url")
    _foolock_code=$(printf '%s\n' "$_foolock_out" | tail -n 1)
    _foolock_body=$(printf '%s\n' "$_foolock_out" | sed '$d')
    if [ -n "$_foolock_body" ]; then
        printf '%s\n' "$_foolock_body"
    fi
    case $_foolock_code in
    200) return 0 ;;
    000 | '') return 3 ;;
    *) return 1 ;;
    esac
}

# The job and client part of every query.
_foolock_who() {
    printf 'job=%s&client=%s' \
        "$(_foolock_urlencode "${FOOLOCK_JOB:-default}")" \
        "$(_foolock_urlencode "$(_foolock_client)")"
}

# foolock_acquire [TTL] [WAIT]
foolock_acquire() {
    _foolock_q=$(_foolock_who)
    if [ -n "${1:-}" ]; then
        _foolock_q="$_foolock_q&ttl=$(_foolock_urlencode "$1")"
    fi
    if [ -n "${2:-}" ]; then
        # No overall time limit: the server ends the wait itself.
        _foolock_call POST "$_foolock_q&wait=$(_foolock_urlencode "$2")"
    else
        _foolock_call POST "$_foolock_q" 10
    fi
}

foolock_release() {
    _foolock_call DELETE "$(_foolock_who)" 10
}

foolock_status() {
    _foolock_call GET "job=$(_foolock_urlencode "${FOOLOCK_JOB:-default}")" 10
}
