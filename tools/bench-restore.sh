#!/usr/bin/env bash
# Time `etcdsnap restore` against etcd's own restore and the SHA-256 floor on
# one snapshot, pair by pair, and its peak anonymous memory.
#
#   tools/bench-restore.sh SNAPSHOT [RUNS]     (RUNS default 3; medians reported)
#
# Jobs, each run once per round, interleaved, page cache warm (bench-lib.sh's
# warm; BENCH_COLD=1 drops SNAPSHOT from the cache before every job instead):
#   sha256        openssl dgst -sha256 SNAPSHOT: one read and hash of the input
#   ours-1        etcdsnap restore SNAPSHOT --data-dir D (one member)
#   etcdutl-1     etcdutl snapshot restore SNAPSHOT --data-dir D (etcd 3.5.35)
#   ours-3        etcdsnap restore --members-out D, three members
#   etcdutl-3     three etcdutl snapshot restore runs, one per member
# Ratios within each round, then the median over the rounds:
#   etcdutl-1 / ours-1 (target >= 3), ours-1 / sha256 (target <= 1.3),
#   etcdutl-3 / ours-3 (target >= 5).
# Then the peak RssAnon of ours-1 and ours-3 (target <= 64 MiB).
# Outputs go to a temporary directory beside SNAPSHOT (same file system).
# Environment: ETCDSNAP (default target/release/etcdsnap, built if missing),
#   ETCDSNAP_ORACLES (default <repo>/.oracles).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 SNAPSHOT [RUNS]" >&2; exit 2; }
file=$1
runs=${2:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
etcdsnap=${ETCDSNAP:-$repo/target/release/etcdsnap}
[ -x "$etcdsnap" ] || (cd "$repo" && cargo build -q --release -p etcdsnap)
etcdutl=${ETCDSNAP_ORACLES:-$repo/.oracles}/etcd-3.5.35/etcdutl
[ -x "$etcdutl" ] || { echo "need etcdutl 3.5.35 at $etcdutl (tools/install-oracles.sh)" >&2; exit 1; }
. "$repo/tools/bench-lib.sh"
tmp=$(mktemp -d "$(dirname "$(realpath "$file")")/bench-restore-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
warm "$file"
echo "file: $file ($(stat -c %s "$file") bytes); $runs rounds; cache: ${BENCH_COLD:+cold}${BENCH_COLD:-warm}" >&2
machine "$file"

cluster=n1=http://127.0.0.1:2380,n2=http://127.0.0.1:2381,n3=http://127.0.0.1:2382
etcdutl3() {
  local i
  for i in 1 2 3; do
    "$etcdutl" snapshot restore "$file" --name "n$i" --initial-cluster "$cluster" \
      --initial-advertise-peer-urls "http://127.0.0.1:238$((i - 1))" --data-dir "$tmp/out/n$i"
  done
}
# cmd NAME: sets CMD to the job's command (and clears what it writes).
cmd() {
  rm -rf "$tmp/out"
  case $1 in
    sha256) CMD=(openssl dgst -sha256 "$file") ;;
    ours-1) CMD=("$etcdsnap" restore "$file" -q --data-dir "$tmp/out") ;;
    etcdutl-1) CMD=("$etcdutl" snapshot restore "$file" --data-dir "$tmp/out") ;;
    ours-3) CMD=("$etcdsnap" restore "$file" -q --initial-cluster "$cluster" --members-out "$tmp/out") ;;
    etcdutl-3) CMD=(etcdutl3) ;;
  esac
}
names=(sha256 ours-1 etcdutl-1 ours-3 etcdutl-3)
declare -A t
for _ in $(seq "$runs"); do
  for n in "${names[@]}"; do
    cmd "$n"
    [ -z "${BENCH_COLD:-}" ] || cold "$file"
    t[$n]+="$(secs "${CMD[@]}") "
  done
done
col() { printf '%s\n' ${t[$1]}; }
ratio() { paste <(col "$1") <(col "$2") | awk '{print $1 / $2}' | median; }
printf '%-12s %10s\n' "job" "median_s"
for n in "${names[@]}"; do printf '%-12s %10.3f\n' "$n" "$(col "$n" | median)"; done
printf '\n%-40s %8s\n' "ratio (median of per-round ratios)" ""
printf '%-40s %8.2f\n' "etcdutl-1 / ours-1 (target >= 3)" "$(ratio etcdutl-1 ours-1)"
printf '%-40s %8.2f\n' "ours-1 / sha256 (target <= 1.3)" "$(ratio ours-1 sha256)"
printf '%-40s %8.2f\n' "etcdutl-3 / ours-3 (target >= 5)" "$(ratio etcdutl-3 ours-3)"
cmd ours-1
read -r a1 _ < <(mem "${CMD[@]}")
cmd ours-3
read -r a3 _ < <(mem "${CMD[@]}")
rm -rf "$tmp/out"
printf '\n%-40s %8s\n' "peak RssAnon MB ours-1 (target <= 64)" "$a1"
printf '%-40s %8s\n' "peak RssAnon MB ours-3 (target <= 64)" "$a3"
