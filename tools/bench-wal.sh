#!/usr/bin/env bash
# Macro benchmark: `etcdsnap wal verify` against `cat *.wal > /dev/null` on a
# WAL of at least SIZE_GB written by a real etcd 3.5.1 (never committed).
#
#   tools/bench-wal.sh [SIZE_GB] [DIR]      (SIZE_GB default 1.0, GB = 10^9 bytes;
#                                            DIR default /tmp/etcdsnap-bench-wal, reused when present)
#   BASELINE=/path/to/older/etcdsnap tools/bench-wal.sh   also times that binary in the same run
#
# The WAL is made by etcd 3.5.1 on 127.0.0.1 (--snapshot-count huge and
# --max-wals 0 so no segment is purged, raised request/quota limits,
# --unsafe-no-fsync for speed): `etcdctl txn` batches from stdin (4 clients in
# parallel), each 2 puts of 768 KiB values (1.5 MiB records: etcdctl's gRPC send
# limit is 2 MiB), until the segments hold SIZE_GB. Then, with the page cache warm, each command runs 3
# times and the best wall time is kept; the ratio verify/cat is printed.
set -euo pipefail
size_gb=${1:-1.0}
dir=${2:-/tmp/etcdsnap-bench-wal}
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/tools/bench-lib.sh"
machine
bin=${ETCDSNAP_ORACLES:-$repo/.oracles}/etcd-3.5.1
port=${BENCH_WAL_PORT:-24090}
target=$(python3 -c "import sys; print(int(float(sys.argv[1]) * 10**9))" "$size_gb")
wal=$dir/data/member/wal

wal_bytes() { cat "$wal"/*.wal 2>/dev/null | wc -c; }

if [ ! -d "$wal" ] || [ "$(wal_bytes)" -lt "$target" ]; then
  "$bin/etcd" --version | grep 'etcd Version: 3.5.1' >/dev/null || { echo "need etcd 3.5.1 in $bin" >&2; exit 1; }
  rm -rf "$dir"; mkdir -p "$dir"
  "$bin/etcd" --name bench --data-dir "$dir/data" \
    --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
    --listen-peer-urls "http://127.0.0.1:$((port + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))" \
    --initial-cluster "bench=http://127.0.0.1:$((port + 1))" \
    --snapshot-count 100000000 --max-wals 0 --max-snapshots 0 \
    --max-request-bytes 10000000 --quota-backend-bytes 17179869184 --max-txn-ops 1024 \
    --unsafe-no-fsync --logger zap --log-level warn >"$dir/etcd.log" 2>&1 &
  etcd_pid=$!
  trap 'kill -TERM $etcd_pid 2>/dev/null; wait $etcd_pid 2>/dev/null || true' EXIT
  ctl=("$bin/etcdctl" --endpoints "http://127.0.0.1:$port" --command-timeout 60s)
  for _ in $(seq 100); do "${ctl[@]}" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
  python3 - "$dir/txn" <<'PY'
import base64, os, sys
vals = [base64.b64encode(os.urandom(589824)).decode() for _ in range(2)]  # 768 KiB of text each
with open(sys.argv[1], "w") as f:
    f.write("\n")
    for i, v in enumerate(vals):
        f.write(f'put /bench/k{i} "{v}"\n')
    f.write("\n\n")
PY
  n=0
  while [ "$(wal_bytes)" -lt "$target" ]; do
    for _ in 1 2 3 4 5 6 7 8; do
      pids=()
      for _ in 1 2 3 4; do "${ctl[@]}" txn <"$dir/txn" >/dev/null & pids+=($!); done
      wait "${pids[@]}"
    done
    n=$((n + 32))
  done
  echo "wrote $n txns of 2 x 768 KiB" >&2
  kill -TERM "$etcd_pid"; wait "$etcd_pid" 2>/dev/null || true
  trap - EXIT
fi

cargo build --release -q -p etcdsnap --manifest-path "$repo/Cargo.toml"
etcdsnap=$repo/target/release/etcdsnap
segs=$(ls "$wal"/*.wal | wc -l)
bytes=$(wal_bytes)
echo "WAL: $wal, $segs segments, $bytes bytes"
"$etcdsnap" wal verify "$wal" | sed -n '2,6p'

best() { # best wall seconds of 3 runs of "$@"
  local b=
  for _ in 1 2 3; do
    local s e t
    s=$(date +%s.%N); "$@" >/dev/null; e=$(date +%s.%N)
    t=$(python3 -c "print($e - $s)")
    if [ -z "$b" ] || python3 -c "import sys; sys.exit(0 if $t < $b else 1)"; then b=$t; fi
  done
  echo "$b"
}
cat "$wal"/*.wal >/dev/null   # warm the page cache
t_cat=$(best sh -c "cat '$wal'/*.wal > /dev/null")
t_ver=$(best "$etcdsnap" wal verify "$wal")
t_base=
if [ -n "${BASELINE:-}" ]; then t_base=$(best "$BASELINE" wal verify "$wal"); fi
python3 - "$bytes" "$t_cat" "$t_ver" "$t_base" <<'PY'
import sys
b, c, v = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print(f"cat *.wal > /dev/null   {c:7.3f} s  {b / c / 1e9:6.2f} GB/s")
print(f"etcdsnap wal verify     {v:7.3f} s  {b / v / 1e9:6.2f} GB/s")
if sys.argv[4]:
    o = float(sys.argv[4])
    print(f"baseline wal verify     {o:7.3f} s  {b / o / 1e9:6.2f} GB/s  (ratio {o / c:.2f}x)")
print(f"ratio verify/cat        {v / c:7.2f}x")
PY
