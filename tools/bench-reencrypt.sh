#!/usr/bin/env bash
# Macro benchmark: `etcdsnap rewrite --rename … --reencrypt` on a snapshot of
# KMS v2–encrypted Secrets (values per second, plugin calls).
#
#   tools/bench-reencrypt.sh [WORKDIR]
#
# Starts the kmsplugin oracle (k8s.io/kms v0.37.2) on a unix socket and a real
# etcd 3.6.16 (--unsafe-no-fsync) on 127.0.0.1, then writes $BENCH_KEYS
# (default 100000) Secret-like values (about 400 bytes of plaintext) under
# /tenant-a/registry/secrets/ with `k8scrypt put-many`: k8s.io/apiserver's own
# KMS v2 transformer (HKDF seed mode, as kube-apiserver writes), in
# $BENCH_DEKS (default 4) runs, each one with its own DEK seed as after a
# kube-apiserver restart. Then `etcdctl snapshot save`, the plugin's call log
# is reset, and target/release/etcdsnap runs once:
#   rewrite SNAP OUT --include /tenant-a/
#     --rename /tenant-a/registry/=/registry/ --bump-revision 1000000000
#     --mark-compacted --reencrypt CONFIG --json
# and its wall time, re-encrypted values per second and plugin calls (from the
# report and from the plugin's own log) are printed. A spot check opens one
# moved value with k8scrypt under its new key.
# WORKDIR (default a temporary directory, removed) holds the etcd data, the
# snapshot and the output. Environment: ETCDSNAP_ORACLES (default
# <repo>/.oracles), BENCH_KEYS, BENCH_DEKS, BENCH_PORT (default 24990),
# BENCH_BIN (an etcdsnap binary to use instead of building target/release/etcdsnap).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/tools/bench-lib.sh"
machine
oracles=${ETCDSNAP_ORACLES:-$repo/.oracles}
keys=${BENCH_KEYS:-100000}
deks=${BENCH_DEKS:-4}
port=${BENCH_PORT:-24990}
etcd_bin=$oracles/etcd-3.6.16
plugin_bin=$oracles/kmsplugin-0.37.2/kmsplugin
k8scrypt=$oracles/k8scrypt-0.36.6/k8scrypt
for b in "$etcd_bin/etcd" "$etcd_bin/etcdctl" "$plugin_bin" "$k8scrypt"; do
  [ -x "$b" ] || { echo "$b missing: run tools/install-oracles.sh" >&2; exit 1; }
done
if [ -n "${BENCH_BIN:-}" ]; then
  etcdsnap=$BENCH_BIN
else
  (cd "$repo" && cargo build --release --quiet --bin etcdsnap)
  etcdsnap=$repo/target/release/etcdsnap
fi

if [ $# -ge 1 ]; then work=$1; mkdir -p "$work"; keep=1; else work=$(mktemp -d "${TMPDIR:-/tmp}/etcdsnap-bench-reencrypt-XXXXXX"); keep=0; fi
work=$(cd "$work" && pwd)
etcd_pid= plugin_pid=
cleanup() {
  for p in $etcd_pid $plugin_pid; do
    if kill -0 "$p" 2>/dev/null; then kill -TERM "$p"; wait "$p" 2>/dev/null || true; fi
  done
  [ "$keep" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
rm -rf "$work/data" "$work/snap.db" "$work/moved.db"

# The plugin and the tenant's EncryptionConfiguration.
head -c 32 /dev/urandom > "$work/kek"
sock=$work/kms.sock
"$plugin_bin" --socket "$sock" --kek "$work/kek" --key-id bench-kek --log "$work/calls.log" 2>"$work/plugin.log" &
plugin_pid=$!
for _ in $(seq 1 100); do [ -S "$sock" ] && break; sleep 0.05; done
cat > "$work/enc.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - kms:
          apiVersion: v2
          name: bench-kms
          endpoint: unix://$sock
          timeout: 3s
      - identity: {}
EOF

# etcd.
client=http://127.0.0.1:$port
peer=http://127.0.0.1:$((port + 1))
"$etcd_bin/etcd" --name default --data-dir "$work/data" \
  --listen-client-urls "$client" --advertise-client-urls "$client" \
  --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
  --initial-cluster "default=$peer" --log-level warn \
  --quota-backend-bytes 8589934592 --max-txn-ops 4096 --max-request-bytes 16777216 \
  --unsafe-no-fsync >"$work/etcd.log" 2>&1 &
etcd_pid=$!
ctl() { "$etcd_bin/etcdctl" --endpoints "$client" --command-timeout 120s "$@"; }
for _ in $(seq 1 100); do ctl endpoint health >/dev/null 2>&1 && break; sleep 0.1; done

t0=$(date +%s.%N)
per=$(( (keys + deks - 1) / deks ))
done_keys=0
for d in $(seq 1 "$deks"); do
  n=$(( keys - done_keys < per ? keys - done_keys : per ))
  "$k8scrypt" put-many "$work/enc.yaml" secrets "$client" "/tenant-a/registry/secrets/dek$d-" "$n" 2>>"$work/k8scrypt.log"
  done_keys=$(( done_keys + n ))
done
ctl put /tenant-b/registry/configmaps/other/cm '{}' >/dev/null
ctl snapshot save "$work/snap.db" >/dev/null 2>&1
t1=$(date +%s.%N)
echo "made $done_keys KMS v2 Secrets ($deks DEK seeds) and a snapshot of $(stat -c %s "$work/snap.db") bytes in $(python3 -c "print(f'{$t1-$t0:.1f}')")s" >&2
kill -TERM "$etcd_pid"; wait "$etcd_pid" 2>/dev/null || true; etcd_pid=

: > "$work/calls.log"
warm "$work/snap.db"
s=$(date +%s%N)
"$etcdsnap" rewrite "$work/snap.db" "$work/moved.db" --include /tenant-a/ \
  --rename /tenant-a/registry/=/registry/ --bump-revision 1000000000 --mark-compacted \
  --reencrypt "$work/enc.yaml" --json > "$work/report.json"
e=$(date +%s%N)
python3 - "$work/report.json" "$work/calls.log" "$s" "$e" "$(nproc)" <<'EOF'
import json, sys, collections
r = json.load(open(sys.argv[1]))
calls = collections.Counter(l.strip() for l in open(sys.argv[2]) if l.strip())
secs = (int(sys.argv[4]) - int(sys.argv[3])) / 1e9
n = sum(r["reencrypted"].values())
print(f"rewrite --rename --reencrypt: {n} values re-encrypted ({r['reencrypted']}) of "
      f"{r['revisions']['kept']} kept revisions in {secs:.2f}s wall "
      f"({r['elapsed_ms']} ms in the report): {n / secs:,.0f} values/s; {sys.argv[5]} CPUs")
print(f"plugin calls (report): {json.dumps(r['plugin_calls'])}; plugin log: {dict(calls)}")
print(f"bytes {r['bytes_in']} -> {r['bytes_out']}")
EOF
# Spot check: one moved value opens under its new key with kube's transformer.
first=$("$etcdsnap" keys "$work/moved.db" --prefix /registry/secrets/ --json | head -1)
python3 - "$first" > "$work/one.bin" <<'EOF'
import json, sys, base64
v = json.loads(sys.argv[1])["value"]
sys.stdout.buffer.write(base64.b64decode(v["base64"]) if isinstance(v, dict) else v.encode())
EOF
key=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["key"])' "$first")
"$k8scrypt" open "$work/enc.yaml" secrets "$key" < "$work/one.bin" 2>/dev/null | head -c 60; echo " … (opened under $key)"
