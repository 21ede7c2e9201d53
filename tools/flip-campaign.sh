#!/usr/bin/env bash
# Full bit-flip campaign: flips every bit of the reachable bbolt structure (both
# metas, page headers, branch/leaf element arrays, bucket headers, inline bucket
# pages) of the raw member/snap/db of every etcd version under testdata/, one at a
# time, and prints per structure class how many flips `verify` and `bolt check`
# report, and how often Go bbolt 1.3.6 / 1.4.3 / 1.5.0 reject or panic.
#
#   tools/flip-campaign.sh                 # every version, Go checkers on every 100th flip
#   FLIP_ORACLE_EVERY=1 tools/flip-campaign.sh     # Go checkers on every flip (slow)
#   FLIP_ORACLE_EVERY=0 tools/flip-campaign.sh     # no Go checkers
#   FLIP_VERSIONS=etcd-3.5.1,etcd-3.7.3 tools/flip-campaign.sh
#   FLIP_SHOW_MISSED=1 tools/flip-campaign.sh      # list every undetected flip
#
# Exits non-zero when a version is below 99 % (bucket sequences aside), when
# anything panics, or when a Go checker rejects a flip that verify accepts.
# The Go checkers come from tools/install-oracles.sh (run it once).
set -euo pipefail
cd "$(dirname "$0")/.."
export FLIP_ORACLE_EVERY=${FLIP_ORACLE_EVERY:-100}
export FLIP_ASSERT=${FLIP_ASSERT:-1}
exec cargo test --release -p etcdsnap-mvcc --test flip_campaign -- --ignored --nocapture --test-threads=1 full_campaign
