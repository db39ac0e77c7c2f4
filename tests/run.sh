#!/usr/bin/env bash
# The whole test suite: lint, unit and integration tests (the tray ones on a virtual X
# display with a private D-Bus session), the hurl contract suite against a real server, and the
# .deb package. Needs the tools .ci/run installs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# Tests that call validators (desktop-file-validate, systemd-analyze) fail instead of skipping.
export FOOLOCK_REQUIRE_TOOLS=1
# The tray tests start their own Xvfb and D-Bus; under CI they fail rather than skip.
export CI=${CI:-true}

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy (default features, then server-only build)"
cargo clippy --all-targets -- -D warnings
cargo clippy --all-targets --no-default-features -- -D warnings

step "clippy for macOS, both architectures, with and without the tray (type-checks the Mac build)"
# Only the Rust std library is installed for these targets (no SDK, no linker), which is
# enough to type-check. DOCS_RS=1 makes mac-notification-sys skip its build script, which
# compiles Objective-C against the macOS SDK.
for target in aarch64-apple-darwin x86_64-apple-darwin; do
    DOCS_RS=1 cargo clippy --target "$target" --all-targets -- -D warnings
    DOCS_RS=1 cargo clippy --target "$target" --all-targets --no-default-features -- -D warnings
done

step "actionlint on the macOS workflow, shellcheck on the Mac scripts (they run only on a Mac)"
actionlint .github/workflows/*.yml
shellcheck packaging/macos/*.sh

step "cargo test (the tray tests start their own Xvfb and D-Bus session)"
cargo test

step "hurl contract suite against a real server"
workdir=$(mktemp -d)
trap 'kill "${server_pid:-0}" 2>/dev/null || true; rm -rf "$workdir"' EXIT
FOOLOCK_CONFIG="$workdir/config.toml" RUST_LOG=warn target/debug/foolock serve \
    --listen 127.0.0.1:0 --default-ttl 30s --grace-period 2s --state-dir "$workdir/state" \
    > "$workdir/server.out" &
server_pid=$!
for _ in $(seq 1 100); do
    grep -q 'listening on' "$workdir/server.out" 2>/dev/null && break
    sleep 0.1
done
addr=$(awk '/listening on/ { sub(";", "", $4); print $4; exit }' "$workdir/server.out")
[ -n "$addr" ] || { echo "server did not start"; exit 1; }
hurl --test --jobs 4 --variable "base=http://$addr" hurl/*.hurl
kill "$server_pid"
wait "$server_pid" 2>/dev/null || true

step "fuzzing: libFuzzer on the nightly toolchain, 15 s per target (corpus in fuzz/)"
fuzz_started=$SECONDS
# A debug build without a sanitizer: about half the release build's time, and overflow
# checks stay on. New inputs go to fuzz/corpus (not kept); seeds and regressions are kept.
cargo +nightly fuzz build --dev --sanitizer none
for target in query go_duration config state_file; do
    mkdir -p "fuzz/corpus/$target"
    fuzz_log="fuzz/corpus/$target.log"
    if ! cargo +nightly fuzz run --dev --sanitizer none "$target" "fuzz/corpus/$target" \
        "fuzz/seeds/$target" "fuzz/regressions/$target" -- -max_total_time=15 >"$fuzz_log" 2>&1; then
        tail -40 "$fuzz_log"
        echo "fuzz target $target failed; the input is in fuzz/artifacts/$target"
        exit 1
    fi
    echo "$target: $(grep -E '^Done' "$fuzz_log")"
done
echo "fuzzing took $((SECONDS - fuzz_started)) s, build included"

step "status page in a real browser (Debian's Chromium and chromedriver, headless)"
/usr/bin/python3 tests/browser/status_page.py target/debug/foolock

# Run through bash, not by its run bit: a lost bit must not skip the check (a missing script
# fails it).
step "Debian package"
bash packaging/ci-deb.sh

step "load test, short form (the full one and its figures: README, Reliability)"
load_started=$SECONDS
[ -x target/release/foolock ] || cargo build --release --locked
(cd load && cargo build --release --locked --quiet)
load/target/release/foolock-load --quick --bin target/release/foolock
echo "load test took $((SECONDS - load_started)) s"

# Last: it mutates the engine and rebuilds its unit tests many times (see the script).
step "mutation check: a quarter of the engine's mutants, rotated daily (tests/mutants.sh ci)"
bash tests/mutants.sh ci

step "all tests passed"
