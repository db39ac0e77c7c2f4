# foolock.sh: shell functions for devices that have curl and a POSIX shell but not the
# foolock CLI. Source it, then call the functions:
#
#   . /path/to/foolock.sh
#   FOOLOCK_SERVER=http://nas.local:8080
#   if foolock_acquire backup 10m; then run_backup; foolock_release backup; fi
#
# The functions and their arguments are the original foolock shell library's, so scripts
# written for it keep working:
#
#   foolock_acquire [JOB] [TTL] [WAIT]  take or renew JOB for TTL (default 30s); with WAIT the
#                                       server holds the request until the job is yours or
#                                       WAIT ends (TTL and WAIT like 90s, 5m, 1h30m)
#   foolock_release [JOB]               give JOB back
#   foolock_status [JOB]                who holds JOB
#   foolock_client_id                   print the client id the functions use
#
# JOB defaults to $FOOLOCK_JOB, then "default"; an empty argument means the default too.
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
#   1  it said no (held by someone else, or not yours to release)
#   2  usage error: too many arguments, a TTL or WAIT that is not a duration, or a request
#      the server rejects as malformed (HTTP 400); as the foolock CLI
#   3  the server could not be reached, or is not serving grants right now (HTTP 5xx)
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

# foolock_client_id: the id the other functions send, as in the original library.
foolock_client_id() {
    _foolock_client
    echo
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

# _foolock_usage FUNCTION MESSAGE: reports a usage error on stderr; returns 2.
_foolock_usage() {
    printf '%s: %s\n' "$1" "$2" >&2
    return 2
}

# _foolock_duration FUNCTION NAME VALUE: returns 0 if VALUE looks like a Go duration (90s,
# 1.5h, 1h30m), else reports a usage error and returns 2. The server checks it exactly; this
# catches an argument in the wrong place (a job name where a ttl belongs) before anything is sent.
_foolock_duration() {
    case $3 in
    [0-9.]*[a-z] | [0-9.]*µs)
        case $3 in
        *[!0-9.nsuµmh]*) ;;
        *) return 0 ;;
        esac
        ;;
    esac
    _foolock_usage "$1" "$2 must be a duration like 30s, 5m or 1h30m, not \"$3\""
}

# _foolock_call METHOD QUERY [MAX_TIME]: one request; prints the body, returns 0/1/2/3.
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
    400 | 404 | 405) return 2 ;;
    000 | '' | 5??) return 3 ;;
    *) return 1 ;;
    esac
}

# The job a function was given: its argument, else FOOLOCK_JOB, else "default".
_foolock_job() {
    if [ -n "${1:-}" ]; then
        printf '%s' "$1"
    else
        printf '%s' "${FOOLOCK_JOB:-default}"
    fi
}

# The job and client part of every query.
_foolock_who() {
    printf 'job=%s&client=%s' \
        "$(_foolock_urlencode "$(_foolock_job "${1:-}")")" \
        "$(_foolock_urlencode "$(_foolock_client)")"
}

# foolock_acquire [JOB] [TTL] [WAIT]
foolock_acquire() {
    if [ $# -gt 3 ]; then
        _foolock_usage foolock_acquire "at most 3 arguments: [job] [ttl] [wait]"
        return
    fi
    _foolock_ttl=${2:-30s}
    _foolock_duration foolock_acquire ttl "$_foolock_ttl" || return
    _foolock_q="$(_foolock_who "${1:-}")&ttl=$(_foolock_urlencode "$_foolock_ttl")"
    if [ -n "${3:-}" ]; then
        _foolock_duration foolock_acquire wait "$3" || return
        # No overall time limit: the server ends the wait itself.
        _foolock_call POST "$_foolock_q&wait=$(_foolock_urlencode "$3")"
    else
        _foolock_call POST "$_foolock_q" 10
    fi
}

# foolock_release [JOB]
foolock_release() {
    if [ $# -gt 1 ]; then
        _foolock_usage foolock_release "at most 1 argument: [job]"
        return
    fi
    _foolock_call DELETE "$(_foolock_who "${1:-}")" 10
}

# foolock_status [JOB]
foolock_status() {
    if [ $# -gt 1 ]; then
        _foolock_usage foolock_status "at most 1 argument: [job]"
        return
    fi
    _foolock_call GET "job=$(_foolock_urlencode "$(_foolock_job "${1:-}")")" 10
}
