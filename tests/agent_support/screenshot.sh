#!/bin/bash
# Renders assets/screenshots/menu.png: the agent's menu opened in a real tray host
# (xfce4-panel's status tray) on a private X server and session bus.
# Needs: xvfb dbus-x11 xfce4-panel xdotool imagemagick curl. Run from the repository root
# after `cargo build`:   tests/agent_support/screenshot.sh [path/to/foolock]
set -euo pipefail
bin=$(realpath "${1:-target/debug/foolock}")
out=$(realpath assets/screenshots)/menu.png
if [ -z "${FOOLOCK_SHOT_INNER:-}" ]; then
    export FOOLOCK_SHOT_INNER=1
    exec xvfb-run -a -s "-screen 0 800x600x24" dbus-run-session -- "$0" "$bin"
fi
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT
export HOME=$work NO_AT_BRIDGE=1 FOOLOCK_CONFIG=$work/config.toml RUST_LOG=warn
xfce4-panel >/dev/null 2>&1 &      # the default panel has a status tray next to the clock
sleep 3
port=18080
"$bin" agent --listen "0.0.0.0:$port" --grace-period 30s >/dev/null &
sleep 3
lock() { curl -fsS -XPOST "http://127.0.0.1:$port/lock?client=$1&job=$2&ttl=$3" >/dev/null; }
lock laptop1 backup 5m
lock studio-mac photos-import 2m
lock phone sync 2s
sleep 4                              # sync's lease lapses into its grace period
xdotool mousemove 676 13 click 3     # right-click the tray icon (left of the clock)
sleep 1.5
xdotool mousemove 450 68; sleep 1; xdotool mousemove 452 69   # open backup's submenu
sleep 1.5
import -window root -crop 660x240+140+0 +repage "$out"
echo "wrote $out"
