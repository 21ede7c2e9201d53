#!/usr/bin/env bash
# Build every fuzz target and run each one briefly (a smoke test).
#
#   tools/fuzz-build.sh [SECONDS]      (per target, default 20; 0 = build and seed only)
#
# The fuzz crate is its own cargo workspace in fuzz/ (cargo-fuzz layout,
# libfuzzer-sys). It needs nightly features, enabled on stable with
# RUSTC_BOOTSTRAP=1; cargo-fuzz is installed (cargo install --locked) if missing.
# Corpora go to fuzz/corpus/<target>/ (seeded from fuzz/seeds/), crashes to
# fuzz/artifacts/<target>/ (both git-ignored). Exit status is non-zero when a
# target crashes, times out (-timeout=5 per input) or exceeds 2 GB RSS.
set -euo pipefail
secs=${1:-20}
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

cargo fuzz build --fuzz-dir fuzz

# Seed corpora: whole files for the raw-bytes target, a few mutation scripts
# (flags byte, then 5-byte records; see fuzz/src/lib.rs) for the fixture target.
seed=fuzz/corpus/bolt_open_check_iterate
mkdir -p "$seed"
cp fuzz/seeds/*.db "$seed/"
seed=fuzz/corpus/bolt_mutate_fixture
mkdir -p "$seed"
printf '\x00' > "$seed/plain-4096"
printf '\x01' > "$seed/plain-1024"
printf '\x02\x0e\x10\x00\x00\x07' > "$seed/meta0-root-7-fixed"
printf '\x03\x0e\x30\x00\x00\xff' > "$seed/meta0-freelist-max-fixed"
printf '\x00\x08\x0a\x00\x05\x00' > "$seed/page5-count-0"
# etcd targets: the small real etcd snapshot, and scripts over it (flag bit 3:
# recompute the SHA-256 trailer after patching; bit 4: also run the bbolt layer).
seed=fuzz/corpus/snapshot_open_verify
mkdir -p "$seed"
cp fuzz/seeds/etcd-small.db "$seed/"
seed=fuzz/corpus/snapshot_mutate_verify
mkdir -p "$seed"
printf '\x00' > "$seed/plain"
printf '\x08' > "$seed/plain-retrailer"
printf '\x18\x00\x10\x00\x00\x07' > "$seed/patch-retrailer-bolt"
printf '\x0a\x0e\x10\x00\x00\x07' > "$seed/meta0-root-fixed-retrailer"
# Salvage: the small snapshot undamaged, a page zeroed (bit 5) with the trailer
# recomputed (bit 3), as a raw db (bit 6), and a meta page byte changed.
seed=fuzz/corpus/salvage_mutate
mkdir -p "$seed"
printf '\x00' > "$seed/plain"
printf '\x28\x00\x00\x00\x05\x00' > "$seed/page5-zeroed-retrailer"
printf '\x40\x0b\x10\x00\x00\x07' > "$seed/raw-meta0-byte"
printf '\x40\x0f\x0f\x00\x40\x40\x00\x40' > "$seed/raw-huge-overflow"
printf '\x40\x30\x3a\x3a\x00\x00\x07' > "$seed/raw-create-revision-byte"
printf '\x68\x32\x68\x00\x30\x40\x40\x00\x68\x00\x00\x00\x00\x28\x68' > "$seed/raw-created-with-version-64"
printf '\xfb\x31\x24\xf2\x24\xf2\x9c\x9c\x9c\x12\x00\xb9\xb9\xb9\xb9\xb9\xb9\xb9\xb9\xb9\xb9\xb9\xb9' > "$seed/tombstone-without-key"
# Builder target: programs (header: page size/inline/txid, fill; then ops, see
# fuzz/fuzz_targets/bolt_builder_model.rs): empty file, a sequential run with
# wrong calls, 1 KiB pages with wide keys and a multi-page value, 64 KiB pages
# without inlining and empty nested buckets.
seed=fuzz/corpus/bolt_builder_model
mkdir -p "$seed"
printf '\x00\xfa' > "$seed/empty-4096"
printf '\x00\xfa\x04\x01a\x00\x00\x03\xff\x01p\x10\x00\x07\x05\x00\x00\x07\x00\x01\x01\x07\x10\x00\x06\x06\x07\x00\x01\x04' > "$seed/run-4096-misuse"
printf '\x01\xe1\x04\x01a\x00\x00\x03\xff\x02pq\x30\x01\x09\x07\x02xyz\x00\x05\xfe\x00\x08\x00\xff\x00\x00\xf0\x02\x00\x06\x07\xff\xff\x04' > "$seed/run-1024-wide-big"
printf '\x07\x00\x00\x01b\x00\x09\x07\x01n\x00\x06\x00\x01c\x01\x09\x00\x00\x00\x00\x00\x00\x00' > "$seed/noinline-64k-empty-nested"

seed=fuzz/corpus/wal_decode
mkdir -p "$seed"
head -c 65536 testdata/etcd-3.5.1/member/wal/0000000000000000-0000000000000000.wal > "$seed/etcd-3.5.1-head"
head -c 65536 testdata/etcd-3.4.23/member/wal/0000000000000000-0000000000000000.wal > "$seed/etcd-3.4.23-head"

# Kubernetes values: a protobuf envelope (a ConfigMap), JSON, encrypted.
seed=fuzz/corpus/kube_values
mkdir -p "$seed"
printf 'k8s\x00\x0a\x0f\x0a\x02v1\x12\x09ConfigMap\x12\x0e\x0a\x0c\x0a\x04cm-0\x1a\x04shop\x1a\x00\x22\x00' > "$seed/configmap"
printf '{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w"}}' > "$seed/json"
printf 'k8s:enc:aescbc:v1:key-cbc:0123456789abcdef' > "$seed/aescbc"

# SECONDS=0 builds and seeds only (tools/fuzz-campaign.sh relies on the seeds).
[ "$secs" -gt 0 ] || exit 0

targets=$(cargo fuzz list --fuzz-dir fuzz)
status=0
for t in $targets; do
  echo "== fuzz $t for ${secs}s" >&2
  if ! cargo fuzz run --fuzz-dir fuzz "$t" -- \
      -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 -print_final_stats=1; then
    echo "FAILED: $t (see fuzz/artifacts/$t/)" >&2
    status=1
  fi
done
exit $status
