#!/usr/bin/env bash
# Macro benchmark: `etcdsnap bolt compact` against a plain copy and against Go
# bbolt's own Compact, on one snapshot, plus its anonymous (heap) memory on a
# large and a small input.
#
#   tools/bench-compact.sh SNAPSHOT [SMALL_SNAPSHOT]
#
# Builds target/release/etcdsnap, warms the page cache (bench-lib.sh warm),
# then runs, interleaved, $BENCH_RUNS rounds (default 3) of, best time of each:
#   etcdsnap-compact  etcdsnap bolt compact SNAPSHOT OUT   (verifies the input's
#                     SHA-256 trailer, rebuilds, hashes the output for its trailer,
#                     fsyncs the file and its directory, renames)
#   cp                cp SNAPSHOT OUT2                     (no fsync: page cache only)
#   cp+sync           cp SNAPSHOT OUT2 && sync OUT2        (the fair comparison: fsync'd)
#   go-bbolt-compact  boltoracle compact SNAPSHOT OUT3     (bbolt 1.3.6 Compact,
#                     txMaxSize 65536 as `bbolt compact`; commits fsync)
#   go-compact-nosync the same with NoSync, one fsync at the end
#                     (BOLTORACLE_NOSYNC=1): the fair comparison
#   etcdsnap-compact-skip  etcdsnap bolt compact --skip-hash-check SNAPSHOT OUT
#                     (the input's trailer read, not hashed, as Go reads its input
#                     once; the output still hashed for its trailer)
#   etcdsnap-compact-raw  etcdsnap bolt compact RAW OUT, RAW = SNAPSHOT's bbolt
#                     image without the trailer (a copy made outside the timing,
#                     or $BENCH_RAW; BENCH_RAW=none leaves the row out, so that
#                     an input near half the memory is not evicted by its copy):
#                     no SHA-256 on either side, as Go's Compact —
#                     the like-for-like comparison with go-compact-nosync
# Outputs live in a temporary directory beside SNAPSHOT (same filesystem) and
# are removed after every run. bbolt opens a file with etcd's 32-byte trailer
# (the trailer sits past the high-water mark); if it cannot, it gets a copy
# truncated to the bbolt image, made outside the timing.
# A Go run longer than $GO_MAX_SECS (default 900) is stopped; its time is then
# a lower bound (printed with '>').
#
# Memory: one more (untimed) run of etcdsnap compact on SNAPSHOT and on
# SMALL_SNAPSHOT (default testdata/etcd-3.5.1/snapshot.db) sampling
# /proc/PID/status every 20 ms: RssAnon (heap, stacks: what the process
# allocates) and VmHWM (peak RSS, which also counts the mmap'd input pages and
# so grows with the input). With valgrind installed, massif's peak heap on the
# small input too. Heap independent of the input size means RssAnon about equal.
# Wall time is date +%s%N around each command. MB/s is SNAPSHOT's size / 10^6 / s.
# Environment: ETCDSNAP_ORACLES (default <repo>/.oracles), BENCH_RUNS, GO_MAX_SECS,
#   BENCH_NO_GO=1 (skip Go), BENCH_NO_MASSIF=1.
set -euo pipefail
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $0 SNAPSHOT [SMALL_SNAPSHOT]" >&2; exit 2; }
file=$1
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/tools/bench-lib.sh"
small=${2:-$repo/testdata/etcd-3.5.1/snapshot.db}
for f in "$file" "$small"; do [ -f "$f" ] || { echo "$f: not a file" >&2; exit 2; }; done
runs=${BENCH_RUNS:-3}
go_max=${GO_MAX_SECS:-900}
oracle=${ETCDSNAP_ORACLES:-$repo/.oracles}/bin/boltoracle
timebin=/usr/bin/time
[ -x "$timebin" ] || { echo "need GNU time at $timebin (apt-get install -y time)" >&2; exit 1; }

(cd "$repo" && cargo build --release --quiet --bin etcdsnap)
etcdsnap=$repo/target/release/etcdsnap
size=$(stat -c %s "$file")
small_size=$(stat -c %s "$small")
# Outputs on the input's filesystem, so cp and compact write to the same device.
tmp=$(mktemp -d "$(dirname "$(realpath "$file")")/bench-compact-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "file: $file ($size bytes, $(awk -v s="$size" 'BEGIN{printf "%.3f GiB", s/2^30}')); small: $small ($small_size bytes)" >&2
echo "host: $(nproc) CPUs, $(uname -sr), $(df -hT "$tmp" | awk 'NR==2{print $2 " on " $1}'); runs: best of $runs" >&2
machine "$file" "$small"

go_input=$file
use_go=1
if [ -n "${BENCH_NO_GO:-}" ]; then
  use_go=
elif [ ! -x "$oracle" ]; then
  echo "  go-bbolt-compact: skipped ($oracle missing; tools/install-oracles.sh)" >&2
  use_go=
elif ! "$oracle" info "$file" > /dev/null 2>&1; then
  # bbolt refused the file as is: give it the bbolt image without the trailer.
  hwm_bytes=$("$etcdsnap" bolt info --json "$file" | python3 -c 'import json,sys; print(json.load(sys.stdin)["used_bytes"])')
  echo "  bbolt cannot open $file as is; truncating a copy to $hwm_bytes bytes (untimed)" >&2
  go_input=$tmp/go-input.db
  head -c "$hwm_bytes" "$file" > "$go_input"
fi

# The raw image (no trailer) for the like-for-like row.
raw_input=${BENCH_RAW:-}
if [ "$raw_input" = none ]; then
  raw_input=
elif [ -z "$raw_input" ]; then
  hwm_bytes=$("$etcdsnap" bolt info --json "$file" | python3 -c 'import json,sys; print(json.load(sys.stdin)["used_bytes"])')
  if [ "$hwm_bytes" -lt "$size" ]; then
    raw_input=$tmp/raw-input.db
    head -c "$hwm_bytes" "$file" > "$raw_input"
  fi
fi

warm "$file"
[ "$go_input" = "$file" ] || warm "$go_input"
[ -z "$raw_input" ] || warm "$raw_input"

# one NAME CMD...: a single timed run; prints seconds (prefixed '>' when stopped by timeout).
one() {
  local name=$1; shift
  local rc=0 t0 t1
  t0=$(date +%s%N)
  "$@" > /dev/null 2> "$tmp/err" || rc=$?
  t1=$(date +%s%N)
  local s
  s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
  if [ "$rc" -eq 124 ]; then
    echo "note: $name stopped after ${go_max}s" >&2
    s=">$s"
  elif [ "$rc" -ne 0 ]; then
    echo "FAILED: $name exited with status $rc: $(head -c 300 "$tmp/err")" >&2
    exit 1
  fi
  echo "$s"
}

declare -A best
record() { # NAME SECS: keep the smaller; a finished run beats a lower bound.
  local n=$1 s=$2 b=${best[$1]:-}
  if [ -z "$b" ]; then best[$n]=$s; return; fi
  if [[ $b == '>'* ]] && [[ $s != '>'* ]]; then best[$n]=$s; return; fi
  if [[ $b != '>'* ]] && [[ $s == '>'* ]]; then return; fi
  awk -v a="${s#>}" -v c="${b#>}" 'BEGIN{exit !(a < c)}' && best[$n]=$s || true
}

cp_sync() { cp "$1" "$2" && sync "$2"; }
out=$tmp/out.db
for r in $(seq "$runs"); do
  echo "round $r" >&2
  s=$(one etcdsnap-compact "$etcdsnap" bolt compact "$file" "$out"); rm -f "$out"; record etcdsnap-compact "$s"
  echo "  etcdsnap-compact: ${s}s" >&2
  s=$(one etcdsnap-compact-skip "$etcdsnap" bolt compact --skip-hash-check "$file" "$out"); rm -f "$out"; record etcdsnap-compact-skip "$s"
  echo "  etcdsnap-compact-skip: ${s}s" >&2
  if [ -n "$raw_input" ]; then
    s=$(one etcdsnap-compact-raw "$etcdsnap" bolt compact "$raw_input" "$out"); rm -f "$out"; record etcdsnap-compact-raw "$s"
    echo "  etcdsnap-compact-raw: ${s}s" >&2
  fi
  s=$(one cp cp "$file" "$out"); rm -f "$out"; record cp "$s"
  echo "  cp: ${s}s" >&2
  s=$(one cp+sync cp_sync "$file" "$out"); rm -f "$out"; record cp+sync "$s"
  echo "  cp+sync: ${s}s" >&2
  if [ -n "$use_go" ]; then
    s=$(one go-bbolt-compact timeout "$go_max" "$oracle" compact "$go_input" "$out"); rm -f "$out"; record go-bbolt-compact "$s"
    echo "  go-bbolt-compact: ${s}s" >&2
    s=$(BOLTORACLE_NOSYNC=1 one go-compact-nosync timeout "$go_max" "$oracle" compact "$go_input" "$out"); rm -f "$out"; record go-compact-nosync "$s"
    echo "  go-compact-nosync: ${s}s" >&2
  fi
  sync
done

# compact_mem INPUT: peak RssAnon and VmHWM (MB, from bench-lib.sh's mem) of one
# etcdsnap compact of INPUT, converted back to kB for the report below.
compact_mem() {
  local a h
  read -r a h < <(mem "$etcdsnap" bolt compact "$1" "$out")
  rm -f "$out"
  echo "$(echo "$a * 1024 / 1" | bc) $(echo "$h * 1024 / 1" | bc)"
}
read -r anon_big hwm_big < <(compact_mem "$file")
read -r anon_small hwm_small < <(compact_mem "$small")
massif=
if [ -z "${BENCH_NO_MASSIF:-}" ] && command -v valgrind > /dev/null; then
  valgrind --tool=massif --massif-out-file="$tmp/massif.out" "$etcdsnap" bolt compact "$small" "$out" > /dev/null 2>&1 && rm -f "$out"
  massif=$(awk -F= '/^mem_heap_B=/{if ($2 > m) m = $2} END{printf "%.1f", m/2^20}' "$tmp/massif.out")
fi

rate() { awk -v z="$size" -v s="${1#>}" 'BEGIN{printf "%s", (s > 0 ? sprintf("%.0f", z/1e6/s) : "inf")}'; }
printf '\n%-21s %10s %8s\n' command seconds MB/s
for n in etcdsnap-compact etcdsnap-compact-skip etcdsnap-compact-raw cp cp+sync go-bbolt-compact go-compact-nosync; do
  [ -n "${best[$n]:-}" ] || continue
  printf '%-21s %10s %8s\n' "$n" "${best[$n]}" "$( [[ ${best[$n]} == '>'* ]] && echo '<' )$(rate "${best[$n]}")"
done
ratio() { awk -v a="${1#>}" -v b="${2#>}" 'BEGIN{printf "%s", (b > 0 ? sprintf("%.2f", a/b) : "inf")}'; }
e=${best[etcdsnap-compact]}
echo
echo "etcdsnap / cp         = $(ratio "$e" "${best[cp]}")   (target <= 1.5; etcdsnap fsyncs, cp does not)"
echo "etcdsnap / (cp+sync)  = $(ratio "$e" "${best[cp+sync]}")   (both fsync'd)"
if [ -n "${best[go-bbolt-compact]:-}" ]; then
  g=${best[go-bbolt-compact]}
  echo "go / etcdsnap         = $( [[ $g == '>'* ]] && echo '>' )$(ratio "$g" "$e")   (target >= 3)"
fi
if [ -n "${best[go-compact-nosync]:-}" ]; then
  g=${best[go-compact-nosync]}
  echo "go NoSync / etcdsnap  = $( [[ $g == '>'* ]] && echo '>' )$(ratio "$g" "$e")   (target >= 3; Go syncs once at the end, as etcdsnap)"
  echo "go NoSync / skip      = $( [[ $g == '>'* ]] && echo '>' )$(ratio "$g" "${best[etcdsnap-compact-skip]}")   (target >= 3; --skip-hash-check: the input read once, as Go's)"
  if [ -n "${best[etcdsnap-compact-raw]:-}" ]; then
    echo "go NoSync / raw       = $( [[ $g == '>'* ]] && echo '>' )$(ratio "$g" "${best[etcdsnap-compact-raw]}")   (target >= 3; like for like: no SHA-256 on either side)"
  fi
fi
echo
printf '%-28s %14s %14s\n' "etcdsnap compact memory" "RssAnon_MB" "VmHWM_MB"
printf '%-28s %14.1f %14.1f\n' "large ($((size / 1000000)) MB)" "$(awk -v k="$anon_big" 'BEGIN{print k/1024}')" "$(awk -v k="$hwm_big" 'BEGIN{print k/1024}')"
printf '%-28s %14.1f %14.1f\n' "small ($((small_size / 1000000)) MB)" "$(awk -v k="$anon_small" 'BEGIN{print k/1024}')" "$(awk -v k="$hwm_small" 'BEGIN{print k/1024}')"
[ -z "$massif" ] || echo "massif peak heap (small): $massif MB"
echo "(RssAnon = heap and stacks, sampled every 20 ms; VmHWM = peak RSS incl. mmap'd input pages)"
