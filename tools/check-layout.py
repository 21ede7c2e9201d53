#!/usr/bin/env python3
"""Checks the shape of the house (tools/test.sh runs it before cargo test):

1. Crate dependencies only go down the layering below: never up, never
   sideways (normal and build dependencies; dev-dependencies may reach any
   lower crate and the test-only crates).
2. No import cycle among the top-level modules of a crate.
3. No Rust source file under crates/ or benches/ is over MAX_LINES lines.

Exit 1 with what is wrong; prints a one-line summary when all is well.
"""

import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_LINES = 800

# Lower layers first. A crate may depend on crates of lower layers only.
# io: OS plumbing; proto: etcd's protobuf messages and the wire cursor;
# bolt: the bbolt format; keys: key rules and Kubernetes value formats;
# mvcc: etcd's backend schema; wal: the WAL; k8s: encryption providers;
# datadir: what needs both the db and the WAL; remote: object storage input
# and fleet verification (over mvcc); cli: the binary.
LAYERS = {
    "etcdsnap-io": 0,
    "etcdsnap-proto": 0,
    "etcdsnap-bolt": 1,
    "etcdsnap-keys": 1,
    "etcdsnap-mvcc": 2,
    "etcdsnap-wal": 2,
    "etcdsnap-k8s": 2,
    "etcdsnap-datadir": 3,
    "etcdsnap-remote": 4,
    "etcdsnap": 5,
}
# Reached only by tests and benchmarks.
TEST_ONLY = {"etcdsnap-testkit", "etcdsnap-benches"}

# Files allowed past MAX_LINES, each with the reason.
LONG_FILES = {}


def crate_graph():
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)["packages"]


def check_crates(problems):
    for pkg in crate_graph():
        name = pkg["name"]
        if name in TEST_ONLY:
            continue
        if name not in LAYERS:
            problems.append(f"crate {name} has no layer in tools/check-layout.py: add it to LAYERS")
            continue
        for dep in pkg["dependencies"]:
            d = dep["name"]
            if not d.startswith("etcdsnap"):
                continue
            if d in TEST_ONLY:
                if dep["kind"] != "dev":
                    problems.append(f"{name} depends on the test-only crate {d} outside dev-dependencies")
                continue
            if d not in LAYERS:
                problems.append(f"{name} depends on {d}, which has no layer")
                continue
            if LAYERS[d] >= LAYERS[name]:
                way = "sideways" if LAYERS[d] == LAYERS[name] else "upwards"
                problems.append(
                    f"{name} (layer {LAYERS[name]}) depends {way} on {d} (layer {LAYERS[d]}) [{dep['kind'] or 'normal'}]"
                )


USE_CRATE = re.compile(r"\bcrate::(\w+)")


def module_files(src):
    """Top-level module name -> its files (a file module, or a directory tree)."""
    mods = {}
    for entry in sorted(os.listdir(src)):
        path = os.path.join(src, entry)
        if entry in ("lib.rs", "main.rs"):
            continue
        if entry.endswith(".rs"):
            mods.setdefault(entry[:-3], []).append(path)
        elif os.path.isdir(path):
            for dirpath, _, files in os.walk(path):
                for f in files:
                    if f.endswith(".rs"):
                        mods.setdefault(entry, []).append(os.path.join(dirpath, f))
    return mods


def strip_comments(text):
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def cycles_of(graph):
    """Every elementary cycle's node set, found by DFS from each node (small graphs)."""
    found = set()
    order = sorted(graph)

    def dfs(start, node, path, seen):
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                found.add(tuple(path))
            elif nxt not in seen and order.index(nxt) > order.index(start):
                dfs(start, nxt, path + [nxt], seen | {nxt})

    for n in order:
        dfs(n, n, [n], {n})
    return sorted(found)


def check_modules(problems):
    for crate in sorted(os.listdir(os.path.join(ROOT, "crates"))):
        src = os.path.join(ROOT, "crates", crate, "src")
        if not os.path.isdir(src):
            continue
        mods = module_files(src)
        graph = {}
        for name, files in mods.items():
            deps = set()
            for f in files:
                with open(f, encoding="utf-8") as fh:
                    text = strip_comments(fh.read())
                # Test modules may reach anything.
                text = text.split("#[cfg(test)]", 1)[0]
                deps |= {m for m in USE_CRATE.findall(text) if m in mods and m != name}
            graph[name] = deps
        for cycle in cycles_of(graph):
            problems.append(f"crates/{crate}: modules import each other in a circle: {' -> '.join(cycle + (cycle[0],))}")


def check_sizes(problems):
    for top in ("crates", "benches"):
        for dirpath, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = [d for d in dirs if d != "target"]
            for f in files:
                if not f.endswith(".rs"):
                    continue
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, ROOT)
                with open(path, encoding="utf-8") as fh:
                    n = sum(1 for _ in fh)
                if n > MAX_LINES and rel not in LONG_FILES:
                    problems.append(f"{rel}: {n} lines (more than {MAX_LINES}): split it into modules that own one thing")


def main():
    problems = []
    check_crates(problems)
    check_modules(problems)
    check_sizes(problems)
    if problems:
        print("check-layout: the house is out of shape:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(f"check-layout: {len(LAYERS)} crates layered, no module circles, no file over {MAX_LINES} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
