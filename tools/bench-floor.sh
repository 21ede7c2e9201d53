#!/usr/bin/env bash
# The hashing floor next to each command, on this machine: check the
# README's "at the floor" claims on your own hardware.
#
#   tools/bench-floor.sh SNAPSHOT [RUNS]      (RUNS default 5; medians of per-round ratios)
#
# Per round, interleaved, each from the same page-cache state (bench-lib.sh
# warm; BENCH_COLD=1: dropped from the cache before every command instead):
#   cat        cat SNAPSHOT > /dev/null: reading it once
#   sha256     openssl dgst -sha256 SNAPSHOT: reading and hashing it once (the floor)
#   verify     etcdsnap verify SNAPSHOT
#   status     etcdsnap status --verify-trailer SNAPSHOT
#   bump       etcdsnap rewrite --bump-revision 1000000000 --mark-compacted (keep all: patched)
#   rebuild    the same with --rebuild (every page written anew)
#   compact    etcdsnap bolt compact
# and prints each command's median seconds and its median ratio to sha256.
# Environment: ETCDSNAP (default target/release/etcdsnap, built if missing),
#   ETCDSNAP_SEQUENTIAL=map|read to compare the two ways sequential passes read.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 SNAPSHOT [RUNS]" >&2; exit 2; }
file=$1
runs=${2:-5}
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/tools/bench-lib.sh"
bin=${ETCDSNAP:-$repo/target/release/etcdsnap}
if [ -z "${ETCDSNAP:-}" ]; then
  (cd "$repo" && cargo build --release -q -p etcdsnap)
fi
machine "$file"
tmp=$(mktemp -d "$(dirname "$file")/etcdsnap-floor-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "file: $file ($(stat -c %s "$file") bytes); $runs rounds; $([ -n "${BENCH_COLD:-}" ] && echo cold || echo warm)" >&2

names=(cat sha256 verify status bump rebuild compact)
declare -A cmd=(
  [cat]="cat '$file'"
  [sha256]="openssl dgst -sha256 '$file'"
  [verify]="'$bin' verify '$file'"
  [status]="'$bin' status --verify-trailer '$file'"
  [bump]="'$bin' rewrite '$file' '$tmp/bump.db' --force --bump-revision 1000000000 --mark-compacted"
  [rebuild]="'$bin' rewrite '$file' '$tmp/rebuild.db' --force --bump-revision 1000000000 --mark-compacted --rebuild"
  [compact]="'$bin' bolt compact '$file' '$tmp/compact.db' --force"
)
declare -A t ratio
for ((r = 1; r <= runs; r++)); do
  declare -A now=()
  for n in "${names[@]}"; do
    if [ -n "${BENCH_COLD:-}" ]; then cold "$file"; else warm "$file"; fi
    now[$n]=$(secs bash -c "${cmd[$n]}")
    t[$n]="${t[$n]:-} ${now[$n]}"
  done
  for n in "${names[@]}"; do
    ratio[$n]="${ratio[$n]:-} $(echo "${now[$n]} / ${now[sha256]}" | bc -l)"
  done
done
printf '%-10s %10s %14s\n' command median_s "/ sha256"
for n in "${names[@]}"; do
  printf '%-10s %10.3f %14.2f\n' "$n" "$(printf '%s\n' ${t[$n]} | median)" "$(printf '%s\n' ${ratio[$n]} | median)"
done
