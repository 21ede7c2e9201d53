#!/usr/bin/env bash
# Make a large etcd 3.5.1 snapshot for scale tests (never committed).
#
#   tools/gen-large-snapshot.sh OUT [SIZE_GB]      (SIZE_GB default 1.6, GiB = 2^30 bytes)
#
# Starts a real etcd 3.5.1 on 127.0.0.1 (temporary data dir, raised quota /
# txn / request limits, --unsafe-no-fsync for speed), writes a Kubernetes-like
# workload with batched `etcdctl txn` requests fed on stdin by several parallel
# etcdctl processes until the backend db is at least SIZE_GB, then runs
# `etcdctl snapshot save OUT` and `etcdutl snapshot status OUT`.
#
# Workload (seeded, so key names and value sizes repeat; value bytes are seeded too):
#   keys   /registry/<resource>/<namespace>/<name>, 5 resources x 40 namespaces
#   round 0 creates every key, later rounds update a random 45% of keys (new
#   revision each); round 1 also deletes 500 keys (tombstones) and a later round
#   re-creates half of them; values are JSON objects of 1-16 KiB (log-uniform)
#   whose bulk is base64 text.
# Environment: ETCDSNAP_ORACLES (default <repo>/.oracles), LARGE_PORT (default 23990),
#   LARGE_WORKERS (parallel etcdctl processes, default 4), LARGE_KEYS (keys, default 60000),
#   LARGE_VALUE_LOG2 ("LO,HI": value sizes 2^LO..2^HI bytes, log-uniform; default "10,14").
#   Many keys, little history per byte: LARGE_KEYS=600000 LARGE_VALUE_LOG2=7,9 and SIZE_GB 0.3.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 OUT [SIZE_GB]" >&2; exit 2; }
out=$1
size_gb=${2:-1.6}
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${ETCDSNAP_ORACLES:-$repo/.oracles}/etcd-3.5.1
port=${LARGE_PORT:-23990}
workers=${LARGE_WORKERS:-4}
nkeys=${LARGE_KEYS:-60000}
value_log2=${LARGE_VALUE_LOG2:-10,14}
"$bin/etcd" --version | grep 'etcd Version: 3.5.1' >/dev/null || { echo "need etcd 3.5.1 in $bin" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
rm -f "$out" "$out.part"

target=$(python3 -c "import sys; print(int(float(sys.argv[1]) * 2**30))" "$size_gb")
quota=$(python3 -c "import sys; print(max(8 * 2**30, 2 * int(sys.argv[1])))" "$target")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/etcdsnap-large-XXXXXX")
etcd_pid=
cleanup() {
  if [ -n "$etcd_pid" ] && kill -0 "$etcd_pid" 2>/dev/null; then
    kill -TERM "$etcd_pid"; wait "$etcd_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

t0=$(date +%s.%N)
client=http://127.0.0.1:$port
peer=http://127.0.0.1:$((port + 1))
"$bin/etcd" --name default --data-dir "$tmp/data" \
  --listen-client-urls "$client" --advertise-client-urls "$client" \
  --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
  --initial-cluster "default=$peer" --logger zap --log-level warn \
  --quota-backend-bytes "$quota" --max-txn-ops 4096 --max-request-bytes 16777216 \
  --snapshot-count 100000 --unsafe-no-fsync >"$tmp/etcd.log" 2>&1 &
etcd_pid=$!
ctl() { ETCDCTL_API=3 "$bin/etcdctl" --endpoints "$client" --command-timeout 120s "$@"; }
for i in $(seq 1 100); do
  ctl endpoint health >/dev/null 2>&1 && break
  kill -0 "$etcd_pid" 2>/dev/null || { cat "$tmp/etcd.log" >&2; exit 1; }
  sleep 0.1
done

python3 - "$bin/etcdctl" "$client" "$target" "$workers" "$nkeys" "$value_log2" <<'PY'
import base64, json, random, subprocess, sys, threading, time, queue
etcdctl, client, target, workers, nkeys = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
LO, HI = (float(x) for x in sys.argv[6].split(","))
MAX_TXN_BYTES = 1900 * 1024   # etcdctl's gRPC client sends at most 2 MiB per request
MAX_TXN_OPS = 1024
rng = random.Random(16)
RES = ["pods", "configmaps", "secrets", "deployments", "replicasets"]
NS = ["ns-%02d" % i for i in range(40)]
keys = []
for i in range(nkeys):
    keys.append("/registry/%s/%s/obj-%06d" % (RES[i % 5], NS[(i // 5) % 40], i))
gen = {}

def value(k, r):
    size = int(2 ** r.uniform(LO, HI))  # default 1 KiB .. 16 KiB
    g = gen[k] = gen.get(k, 0) + 1
    head = '{"apiVersion":"v1","kind":"Obj","metadata":{"name":"%s","generation":%d},"data":{"blob":"' % (k.rsplit("/", 1)[1], g)
    n = max(0, size - len(head) - 3)
    blob = base64.b64encode(r.randbytes(n * 3 // 4 + 3)).decode()[:n]
    return head + blob + '"}}'

def q(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

def batches(ops):
    """ops: list of ('put', k) / ('del', k); yields txn stdin texts."""
    r = random.Random(rng.random())
    lines, nbytes = [], 0
    for op, k in ops:
        line = ("put %s %s" % (q(k), q(value(k, r)))) if op == "put" else ("del %s" % q(k))
        if lines and (nbytes + len(line) > MAX_TXN_BYTES or len(lines) >= MAX_TXN_OPS):
            yield "\n" + "\n".join(lines) + "\n\n\n"
            lines, nbytes = [], 0
        lines.append(line)
        nbytes += len(line) + 1
    if lines:
        yield "\n" + "\n".join(lines) + "\n\n\n"

def status():
    out = subprocess.run([etcdctl, "--endpoints", client, "endpoint", "status", "-w", "json"],
                         capture_output=True, check=True).stdout
    s = json.loads(out)[0]["Status"]
    return s["dbSize"], s.get("dbSizeInUse", s["dbSize"]), s["header"]["revision"]

def run_round(ops):
    jobs = queue.Queue(maxsize=workers * 2)
    errors = []
    def worker():
        while True:
            txt = jobs.get()
            if txt is None:
                return
            p = subprocess.run([etcdctl, "--endpoints", client, "--command-timeout", "120s", "txn"],
                               input=txt.encode(), capture_output=True)
            if p.returncode != 0 or not p.stdout.startswith(b"SUCCESS"):
                errors.append(p.stderr.decode(errors="replace")[:500])
    ts = [threading.Thread(target=worker) for _ in range(workers)]
    for t in ts:
        t.start()
    for txt in batches(ops):
        if errors:
            break
        jobs.put(txt)
    for _ in ts:
        jobs.put(None)
    for t in ts:
        t.join()
    if errors:
        sys.exit("txn failed: " + errors[0])

t0 = time.time()
live = set()
deleted = []
rnd = 0
while True:
    if rnd == 0:
        ops = [("put", k) for k in keys]
    else:
        ops = [("put", k) for k in rng.sample(sorted(live), int(len(live) * 0.45))]
        if rnd == 1:
            deleted = rng.sample(sorted(set(live) - {k for _, k in ops}), 500)
            ops += [("del", k) for k in deleted]
        if rnd == 3:
            ops += [("put", k) for k in deleted[:250]]
        rng.shuffle(ops)
    run_round(ops)
    for op, k in ops:
        (live.add if op == "put" else live.discard)(k)
    db, inuse, rev = status()
    print("round %d: %d ops, db %.3f GiB (in use %.3f), rev %d, %.0fs" % (
        rnd, len(ops), db / 2**30, inuse / 2**30, rev, time.time() - t0), file=sys.stderr, flush=True)
    rnd += 1
    if inuse >= target:
        break
    # last round: only as many updates as still needed
    if rnd > 1:
        pass
PY

t1=$(date +%s.%N)
ctl snapshot save "$out.part" >/dev/null
mv "$out.part" "$out"
chmod 0644 "$out"
t2=$(date +%s.%N)
"$bin/etcdutl" snapshot status -w table "$out" >&2
python3 - "$out" "$target" "$t0" "$t1" "$t2" <<'PY' >&2
import os, sys
out, target, t0, t1, t2 = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:])
size = os.path.getsize(out)
assert size % 512 == 32, size
print("%s: %d bytes (%.3f GiB, target %.3f GiB); load %.0fs, snapshot save %.0fs, total %.0fs"
      % (out, size, size / 2**30, target / 2**30, t1 - t0, t2 - t1, t2 - t0))
assert size >= target, "snapshot smaller than target"
PY
