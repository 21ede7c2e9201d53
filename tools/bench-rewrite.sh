#!/usr/bin/env bash
# Time `rewrite` against its baselines on one snapshot, pair by pair, and the
# peak anonymous memory of each job.
#
#   tools/bench-rewrite.sh SNAPSHOT [RUNS] [TENANT_PREFIX]   (RUNS default 3; medians reported)
#
# Jobs, each run once per round, interleaved, page cache warm (bench-lib.sh warm:
# the input dropped from the cache and read once, so every run starts from the
# same cache state; BENCH_KEEP_CACHE=1 keeps the cache as it is):
#   sha256      openssl dgst -sha256 SNAPSHOT: the SHA-256 floor (reading and
#               hashing the input once)
#   bump        etcdsnap rewrite --bump-revision 1000000000 --mark-compacted (keep all)
#   restore     etcdutl snapshot restore --bump-revision 1000000000 --mark-compacted
#               (etcd 3.5.35's, into a fresh data dir)
#   restore-3.6, restore-3.7
#               the same with etcd 3.6.16's and 3.7.3's etcdutl, where installed
#   move        etcdsnap rewrite --include P --rename P=/moved/P --bump-revision
#               1000000000 --mark-compacted: a tenant move, P = TENANT_PREFIX
#               (default /registry/configmaps/, one resource of the five
#               tools/gen-large-snapshot.sh writes)
#   verify      etcdsnap verify SNAPSHOT
#   status      etcdsnap status SNAPSHOT, beside etcdutl snapshot status (3.5.35)
# Ratios are taken within each round (bump/sha256, restore/bump, move/sha256,
# verify/sha256, etcdutl-status/status), then the median over the rounds.
# Outputs go to a temporary directory beside SNAPSHOT (same file system).
# Environment: ETCDSNAP (default target/release/etcdsnap, built if missing),
#   ETCDSNAP_ORACLES (default <repo>/.oracles).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 SNAPSHOT [RUNS] [TENANT_PREFIX]" >&2; exit 2; }
file=$1
runs=${2:-3}
prefix=${3:-/registry/configmaps/}
repo=$(cd "$(dirname "$0")/.." && pwd)
etcdsnap=${ETCDSNAP:-$repo/target/release/etcdsnap}
[ -x "$etcdsnap" ] || (cd "$repo" && cargo build -q --release -p etcdsnap)
etcdutl=${ETCDSNAP_ORACLES:-$repo/.oracles}/etcd-3.5.35/etcdutl
[ -x "$etcdutl" ] || { echo "need etcdutl 3.5.35 at $etcdutl (tools/install-oracles.sh)" >&2; exit 1; }
. "$repo/tools/bench-lib.sh"
tmp=$(mktemp -d "$(dirname "$(realpath "$file")")/bench-rewrite-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
warm "$file"
echo "file: $file ($(stat -c %s "$file") bytes); $(nproc) CPUs; tenant prefix $prefix; $runs rounds" >&2
machine "$file"

bump=(--bump-revision 1000000000 --mark-compacted)
# cmd NAME: sets CMD to the job's command (and clears what it writes).
cmd() {
  rm -rf "$tmp/restored" "$tmp"/*.db
  case $1 in
    sha256) CMD=(openssl dgst -sha256 "$file") ;;
    bump) CMD=("$etcdsnap" rewrite "$file" "$tmp/bump.db" "${bump[@]}") ;;
    restore) CMD=("$etcdutl" snapshot restore "$file" --data-dir "$tmp/restored" "${bump[@]}") ;;
    restore-3.*) CMD=("$oracles/${newer[$1]}/etcdutl" snapshot restore "$file" --data-dir "$tmp/restored" "${bump[@]}") ;;
    move) CMD=("$etcdsnap" rewrite "$file" "$tmp/move.db" --include "$prefix" --rename "$prefix=/moved$prefix" "${bump[@]}") ;;
    verify) CMD=("$etcdsnap" verify "$file") ;;
    status) CMD=("$etcdsnap" status "$file") ;;
    etcdutl-status) CMD=("$etcdutl" snapshot status "$file" -w json) ;;
  esac
}
names=(sha256 bump restore move verify status etcdutl-status)
oracles=$(dirname "$(dirname "$etcdutl")")
declare -A newer=([restore-3.6]=etcd-3.6.16 [restore-3.7]=etcd-3.7.3)
for n in restore-3.6 restore-3.7; do
  [ -x "$oracles/${newer[$n]}/etcdutl" ] && names+=("$n")
done
declare -A t
for _ in $(seq "$runs"); do
  for n in "${names[@]}"; do
    cmd "$n"
    t[$n]+="$(secs "${CMD[@]}") "
  done
done
cmd none
col() { printf '%s\n' ${t[$1]}; }
# ratio A B: median over rounds of A_i / B_i.
ratio() { paste <(col "$1") <(col "$2") | awk '{print $1 / $2}' | median; }
printf '%-16s %10s\n' "job" "median_s"
for n in "${names[@]}"; do printf '%-16s %10.3f\n' "$n" "$(col "$n" | median)"; done
printf '\n%-34s %8s\n' "ratio (median of per-round ratios)" ""
printf '%-34s %8.2f\n' "bump / sha256 (target <= 1.4)" "$(ratio bump sha256)"
printf '%-34s %8.2f\n' "restore / bump (target >= 3)" "$(ratio restore bump)"
for n in restore-3.6 restore-3.7; do
  [ -n "${t[$n]:-}" ] && printf '%-34s %8.2f\n' "$n / bump" "$(ratio "$n" bump)"
done
printf '%-34s %8.2f\n' "move / sha256 (target <= 1.2)" "$(ratio move sha256)"
printf '%-34s %8.2f\n' "verify / sha256 (target <= 1.05)" "$(ratio verify sha256)"
printf '%-34s %8.2f\n' "etcdutl-status / status (>= 3)" "$(ratio etcdutl-status status)"

printf '\n%-16s %12s %12s\n' "memory" "RssAnon_MB" "VmHWM_MB"
for n in bump move verify status; do
  cmd "$n"
  read -r a h < <(mem "${CMD[@]}")
  printf '%-16s %12s %12s\n' "$n" "$a" "$h"
done
