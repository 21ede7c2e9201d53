#!/usr/bin/env bash
# Fuzz campaign (not part of the test command): every target for DURATION seconds
# (default 600), seeded from every etcd version's fixtures under testdata/, then a
# summary of corpus growth and executions per target.
#
#   tools/fuzz-campaign.sh [DURATION] [TARGET...]
#
# Uses the same layout as tools/fuzz-build.sh (corpora in fuzz/corpus/<target>/,
# crashes in fuzz/artifacts/<target>/, git-ignored) and the same limits:
# -timeout=5 per input (FUZZ_TIMEOUT overrides it: libFuzzer's timer is wall
# clock, and a campaign run at nice 19 on a busy machine can be starved for
# seconds; a timeout is confirmed by running its input alone with 5 s before it
# counts as a finding), -rss_limit_mb=2048. Exit status is non-zero when any
# target crashes, times out or exceeds the memory limit; fix each finding with a
# regression test before closing a campaign.
set -euo pipefail
secs=${1:-600}
shift || true
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export RUSTC_BOOTSTRAP=1
cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# The fixed seeds and scripts of the smoke run first (builds and seeds, runs nothing).
tools/fuzz-build.sh 0
tools_seed() { mkdir -p "fuzz/corpus/$1"; echo "fuzz/corpus/$1"; }

# Every version's bbolt image (trailer stripped; raw dbs cut to pgid x pageSize,
# since the newer ones carry a 14 MiB zero tail), every version's WAL head.
for dir in testdata/etcd-*/; do
  v=$(basename "$dir")
  snap="$dir/snapshot.db"
  size=$(stat -c %s "$snap")
  head -c $((size - 32)) "$snap" > "$(tools_seed bolt_open_check_iterate)/$v-image.db"
  cp "$snap" "$(tools_seed snapshot_open_verify)/$v-snapshot.db"
  raw="$dir/member/snap/db"
  used=$(python3 - "$raw" <<'PY'
import struct, sys
d = open(sys.argv[1], 'rb').read(8192)
ps = struct.unpack_from('<I', d, 24)[0]
m = [struct.unpack_from('<QQ', d, o + 56) for o in (0, ps)]   # (pgid, txid) of each meta
pgid = max(m, key=lambda t: t[1])[0]
print(pgid * ps)
PY
)
  head -c "$used" "$raw" > "$(tools_seed snapshot_open_verify)/$v-raw.db"
  for wal in "$dir"/member/wal/*.wal; do
    head -c 65536 "$wal" > "$(tools_seed wal_decode)/$v-$(basename "$wal")-head"
  done
  # Stored values as read by Go bbolt (the oracle's canonical dump): every
  # bucket's values for the protobuf target (KeyValue, Lease, auth, members;
  # up to 40 per bucket), the KeyValue.value payloads for the Kubernetes one.
  [ -x .oracles/bin/boltoracle ] || { echo "run tools/install-oracles.sh first (boltoracle seeds the value targets)" >&2; exit 2; }
  # (The script comes on stdin, the dump through a file name.)
  python3 - "$v" "$(tools_seed proto_values)" "$(tools_seed kube_values)" <(.oracles/bin/boltoracle dump "$snap") <<'PY'
import sys, collections
v, proto_dir, kube_dir, dump = sys.argv[1:5]
def varint(b, i):
    n = s = 0
    while True:
        c = b[i]; i += 1; n |= (c & 0x7f) << s; s += 7
        if c < 0x80: return n, i
def field5(b):          # mvccpb.KeyValue.value (field 5, bytes)
    i = 0
    while i < len(b):
        tag, i = varint(b, i)
        if tag & 7 == 0: _, i = varint(b, i)
        elif tag & 7 == 2:
            n, i = varint(b, i)
            if tag >> 3 == 5: return b[i:i + n]
            i += n
        else: return None
    return None
per = collections.Counter()
kube = 0
for line in open(dump):
    f = line.split()
    if len(f) != 4 or f[0] != 'K': continue
    bucket, value = f[1], bytes.fromhex(f[3]) if f[3] != '-' else b''
    if per[bucket] < 40:
        per[bucket] += 1
        open(f'{proto_dir}/{v}-{bucket}-{per[bucket]}', 'wb').write(value)
    if bucket == '6b6579' and kube < 40:
        try: inner = field5(value)
        except IndexError: inner = None
        if inner and (inner.startswith(b'k8s') or inner.startswith(b'{')):
            kube += 1
            open(f'{kube_dir}/{v}-value-{kube}', 'wb').write(inner)
PY
done

targets=${*:-$(cargo fuzz list --fuzz-dir fuzz)}
summary=()
status=0
for t in $targets; do
  corpus="fuzz/corpus/$t"
  mkdir -p "$corpus"
  before=$(find "$corpus" -type f | wc -l)
  log=$(mktemp)
  echo "== fuzz $t for ${secs}s (corpus $before)" >&2
  if ! cargo fuzz run --fuzz-dir fuzz "$t" -- \
      -max_total_time="$secs" -timeout="${FUZZ_TIMEOUT:-5}" -rss_limit_mb=2048 -print_final_stats=1 2> >(tee "$log" >&2); then
    echo "FAILED: $t (see fuzz/artifacts/$t/)" >&2
    status=1
  fi
  after=$(find "$corpus" -type f | wc -l)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  summary+=("$(printf '%-26s corpus %6s -> %-6s execs %-10s exec/s %-7s cov %s' "$t" "$before" "$after" "${execs:-?}" "${rate:-?}" "${cov:-?}")")
  rm -f "$log"
done
printf '%s\n' "${summary[@]}"
exit $status
