#!/usr/bin/env python3
"""Generate the committed etcd fixtures under testdata/ with real etcd servers.

Usage: python3 tools/gen-fixtures.py --version 3.4.23|3.5.1|3.5.35|3.6.16|3.7.3|all --out testdata/

For each version this starts a real single-member etcd on 127.0.0.1 (temporary
data dir, small --snapshot-count), drives a deterministic Kubernetes-like
multi-tenant workload through the etcdctl binary (one subprocess per request;
multi-op requests go through `etcdctl txn` on stdin), then writes:

  etcd-<ver>/snapshot.db          `etcdctl snapshot save` (db + 32-byte SHA-256 trailer)
  etcd-<ver>/writes.jsonl         every write made, in order, with etcd's answered revision
  etcd-<ver>/expected/get.json    `etcdctl get "" --prefix -w json` just before the snapshot
  etcd-<ver>/expected/hashkv.json `etcdctl endpoint hashkv -w json` just before the snapshot
  etcd-<ver>/expected/status.json `snapshot status -w json snapshot.db` (3.4: etcdctl, 3.5: etcdutl)
  etcd-<ver>/expected/summary.json  facts derived by this script (latest/compact rev, leases, ...)
  etcd-<ver>/member/snap/db       raw bbolt file, copied after a clean stop (SIGTERM)
  etcd-<ver>/member/snap/*.snap   raft snapshot files, copied after the stop
  etcd-<ver>/member/wal/*.wal     WAL segments, copied after the stop and truncated
                                  after the last non-zero byte rounded up to 4096

Python 3 standard library only. The content (keys, values, order, revisions) is
deterministic; bytes are not (etcd embeds cluster/member ids, lease ids, terms).
"""
import argparse
import atexit
import base64
import hashlib
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORACLES = os.environ.get("ETCDSNAP_ORACLES", os.path.join(REPO, ".oracles"))

VERSIONS = {
    "3.4.23": {
        "etcd": "/usr/bin/etcd",
        "etcdctl": "/usr/bin/etcdctl",
        "status": ["/usr/bin/etcdctl", "snapshot", "status", "-w", "json"],
        "port": 23790,
    },
    "3.5.1": {
        "etcd": os.path.join(ORACLES, "etcd-3.5.1", "etcd"),
        "etcdctl": os.path.join(ORACLES, "etcd-3.5.1", "etcdctl"),
        "status": [os.path.join(ORACLES, "etcd-3.5.1", "etcdutl"), "snapshot", "status", "-w", "json"],
        "port": 23890,
    },
}
# etcd built from Go modules by tools/install-oracles.sh (tools/oracles/etcd-<v>/).
for _ver, _port in (("3.5.35", 23590), ("3.6.16", 23690), ("3.7.3", 23490)):
    _d = os.path.join(ORACLES, "etcd-" + _ver)
    VERSIONS[_ver] = {
        "etcd": os.path.join(_d, "etcd"),
        "etcdctl": os.path.join(_d, "etcdctl"),
        "status": [os.path.join(_d, "etcdutl"), "snapshot", "status", "-w", "json"],
        "port": _port,
    }

SEED = 20240501
SNAPSHOT_COUNT = 200
LEASE_TTL = 3600
WAL_ROUND = 4096

_children = []


def _cleanup():
    for p in _children:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


atexit.register(_cleanup)
for _sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, lambda s, f: sys.exit(128 + s))


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# etcd server + etcdctl driver


class Etcd:
    def __init__(self, ver, tmp):
        cfg = VERSIONS[ver]
        self.ver = ver
        self.cfg = cfg
        self.tmp = tmp
        self.data = os.path.join(tmp, "data")
        self.port = cfg["port"]
        self.client = "http://127.0.0.1:%d" % self.port
        self.peer = "http://127.0.0.1:%d" % (self.port + 1)
        self.proc = None
        self.env = dict(os.environ, ETCDCTL_API="3")
        for k in list(self.env):
            if k.startswith("ETCD_") or (k.startswith("ETCDCTL_") and k != "ETCDCTL_API"):
                del self.env[k]

    def check_version(self):
        out = subprocess.run([self.cfg["etcd"], "--version"], capture_output=True, text=True, check=True).stdout
        if ("etcd Version: %s\n" % self.ver) not in out:
            raise SystemExit("%s is not etcd %s:\n%s" % (self.cfg["etcd"], self.ver, out))

    def start(self):
        cmd = [
            self.cfg["etcd"], "--name", "default", "--data-dir", self.data,
            "--listen-client-urls", self.client, "--advertise-client-urls", self.client,
            "--listen-peer-urls", self.peer, "--initial-advertise-peer-urls", self.peer,
            "--initial-cluster", "default=" + self.peer,
            "--initial-cluster-token", "etcdsnap-fixture",
            "--snapshot-count", str(SNAPSHOT_COUNT), "--logger", "zap",
        ]
        self.logf = open(os.path.join(self.tmp, "etcd.log"), "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT, env=self.env)
        _children.append(self.proc)
        for _ in range(200):
            if self.proc.poll() is not None:
                raise SystemExit("etcd exited early, see %s/etcd.log" % self.tmp)
            r = subprocess.run(self._ctl(["endpoint", "health"]), capture_output=True, env=self.env)
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise SystemExit("etcd did not become healthy")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)
        self.logf.close()
        if self.proc.returncode not in (0, -signal.SIGTERM):
            log("warning: etcd exit status %s" % self.proc.returncode)

    def _ctl(self, args):
        return [self.cfg["etcdctl"], "--endpoints", self.client, "--command-timeout", "30s"] + args

    def ctl(self, args, stdin=None, json_out=True):
        r = subprocess.run(self._ctl(args + (["-w", "json"] if json_out else [])), input=stdin,
                           capture_output=True, env=self.env)
        if r.returncode != 0:
            raise SystemExit("etcdctl %s failed: %s" % (args, r.stderr.decode(errors="replace")))
        return json.loads(r.stdout) if json_out else r.stdout


def go_quote(b):
    """Quote bytes for etcdctl's txn line parser (argify + strconv.Unquote)."""
    out = ['"']
    for c in b:
        if 0x20 <= c < 0x7F and c not in (0x22, 0x5C):
            out.append(chr(c))
        else:
            out.append("\\x%02x" % c)
    out.append('"')
    return "".join(out)


def sha(b):
    return hashlib.sha256(b).hexdigest()


# --------------------------------------------------------------------------
# workload


class Writer:
    """Issues writes through etcdctl and records them."""

    def __init__(self, etcd, out):
        self.e = etcd
        self.out = out
        self.rev = 1
        self.leases = {}  # name -> hex id
        self.lease_of = {}  # key -> lease name (current)
        self.live = {}  # key -> value bytes

    def rec(self, obj):
        self.out.write(json.dumps(obj, sort_keys=False) + "\n")

    def _rev(self, resp):
        r = resp["header"]["revision"]
        assert r >= self.rev, (r, self.rev)
        self.rev = r
        return r

    def lease_grant(self, name, ttl=LEASE_TTL):
        resp = self.e.ctl(["lease", "grant", str(ttl)])
        lid = resp.get("ID", resp.get("id"))
        hexid = "%x" % lid
        self.leases[name] = hexid
        self.rec({"op": "lease-grant", "name": name, "id": hexid, "ttl": ttl,
                  "rev": resp.get("revision", resp.get("header", {}).get("revision"))})
        return hexid

    def _put_rec(self, key, value, lease):
        return {"op": "put", "key": key.decode(), "value_len": len(value), "value_sha256": sha(value),
                "lease": self.leases[lease] if lease else None}

    def _apply_put(self, key, value, lease):
        self.live[key] = value
        if lease:
            self.lease_of[key] = lease
        else:
            self.lease_of.pop(key, None)

    def put(self, key, value, lease=None):
        args = ["put"]
        if lease:
            args.append("--lease=" + self.leases[lease])
        args.append(key.decode())
        resp = self.e.ctl(args, stdin=value)  # value from stdin: any bytes
        r = self._put_rec(key, value, lease)
        r["rev"] = self._rev(resp)
        self.rec(r)
        self._apply_put(key, value, lease)
        assert self.rev == r["rev"]

    def delete(self, key, prefix=False):
        args = ["del", key.decode()] + (["--prefix"] if prefix else [])
        resp = self.e.ctl(args)
        n = int(resp.get("deleted", 0))
        before = self.rev
        rev = self._rev(resp)
        self.rec({"op": "del", "key": key.decode(), "prefix": prefix, "rev": rev, "deleted": n})
        gone = [k for k in self.live if (k.startswith(key) if prefix else k == key)]
        assert len(gone) == n, (key, n, len(gone))
        assert (rev == before + 1) if n else (rev == before)
        for k in gone:
            del self.live[k]
            self.lease_of.pop(k, None)

    def txn(self, ops, compares=()):
        """ops: ("put", key, value, lease) | ("del", key, prefix). compares: raw etcdctl compare lines."""
        keys = [o[1] for o in ops]
        assert len(set(keys)) == len(keys), "duplicate key in txn"
        lines = list(compares) + [""]
        for o in ops:
            if o[0] == "put":
                flags = ("--lease=%s " % self.leases[o[3]]) if o[3] else ""
                lines.append("put %s%s %s" % (flags, go_quote(o[1]), go_quote(o[2])))
            else:
                lines.append("del %s%s" % (go_quote(o[1]), " --prefix" if o[2] else ""))
        lines += ["", "", ""]
        resp = self.e.ctl(["txn"], stdin="\n".join(lines).encode())
        assert resp.get("succeeded", False), resp
        rev = self._rev(resp)
        recs = []
        for o, r in zip(ops, resp["responses"]):
            if o[0] == "put":
                recs.append(self._put_rec(o[1], o[2], o[3]))
                self._apply_put(o[1], o[2], o[3])
            else:
                # 3.5 prints "response_delete_range", 3.4 "ResponseDeleteRange"
                (dr,) = [v for k, v in r["Response"].items() if "delete" in k.lower()]
                n = int(dr.get("deleted", 0))
                recs.append({"op": "del", "key": o[1].decode(), "prefix": o[2], "deleted": n})
                gone = [k for k in self.live if (k.startswith(o[1]) if o[2] else k == o[1])]
                assert len(gone) == n
                for k in gone:
                    del self.live[k]
                    self.lease_of.pop(k, None)
        self.rec({"op": "txn", "compare": list(compares), "succeeded": True, "ops": recs, "rev": rev})

    def compact(self, rev):
        self.e.ctl(["compact", str(rev), "--physical"], json_out=False)
        self.rec({"op": "compact", "rev": rev, "physical": True})

    def auth(self, args):
        self.e.ctl(args, json_out=False)
        self.rec({"op": "auth", "args": args})


NAMESPACES = ["default", "kube-system", "payments", "frontend", "monitoring"]
PER_NS = [("pods", 20), ("configmaps", 10), ("secrets", 10), ("deployments", 6), ("services", 4)]
KIND = {"pods": "Pod", "configmaps": "ConfigMap", "secrets": "Secret", "deployments": "Deployment",
        "services": "Service", "namespaces": "Namespace", "events": "Event", "leases": "Lease"}
# (tenant, namespace, name, size): configmaps whose values exceed a bbolt page
LARGE = [(1, "default", "big-5k", 5000), (1, "monitoring", "dashboards-12k", 12000),
         (2, "payments", "rules-20k", 20000), (2, "kube-system", "bundle-60k", 60000),
         (3, "frontend", "assets-100k", 100000)]
WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma "
         "tau upsilon phi chi psi omega").split()


class Model:
    def __init__(self):
        self.rng = random.Random(SEED)
        self.gen = {}  # key -> generation counter used inside values
        self.uid = {}

    def key(self, t, res, ns, name):
        if res == "namespaces":
            return ("/tenant-%d/registry/namespaces/%s" % (t, name)).encode()
        return ("/tenant-%d/registry/%s/%s/%s" % (t, res, ns, name)).encode()

    def value(self, key, size=None):
        rng = self.rng
        parts = key.decode().split("/")
        t = int(parts[1].split("-")[1])
        res = parts[3]
        ns = parts[4] if res != "namespaces" else ""
        name = parts[-1]
        g = self.gen.get(key, 0) + 1
        self.gen[key] = g
        if key not in self.uid:
            self.uid[key] = "%08x-%04x-%04x-%04x-%012x" % (rng.getrandbits(32), rng.getrandbits(16),
                                                           rng.getrandbits(16), rng.getrandbits(16),
                                                           rng.getrandbits(48))
        if res == "secrets":
            if t == 2 and rng.random() < 0.7:
                return b"k8s:enc:aesgcm:v1:key1:" + rng.randbytes(12 + rng.randrange(48, 240))
            if t == 3 and rng.random() < 0.7:
                return b"k8s:enc:kms:v2:" + rng.randbytes(rng.randrange(80, 320))
        meta = {"name": name, "uid": self.uid[key], "generation": g,
                "creationTimestamp": "2024-05-01T%02d:%02d:%02dZ" % (rng.randrange(24), rng.randrange(60),
                                                                     rng.randrange(60)),
                "labels": {"app": name.rsplit("-", 1)[0], "tenant": "tenant-%d" % t}}
        if ns:
            meta["namespace"] = ns
        obj = {"apiVersion": "apps/v1" if res == "deployments" else "v1", "kind": KIND[res], "metadata": meta}
        if res == "pods":
            obj["spec"] = {"nodeName": "node-%d" % rng.randrange(1, 9),
                           "containers": [{"name": "app", "image": "registry.example.com/%s:v%d" % (name, g),
                                           "args": rng.sample(WORDS, 4)}]}
            obj["status"] = {"phase": rng.choice(["Pending", "Running", "Running", "Succeeded"])}
        elif res == "configmaps":
            data = {"config.yaml": " ".join(rng.choice(WORDS) for _ in range(rng.randrange(5, 40)))}
            if size:
                blob = []
                n = 0
                while n < size:
                    line = "%06d %s\n" % (n, " ".join(rng.choice(WORDS) for _ in range(8)))
                    blob.append(line)
                    n += len(line)
                data["blob"] = "".join(blob)[: size]
            obj["data"] = data
        elif res == "secrets":
            obj["type"] = "Opaque"
            obj["data"] = {"password": base64.b64encode(rng.randbytes(24)).decode()}
        elif res == "deployments":
            obj["spec"] = {"replicas": rng.randrange(1, 6), "template": {"spec": {"containers": [
                {"name": "app", "image": "registry.example.com/%s:v%d" % (name, g)}]}}}
        elif res == "services":
            obj["spec"] = {"clusterIP": "10.%d.%d.%d" % (t, rng.randrange(256), rng.randrange(1, 255)),
                           "ports": [{"port": rng.choice([80, 443, 8080])}]}
        elif res == "namespaces":
            obj["status"] = {"phase": "Active"}
        elif res == "events":
            obj["reason"] = rng.choice(["Scheduled", "Pulled", "Created", "Started", "BackOff"])
            obj["message"] = " ".join(rng.choice(WORDS) for _ in range(10))
        v = json.dumps(obj, separators=(",", ":")).encode()
        if size:
            assert len(v) > size
        return v


def run_workload(w):
    m = Model()
    rng = m.rng
    large = {m.key(t, "configmaps", ns, n): s for (t, ns, n, s) in LARGE}

    for name in ("tenant-1-events", "tenant-2-events", "shared-events", "unused"):
        w.lease_grant(name)

    w.put(b"compact_rev_key", str(w.rev).encode())

    # namespaces: one multi-put txn per tenant (sub revisions 0..4)
    for t in (1, 2, 3):
        ops = []
        for ns in NAMESPACES:
            k = m.key(t, "namespaces", None, ns)
            ops.append(("put", k, m.value(k), None))
        w.txn(ops)

    # objects + events, shuffled; ~25% grouped into multi-put txns
    objs = []
    for t in (1, 2, 3):
        for ns in NAMESPACES:
            for res, n in PER_NS:
                for i in range(n):
                    objs.append((m.key(t, res, ns, "%s-%s-%d" % (res[:-1], ns[:4], i)), None))
        for k in large:
            if k.startswith(b"/tenant-%d/" % t):
                objs.append((k, None))
        for i in range(10):
            lease = {1: "tenant-1-events", 2: "tenant-2-events", 3: "shared-events"}[t]
            objs.append((m.key(t, "events", NAMESPACES[i % 5], "evt-%d" % i), lease))
    objs.append((m.key(1, "leases", "kube-node-lease", "node-1"), "shared-events"))
    objs.append((m.key(1, "leases", "kube-node-lease", "node-2"), "shared-events"))
    rng.shuffle(objs)
    i = 0
    while i < len(objs):
        if rng.random() < 0.25:
            n = rng.randrange(2, 9)
            batch = objs[i:i + n]
            w.txn([("put", k, m.value(k, large.get(k)), l) for k, l in batch])
            i += n
        else:
            k, l = objs[i]
            w.put(k, m.value(k, large.get(k)), l)
            i += 1

    all_keys = sorted(k for k, _ in objs)
    # the two largest values are not in the random updates (keeps the fixtures small)
    updatable = [k for k in all_keys if b"/events/" not in k and b"/leases/" not in k
                 and b"/namespaces/" not in k and large.get(k, 0) < 50000]

    def updates(count, txn_p):
        chosen = rng.sample([k for k in updatable if k in w.live], count)
        seq = []
        for k in chosen:
            seq += [k] * rng.randrange(2, 6)
        rng.shuffle(seq)
        i = 0
        while i < len(seq):
            if rng.random() < txn_p:
                batch = []
                while i < len(seq) and len(batch) < rng.randrange(2, 7) and seq[i] not in batch:
                    batch.append(seq[i])
                    i += 1
                if len(batch) > 1:
                    w.txn([("put", k, m.value(k, large.get(k)), w.lease_of.get(k)) for k in batch])
                    continue
                i -= len(batch)
            k = seq[i]
            w.put(k, m.value(k, large.get(k)), w.lease_of.get(k))
            i += 1

    def kube_compact_rev_update():
        # what kube-apiserver's compactor does: CAS on the version of compact_rev_key
        ver = w.e.ctl(["get", "compact_rev_key"])["kvs"][0]["version"]
        w.txn([("put", b"compact_rev_key", str(w.rev).encode(), None)],
              compares=['ver("compact_rev_key") = "%d"' % ver])

    updates(220, 0.2)
    k = m.key(3, "configmaps", "frontend", "assets-100k")
    w.put(k, m.value(k, large[k]))  # a second 100 KB revision
    kube_compact_rev_update()

    # deletes (tombstones), one range delete, mixed put+delete txns
    deleted = rng.sample([k for k in updatable if k in w.live and k not in large], 60)
    for k in deleted:
        w.delete(k)
    w.delete(b"/tenant-2/registry/pods/frontend/", prefix=True)
    for t in (1, 2, 3):
        pods = [k for k in sorted(w.live) if k.startswith(b"/tenant-%d/registry/pods/" % t)]
        deps = [k for k in sorted(w.live) if k.startswith(b"/tenant-%d/registry/deployments/" % t)]
        dp, dd = rng.choice(pods), rng.choice(deps)
        newpod = dp.rsplit(b"-", 1)[0] + b"-rs%d" % rng.randrange(1000)
        w.txn([("del", dp, False), ("put", dd, m.value(dd), None), ("put", newpod, m.value(newpod), None)])

    # auth (not enabled)
    w.auth(["role", "add", "tenant1-rw"])
    w.auth(["role", "grant-permission", "tenant1-rw", "readwrite", "/tenant-1/", "--prefix"])
    w.auth(["user", "add", "tenant1-user", "--interactive=false", "--new-user-password=tenant1-pass"])
    w.auth(["user", "grant-role", "tenant1-user", "tenant1-rw"])
    w.auth(["role", "add", "root"])
    w.auth(["user", "add", "root", "--interactive=false", "--new-user-password=root-pass"])
    w.auth(["user", "grant-role", "root", "root"])

    updates(60, 0.2)
    kube_compact_rev_update()

    # physical compaction a little behind head (as kube-apiserver does), then more history
    compact_at = w.rev - 40
    w.compact(compact_at)
    w.put(b"compact_rev_key", str(compact_at).encode())

    updates(80, 0.25)
    # re-creates of deleted keys (new generation), one of them in a txn
    again = rng.sample([k for k in deleted if k not in w.live], 8)
    for k in again[:5]:
        w.put(k, m.value(k))
    w.txn([("put", k, m.value(k), None) for k in again[5:]])
    k = b"/tenant-2/registry/pods/frontend/pod-fron-3"
    w.put(k, m.value(k))
    # delete a leased key, detach another from its lease
    w.delete(m.key(1, "events", "default", "evt-0"))
    k = m.key(2, "events", "kube-system", "evt-1")
    w.put(k, m.value(k), None)
    for k in rng.sample([k for k in updatable if k in w.live and k not in large], 20):
        w.delete(k)
    updates(30, 0.2)
    kube_compact_rev_update()
    # the last write belongs to tenant 3
    k = m.key(3, "pods", "default", "pod-defa-0")
    w.put(k, m.value(k))
    assert w.rev == json.loads(json.dumps(w.e.ctl(["get", "x"])))["header"]["revision"]
    return compact_at


# --------------------------------------------------------------------------
# files


def truncate_wal(src, dst):
    data = open(src, "rb").read()
    end = len(data.rstrip(b"\0"))
    size = min(len(data), -(-end // WAL_ROUND) * WAL_ROUND)
    # cross-check with the frame structure: the last frame must end within `size`
    off = 0
    nrec = 0
    while off + 8 <= len(data):
        (lf,) = struct.unpack_from("<q", data, off)
        if lf == 0:
            break
        rec = lf & ~(0xFF << 56) if lf >= 0 else (lf & ((1 << 56) - 1))
        pad = ((lf & 0xFFFFFFFFFFFFFFFF) >> 56) & 0x7 if lf < 0 else 0
        off += 8 + rec + pad
        nrec += 1
    assert off <= size, (src, off, size)
    with open(dst, "wb") as f:
        f.write(data[:size])
    return len(data), size, nrec


def bolt_meta(path):
    """Return the newer valid meta page of a bbolt file (page 0 or 1)."""
    with open(path, "rb") as f:
        head = f.read(8192)
    best = None
    for p in (0, 1):
        b = head[p * 4096:(p + 1) * 4096]
        magic, version, psize, flags, rootb, rootseq, freelist, pgid, txid, csum = struct.unpack_from(
            "<IIIIQQQQQQ", b, 16)
        m = {"page": p, "magic": "%x" % magic, "version": version, "pageSize": psize, "root": rootb,
             "freelist": freelist, "pgid": pgid, "txid": txid}
        if magic == 0xED0CDAED and (best is None or txid > best["txid"]):
            best = m
    return best


def gen_version(ver, outroot):
    tmp = tempfile.mkdtemp(prefix="etcdsnap-fixture-%s-" % ver)
    try:
        _gen_version(ver, outroot, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _gen_version(ver, outroot, tmp):
    cfg = VERSIONS[ver]
    t0 = time.time()
    out = os.path.join(outroot, "etcd-" + ver)
    e = Etcd(ver, tmp)
    e.check_version()
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(os.path.join(out, "expected"))
    os.makedirs(os.path.join(out, "member", "snap"))
    os.makedirs(os.path.join(out, "member", "wal"))
    e.start()
    try:
        with open(os.path.join(out, "writes.jsonl"), "w") as wf:
            w = Writer(e, wf)
            compact_at = run_workload(w)
        log("%s: workload done, rev %d, %.1fs" % (ver, w.rev, time.time() - t0))
        get_raw = e.ctl(["get", "", "--prefix", "-w", "json"], json_out=False)
        open(os.path.join(out, "expected", "get.json"), "wb").write(get_raw)
        hashkv = e.ctl(["endpoint", "hashkv", "-w", "json"], json_out=False)
        open(os.path.join(out, "expected", "hashkv.json"), "wb").write(hashkv)
        leases = []
        for name, hexid in w.leases.items():
            ttl = e.ctl(["lease", "timetolive", hexid, "--keys"])
            keys = sorted(base64.b64decode(k).decode() for k in (ttl.get("keys") or []))
            want = sorted(k.decode() for k, l in w.lease_of.items() if l == name)
            assert keys == want, (name, keys, want)
            leases.append({"name": name, "id": hexid, "granted_ttl": ttl["granted-ttl"], "keys": keys})
        snap = os.path.join(out, "snapshot.db")
        e.ctl(["snapshot", "save", snap], json_out=False)
        os.chmod(snap, 0o644)
    finally:
        e.stop()
    # validate get.json against the model
    got = json.loads(get_raw)
    kv = {base64.b64decode(x["key"]): base64.b64decode(x.get("value", "")) for x in got.get("kvs", [])}
    assert kv == w.live, "live server content differs from the workload model"
    assert got["header"]["revision"] == w.rev

    size = os.path.getsize(snap)
    assert size % 512 == 32, "snapshot.db size %d is not db+32-byte trailer" % size
    blob = open(snap, "rb").read()
    assert hashlib.sha256(blob[:-32]).digest() == blob[-32:], "snapshot trailer is not SHA-256 of the db"
    before = sha(blob)
    st = subprocess.run(cfg["status"] + [snap], capture_output=True, check=True, env=e.env).stdout
    open(os.path.join(out, "expected", "status.json"), "wb").write(st)
    assert sha(open(snap, "rb").read()) == before, "snapshot status modified snapshot.db"

    # raw member files
    mem = os.path.join(e.data, "member")
    shutil.copyfile(os.path.join(mem, "snap", "db"), os.path.join(out, "member", "snap", "db"))
    snaps = sorted(f for f in os.listdir(os.path.join(mem, "snap")) if f.endswith(".snap"))
    for f in snaps:
        shutil.copyfile(os.path.join(mem, "snap", f), os.path.join(out, "member", "snap", f))
    wals = []
    for f in sorted(os.listdir(os.path.join(mem, "wal"))):
        if f.endswith(".wal"):
            full, kept, nrec = truncate_wal(os.path.join(mem, "wal", f), os.path.join(out, "member", "wal", f))
            wals.append({"file": f, "original_size": full, "kept_size": kept, "frames": nrec})
    rawdb = os.path.join(out, "member", "snap", "db")
    summary = {
        "etcd_version": ver,
        "seed": SEED,
        "latest_revision": w.rev,
        "compact_revision": compact_at,
        "live_keys": len(w.live),
        "writes": sum(1 for _ in open(os.path.join(out, "writes.jsonl"))),
        "leases": leases,
        "snapshot_db": {"size": size, "bolt_meta": bolt_meta(snap)},
        "raw_db": {"size": os.path.getsize(rawdb), "bolt_meta": bolt_meta(rawdb)},
        "snap_files": snaps,
        "wal_files": wals,
        "snapshot_status": json.loads(st),
    }
    with open(os.path.join(out, "expected", "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    log("%s: done in %.1fs: %s" % (ver, time.time() - t0, json.dumps(summary)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--version", required=True, choices=sorted(VERSIONS) + ["all"])
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    for ver in (sorted(VERSIONS) if a.version == "all" else [a.version]):
        gen_version(ver, a.out)


if __name__ == "__main__":
    main()
