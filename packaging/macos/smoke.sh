#!/usr/bin/env bash
# Smoke test of the Mac app on a real Mac: what no Linux CI can run. Prints one PASS/FAIL line
# per step and exits non-zero if any step failed.
#
#   packaging/macos/smoke.sh [--app PATH] [--replace]
#
# Steps: build Foolock.app (packaging/macos/build-app.sh; --app PATH uses one you have), copy it
# to ~/Applications and register it with Launch Services, `foolock install`, check
# `launchctl print`, wait for the server, take and release a lock with the CLI, check the
# keep-awake assertion comes and goes with it, start a second agent (it must exit), post a
# notification (a takeover: look for it on screen), reinstall right after an uninstall (the
# launchd race), quit the agent by Apple Event (it must stop gracefully), and `foolock
# uninstall`. It uses your real login item, config and state directory, so it refuses to run
# while a login item is installed unless you pass --replace (which leaves none installed).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 2

app_src="" replace=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --app) app_src=$2; shift 2 ;;
        --replace) replace=1; shift ;;
        -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "smoke: unknown argument $1" >&2; exit 2 ;;
    esac
done

label=io.foolock.agent
service="gui/$(id -u)/$label"
plist="$HOME/Library/LaunchAgents/$label.plist"
log="$HOME/Library/Logs/foolock/foolock.log"
app="$HOME/Applications/Foolock.app"
bin="$app/Contents/MacOS/foolock"
lsregister=/System/Library/Frameworks/CoreServices.framework/Frameworks/LaunchServices.framework/Support/lsregister
passed=0 failed=0

pass() { printf 'PASS  %s\n' "$1"; passed=$((passed + 1)); }
fail() { printf 'FAIL  %s: %s\n' "$1" "$2"; failed=$((failed + 1)); }
skip() { printf 'SKIP  %s: %s\n' "$1" "$2"; }
finish() {
    printf 'smoke: %d passed, %d failed\n' "$passed" "$failed"
    [[ $failed -eq 0 ]]
    exit
}

if [[ $(uname) != Darwin ]]; then
    echo "smoke: this is for macOS" >&2
    exit 2
fi
if [[ -e $plist && $replace -eq 0 ]]; then
    echo "smoke: a foolock login item is installed ($plist); pass --replace to test anyway" >&2
    exit 2
fi

# Log lines written after this point (the agent appends to one file across runs).
log_mark() { if [[ -f $log ]]; then wc -l <"$log" | tr -d ' '; else echo 0; fi; }
log_since() { tail -n +"$(($1 + 1))" "$log" 2>/dev/null; }

# Waits up to $2 seconds for the agent's log, after line $1, to contain $3.
wait_log() {
    local mark=$1 seconds=$2 text=$3 _
    for _ in $(seq 1 $((seconds * 10))); do
        log_since "$mark" | grep -q -- "$text" && return 0
        sleep 0.1
    done
    return 1
}

step="build the app"
if [[ -z $app_src ]]; then
    if packaging/macos/build-app.sh >/tmp/foolock-smoke-build.log 2>&1; then
        app_src=target/macos/Foolock.app
        pass "$step"
    else
        fail "$step" "build-app.sh failed; see /tmp/foolock-smoke-build.log"
        finish
    fi
else
    skip "$step" "using $app_src"
fi

step="copy the app to ~/Applications and register it with Launch Services"
mkdir -p "$HOME/Applications"
rm -rf "$app"
if ditto "$app_src" "$app" && codesign --verify --strict "$app" && "$lsregister" -f "$app"; then
    pass "$step"
else
    fail "$step" "could not copy, verify or register $app"
    finish
fi

step="foolock install"
mark=$(log_mark)
if out=$("$bin" install 2>&1); then
    pass "$step"
else
    fail "$step" "$out"
    finish
fi

step="launchctl print: loaded, running the app's binary"
if print=$(launchctl print "$service" 2>&1) && grep -q "program = $bin" <<<"$print" &&
    grep -q "state = running" <<<"$print"; then
    pass "$step"
else
    fail "$step" "$(head -n 20 <<<"$print")"
fi

step="foolock install --status: installed and switched on"
status=$("$bin" install --status 2>&1)
if grep -q "login item (launchd agent): installed$" <<<"$status" && ! grep -q "switched off" <<<"$status"; then
    pass "$step"
else
    fail "$step" "$status"
fi

step="the agent serves"
if wait_log "$mark" 20 "foolock listening on"; then
    port=$(log_since "$mark" | sed -n 's/^foolock listening on [^;]*:\([0-9][0-9]*\);.*/\1/p' | tail -n 1)
    export FOOLOCK_SERVER="http://127.0.0.1:$port"
    pass "$step ($FOOLOCK_SERVER)"
else
    fail "$step" "no 'foolock listening on' in $log after 20s"
    finish
fi

job="smoke-$$"
step="take and release a lock with the CLI"
if "$bin" acquire "$job" --client smoke-a >/dev/null &&
    "$bin" status "$job" | grep -q smoke-a &&
    "$bin" release "$job" --client smoke-a >/dev/null &&
    ! "$bin" status "$job" | grep -q smoke-a; then
    pass "$step"
else
    fail "$step" "acquire/status/release of $job did not behave"
fi

step="keep awake: an idle-sleep assertion while a job is held, none after"
reason="foolock is refereeing locks"
# Waits up to 5 s for `pmset -g assertions` to list foolock's assertion ($1=yes) or not ($1=no).
assertion() {
    local _
    for _ in $(seq 1 50); do
        if pmset -g assertions | grep -q "$reason"; then
            [[ $1 == yes ]] && return 0
        else
            [[ $1 == no ]] && return 0
        fi
        sleep 0.1
    done
    return 1
}
if ! "$bin" acquire "$job" --client smoke-a >/dev/null; then
    fail "$step" "smoke-a could not take $job"
elif ! assertion yes; then
    fail "$step" "no PreventUserIdleSystemSleep assertion named \"$reason\" within 5s"
elif ! "$bin" release "$job" --client smoke-a >/dev/null || ! assertion no; then
    fail "$step" "the assertion outlived the last held job by 5s"
else
    pass "$step"
fi

step="a second agent sees the first and exits 0"
if out=$("$bin" agent 2>&1 </dev/null) && grep -q "already running" <<<"$out"; then
    pass "$step"
elif grep -q "running without a tray icon" <<<"$out"; then
    skip "$step" "no GUI session here (the headless server refuses instead)"
else
    fail "$step" "$out"
fi

step="post a notification (a takeover; look for \"$job taken over\" on screen)"
if "$bin" acquire "$job" --client smoke-a --ttl 1s >/dev/null; then
    sleep 8 # the 1 s lease and the default 5 s grace period lapse
    if "$bin" acquire "$job" --client smoke-b >/dev/null; then
        sleep 2
        if log_since "$mark" | grep -E -q "notifications are off|cannot post desktop notifications"; then
            fail "$step" "$(log_since "$mark" | grep -E "notifications are off|cannot post" | tail -n 1)"
        else
            pass "$step"
        fi
        "$bin" release "$job" --client smoke-b >/dev/null
    else
        fail "$step" "smoke-b could not take over $job"
    fi
else
    fail "$step" "smoke-a could not take $job"
fi

step="uninstall then install at once (launchd still letting go)"
mark=$(log_mark)
if out=$("$bin" uninstall 2>&1 && "$bin" install 2>&1); then
    pass "$step"
else
    fail "$step" "$out"
fi

step="quit by Apple Event: the agent stops gracefully and stays stopped"
wait_log "$mark" 20 "foolock listening on" || true
mark=$(log_mark)
if quit=$(osascript -e "tell application id \"$label\" to quit" 2>&1); then
    if wait_log "$mark" 10 "server stopped; quitting"; then
        sleep 1
        if launchctl print "$service" 2>/dev/null | grep -q "state = running"; then
            fail "$step" "launchd restarted it (it must exit 0)"
        else
            pass "$step"
        fi
    else
        fail "$step" "no 'server stopped; quitting' in the log within 10s"
    fi
elif grep -q -- "-1743" <<<"$quit"; then
    skip "$step" "this terminal may not send Apple events (System Settings → Privacy & Security → Automation)"
else
    fail "$step" "$quit"
fi

step="foolock uninstall: unloaded, plist gone"
if out=$("$bin" uninstall 2>&1) && ! launchctl print "$service" >/dev/null 2>&1 && [[ ! -e $plist ]]; then
    pass "$step"
else
    fail "$step" "$out"
fi

rm -rf "$app"
finish
