#!/usr/bin/env bash
# Full damage campaign of `etcdsnap salvage` (issue 25): damaged copies of
# every version's fixtures (snapshot and raw db), or of the given inputs, are
# salvaged through the library and judged against the undamaged original; the
# per-class table gives cases salvaged / refused / panicked, the share of the
# original's revisions (after its compact revision) and of its live keys
# recovered, and every broken invariant as `BUG input | class | what: ...`.
#
#   tools/damage-campaign.sh                          # fixtures, 20 cases per class each
#   tools/damage-campaign.sh big.db                   # a generated snapshot (tools/gen-large-snapshot.sh big.db 0.3)
#   DAMAGE_PER_CLASS=3 tools/damage-campaign.sh big.db
#   DAMAGE_CLASSES="zero,truncated" tools/damage-campaign.sh
#   DAMAGE_GO_EVERY=10 tools/damage-campaign.sh       # Go bbolt check of each line on every 10th output
#   DAMAGE_SHOW=1 tools/damage-campaign.sh            # one line per case
#
# Exits non-zero on a panic or a broken invariant (DAMAGE_ASSERT=0: only print).
set -euo pipefail
cd "$(dirname "$0")/.."
export DAMAGE_FULL=1
if [ $# -gt 0 ]; then
  inputs=()
  for f in "$@"; do inputs+=("$(cd "$(dirname "$f")" && pwd)/$(basename "$f")"); done
  DAMAGE_INPUTS=$(IFS=,; echo "${inputs[*]}")
  export DAMAGE_INPUTS
fi
exec cargo test --release -p etcdsnap --test damage_campaign -- --nocapture --exact damage_campaign
