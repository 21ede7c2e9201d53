#!/usr/bin/env bash
# Build every fuzz target and run each one briefly (a smoke test).
#
#   tools/fuzz-build.sh [SECONDS]      (per target, default 20; 0 = build only)
#
# The fuzz crate is its own cargo workspace in fuzz/ (cargo-fuzz layout,
# libfuzzer-sys). It needs nightly features, enabled on stable with
# RUSTC_BOOTSTRAP=1; cargo-fuzz is installed (cargo install --locked) if missing.
# Corpora go to fuzz/corpus/<target>/ (seeded from fuzz/seeds/), crashes to
# fuzz/artifacts/<target>/ (both git-ignored). Exit status is non-zero when a
# target crashes, times out (-timeout=5 per input) or exceeds 2 GB RSS.
set -euo pipefail
secs=${1:-20}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

cargo fuzz build --fuzz-dir fuzz
[ "$secs" -gt 0 ] || exit 0

targets=$(cargo fuzz list --fuzz-dir fuzz)

# Seed corpora: whole files for the raw-bytes target, a few mutation scripts
# (flags byte, then 5-byte records; see fuzz/src/lib.rs) for the fixture target.
seed=fuzz/corpus/bolt_open_check_iterate
mkdir -p "$seed"
cp fuzz/seeds/*.db "$seed/"
seed=fuzz/corpus/bolt_mutate_fixture
mkdir -p "$seed"
printf '\x00' > "$seed/plain-4096"
printf '\x01' > "$seed/plain-1024"
printf '\x02\x0e\x10\x00\x00\x07' > "$seed/meta0-root-7-fixed"
printf '\x03\x0e\x30\x00\x00\xff' > "$seed/meta0-freelist-max-fixed"
printf '\x00\x08\x0a\x00\x05\x00' > "$seed/page5-count-0"

status=0
for t in $targets; do
  echo "== fuzz $t for ${secs}s" >&2
  if ! cargo fuzz run --fuzz-dir fuzz "$t" -- \
      -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1; then
    echo "FAILED: $t (see fuzz/artifacts/$t/)" >&2
    status=1
  fi
done
exit $status
