#!/usr/bin/env bash
# Mutation testing with cargo-mutants: it changes one spot of the product at a time (a
# comparison flipped, a function body replaced by a default value, ...), runs the tests that
# should notice, and reports every change that no test noticed ("missed").
#
#   tests/mutants.sh              every area below, in turn (hours on two cores)
#   tests/mutants.sh ci           the bounded part the workflow runs: a quarter of the engine's
#                                 mutants, a different quarter each day (MUTANTS_SHARD=k/n
#                                 chooses one, e.g. MUTANTS_SHARD=0/1 for all of them)
#   tests/mutants.sh AREA...      only these areas: engine, service, store, lease (all of
#                                 `foolock lock`: lease keeper, supervisor, the run)
#
# Mutants that no test can tell from the original (equivalent mutants) are listed, each with
# the reason, in .cargo/mutants.toml. Results go to target/mutants/AREA/mutants.out, and a
# summary to target/mutants/summary.txt. Exits non-zero if any mutant was missed.
# MUTANTS_TARGET_DIR: where the areas other than the engine build (default
# target/mutants-build). MUTANTS_ARGS: more arguments for cargo-mutants, e.g. `--iterate`
# to test again only the mutants the last run of each area did not catch.
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/mutants
mkdir -p "$out"
summary="$out/summary.txt"

if ! cargo mutants --version >/dev/null 2>&1; then
    echo "cargo-mutants is not installed: cargo install cargo-mutants --locked" >&2
    exit 1
fi

# The platform module's unit tests take most of the library's test time and cannot notice a
# change in these areas.
SKIP_SLOW="-- -- --skip platform::"
# The library's tests outside the client (the CLI's own unit tests).
NOT_CLIENT="--skip platform:: --skip engine:: --skip service:: --skip store:: --skip api:: --skip web:: --skip server:: --skip config:: --skip time:: --skip exit::"
# Areas that build the binary do so in a directory of their own (see target_dir_for), without
# the tray: fewer dependencies to build there, and nothing they test needs a GUI.
HEADLESS="--no-default-features"

# Each area: the files mutated, and the tests that should notice (the smallest selection that
# covers what the area promises, since every mutant rebuilds and reruns them).
area_args() {
    case $1 in
        # The pure engine: its own unit tests, which fake the clock.
        engine) echo "-f src/engine/*.rs -C --lib -- engine::" ;;
        # What must be on disk before a reply, and the expiry timer: the unit tests (the
        # service's own, and the power cuts, which go through it) and the integration tests
        # that watch the state file and the timer, and the review bugs (an unsaved grant undone).
        service) echo "$HEADLESS -f src/service/*.rs -C --lib -C --test=long_poll -C --test=state_file -C --test=review_bugs $SKIP_SLOW" ;;
        # The state directory's files: the unit tests (the power-cut file system) and the
        # state file against the real binary.
        store) echo "$HEADLESS -f src/store.rs -f src/store/*.rs -C --lib -C --test=state_file $SKIP_SLOW" ;;
        # `foolock lock`: the lease keeper, the supervisor of the command (signals passed on,
        # SIGKILL after SIGTERM) and the run that joins them. The client's unit tests (the
        # library's other modules skipped) and tests/cli_lock.rs, which holds every test of
        # `foolock lock` against a real server. Those mostly wait on timers and processes, so
        # they run 6 at a time (the default is one per core), and 3 mutants are tested at
        # once, each in its own copy of the tree.
        lease) echo "$HEADLESS -j 3 -f src/client/lock/*.rs -C --lib -C --test=cli_lock -- -- --test-threads=6 $NOT_CLIENT" ;;
        *)
            echo "unknown area $1 (engine, service, store, lease)" >&2
            return 1
            ;;
    esac
}

# The engine's mutants build only the library's unit tests, so they share the project's
# target directory (dependencies are not built again). The other areas build the binary,
# which would overwrite target/debug/foolock with a mutant: they get a directory of their own.
target_dir_for() {
    case $1 in
        engine) echo "$PWD/target" ;;
        *) echo "${MUTANTS_TARGET_DIR:-$PWD/target/mutants-build}" ;;
    esac
}

# How many mutants cargo-mutants tests at once: its -j/--jobs among the words given, else
# CARGO_MUTANTS_JOBS, else 1.
jobs_in() {
    local jobs=${CARGO_MUTANTS_JOBS:-1} value_next=
    for word in "$@"; do
        if [[ -n $value_next ]]; then
            jobs=$word value_next=
            continue
        fi
        case $word in
            -j | --jobs) value_next=1 ;;
            --jobs=*) jobs=${word#--jobs=} ;;
            -j*) jobs=${word#-j} jobs=${jobs#=} ;;
        esac
    done
    echo "$jobs"
}

status=0
run_area() {
    local area=$1
    shift
    local words
    words=$(area_args "$area")
    # Split into words without expanding the globs: cargo-mutants matches them itself.
    local -a args more
    read -r -a args <<< "$words"
    read -r -a more <<< "${MUTANTS_ARGS:-}"
    # With several jobs, each tests its mutants in a copy of the tree of its own; one target
    # directory for all of them would have each overwrite the others' builds (a job would test
    # another job's mutant). Then each copy builds in its own target/, dependencies included.
    local -a target=(CARGO_TARGET_DIR="$(target_dir_for "$area")")
    if (($(jobs_in "$@" "${more[@]}" "${args[@]}") > 1)); then
        target=(-u CARGO_TARGET_DIR)
    fi
    echo "== mutants: $area $*"
    local started=$SECONDS rc=0
    env "${target[@]}" \
        cargo mutants --no-shuffle --colors never -o "$out/$area" "$@" "${more[@]}" "${args[@]}" || rc=$?
    # The target directory now holds the last mutant's build, newer than the sources here:
    # make them newer still, or the next `cargo test` would take that build as up to date.
    touch src/lib.rs
    local dir="$out/$area/mutants.out"
    {
        printf '%s (%s): caught %s, missed %s, timeout %s, unviable %s, in %ss; exit %s\n' \
            "$area" "${*:-all}" \
            "$(wc -l < "$dir/caught.txt")" "$(wc -l < "$dir/missed.txt")" \
            "$(wc -l < "$dir/timeout.txt")" "$(wc -l < "$dir/unviable.txt")" \
            "$((SECONDS - started))" "$rc"
        sed 's/^/  MISSED /' "$dir/missed.txt"
        sed 's/^/  TIMEOUT /' "$dir/timeout.txt"
    } >> "$summary"
    # 2: a mutant was missed. 3: only timeouts, i.e. mutants that made the tests hang, which
    # counts as noticed. Anything else is a broken run.
    case $rc in
        0 | 3) ;;
        *) status=1 ;;
    esac
}

: > "$summary"
case ${1:-all} in
    ci)
        shard=${MUTANTS_SHARD:-$((10#$(date -u +%j) % 4))/4}
        run_area engine --shard "$shard"
        ;;
    all)
        for area in engine service store lease; do
            run_area "$area"
        done
        ;;
    *)
        for area in "$@"; do
            run_area "$area"
        done
        ;;
esac
cat "$summary"
exit "$status"
