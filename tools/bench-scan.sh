#!/usr/bin/env bash
# Macro benchmark: etcdsnap's full scan + check against `etcdutl snapshot status`
# (and the floor of reading / hashing the file) on one snapshot, one run.
#
#   tools/bench-scan.sh SNAPSHOT
#
# Builds target/release/etcdsnap, warms the page cache (bench-lib.sh warm),
# then times each command (wall seconds from date +%s%N around /usr/bin/time,
# peak RSS from /usr/bin/time -f '%e %M'), best of
# $BENCH_RUNS runs (default 3):
#   etcdsnap-status  etcdsnap status FILE --json  (bbolt check + CRC-32C of every key and
#                    value: the same work as etcdutl snapshot status; the ratio uses this)
#   etcdsnap-check   etcdsnap bolt check FILE     (walks every page and key, not value bytes)
#   etcdsnap-dump    etcdsnap bolt dump FILE      (hex of every key and value; skipped
#                    when a first run takes longer than $DUMP_MAX_SECS, default 60)
#   etcdutl-status   etcdutl snapshot status FILE -w json  (etcd 3.5.1; hashes every key)
#   cat              cat FILE > /dev/null
#   sha256sum        sha256sum FILE
# MB/s is file size / 10^6 / seconds. Peak RSS counts the file pages a process
# has mapped (etcdsnap and etcdutl both mmap the file), not only its heap.
# Environment: ETCDSNAP_ORACLES (default <repo>/.oracles), BENCH_RUNS, DUMP_MAX_SECS.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 SNAPSHOT" >&2; exit 2; }
file=$1
[ -f "$file" ] || { echo "$file: not a file" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/tools/bench-lib.sh"
runs=${BENCH_RUNS:-3}
dump_max=${DUMP_MAX_SECS:-60}
etcdutl=${ETCDSNAP_ORACLES:-$repo/.oracles}/etcd-3.5.1/etcdutl
timebin=/usr/bin/time
[ -x "$timebin" ] || { echo "need GNU time at $timebin (apt-get install -y time)" >&2; exit 1; }

(cd "$repo" && cargo build --release --quiet --bin etcdsnap)
etcdsnap=$repo/target/release/etcdsnap
size=$(stat -c %s "$file")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-scan-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "file: $file ($size bytes, $(awk -v s="$size" 'BEGIN{printf "%.3f GiB", s/2^30}'))" >&2
echo "host: $(nproc) CPUs, $(uname -sr); runs: best of $runs" >&2
machine "$file"
warm "$file"

# one NAME CMD...: a single timed run, stdout discarded; prints "secs rss_kb".
one() {
  local name=$1; shift
  local rc=0 t0 t1
  t0=$(date +%s%N)
  "$timebin" -f '%e %M' -o "$tmp/t" "$@" > /dev/null 2> "$tmp/err" || rc=$?
  t1=$(date +%s%N)
  if [ "$rc" -ne 0 ]; then
    # etcdsnap check exits 1 when it finds problems: still a full run, but say so.
    echo "note: $name exited with status $rc: $(head -c 300 "$tmp/err")" >&2
  fi
  # Wall time from date(1) (ns resolution; time's %e has only 10 ms), RSS from time.
  awk -v a="$t0" -v b="$t1" -v m="$(tail -n 1 "$tmp/t" | awk '{print $2}')" 'BEGIN{printf "%.3f %d\n", (b-a)/1e9, m}'
}

# bench NAME CMD...: best wall time of $runs runs, and the peak RSS over them.
declare -A secs rss
order=()
bench() {
  local name=$1; shift
  local best= peak=0 s m
  for _ in $(seq "$runs"); do
    read -r s m < <(one "$name" "$@")
    if [ -z "$best" ] || awk -v a="$s" -v b="$best" 'BEGIN{exit !(a < b)}'; then best=$s; fi
    [ "$m" -gt "$peak" ] && peak=$m
  done
  secs[$name]=$best; rss[$name]=$peak; order+=("$name")
  echo "  $name: ${best}s" >&2
}

bench etcdsnap-status "$etcdsnap" status "$file" --json
bench etcdsnap-check "$etcdsnap" bolt check "$file"

dump_rc=0
"$timebin" -f '%e %M' -o "$tmp/t" timeout "$dump_max" "$etcdsnap" bolt dump "$file" > /dev/null 2> "$tmp/err" || dump_rc=$?
if [ "$dump_rc" -eq 124 ]; then
  echo "  etcdsnap-dump: skipped (a run took longer than ${dump_max}s)" >&2
else
  bench etcdsnap-dump "$etcdsnap" bolt dump "$file"
fi

if [ -x "$etcdutl" ]; then
  bench etcdutl-status "$etcdutl" snapshot status "$file" -w json
else
  echo "  etcdutl-status: skipped ($etcdutl missing)" >&2
fi
bench cat cat "$file"
bench sha256sum sha256sum "$file"

printf '\n%-16s %9s %10s %12s\n' command seconds MB/s peak_RSS_MB
for n in "${order[@]}"; do
  awk -v n="$n" -v s="${secs[$n]}" -v m="${rss[$n]}" -v z="$size" \
    'BEGIN{printf "%-16s %9.3f %10s %12.1f\n", n, s, (s > 0 ? sprintf("%.0f", z/1e6/s) : "inf"), m/1024}'
done
if [ -n "${secs[etcdutl-status]:-}" ]; then
  awk -v u="${secs[etcdutl-status]}" -v c="${secs[etcdsnap-status]}" \
    'BEGIN{printf "\netcdutl_status_time / etcdsnap_status_time (scan + check, every byte) = %s\n", (c > 0 ? sprintf("%.2f", u/c) : "inf")}'
fi
