#!/usr/bin/env bash
# Time `du`, `diff` and `diff --history` beside `status` on one snapshot, and the
# peak anonymous memory (RssAnon: heap and stacks, not the mapped file) of
# du, diff, diff --history and hashkv.
#
#   tools/bench-du-diff.sh SNAPSHOT [RUNS]      (RUNS default 3; medians reported)
#
# The second file of each diff is SNAPSHOT rewritten with one key dropped
# (`rewrite --drop-key K`, K the first key of the snapshot): a copy with a few
# planted differences (that key's revisions). Commands run interleaved, with
# the page cache warm, so the ratios against `status` come from one run.
# Environment: ETCDSNAP (default target/release/etcdsnap, built if missing).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 SNAPSHOT [RUNS]" >&2; exit 2; }
file=$1
runs=${2:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/tools/bench-lib.sh"
machine "$file"
etcdsnap=${ETCDSNAP:-$repo/target/release/etcdsnap}
[ -x "$etcdsnap" ] || (cd "$repo" && cargo build -q --release -p etcdsnap)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
key=$("$etcdsnap" keys "$file" --limit 1 | head -1)
planted=$tmp/planted.db
"$etcdsnap" rewrite "$file" "$planted" --drop-key "$key" --allow-empty-rules > /dev/null
warm "$file" "$planted"


declare -A t
names=(status du diff history)
for _ in $(seq "$runs"); do
  t[status]+="$(secs "$etcdsnap" status "$file") "
  t[du]+="$(secs "$etcdsnap" du "$file") "
  t[diff]+="$(secs "$etcdsnap" diff "$file" "$planted") "
  t[history]+="$(secs "$etcdsnap" diff --history "$file" "$planted") "
done
base=$(printf '%s\n' ${t[status]} | median)
printf '%-22s %10s %12s\n' "command ($(du -h "$file" | cut -f1))" "median_s" "vs_status"
for n in "${names[@]}"; do
  m=$(printf '%s\n' ${t[$n]} | median)
  printf '%-22s %10.3f %12.2f\n' "$n" "$m" "$(echo "$m / $base" | bc -l)"
done

printf '\n%-22s %12s %12s\n' "memory" "RssAnon_MB" "VmHWM_MB"
for c in "du" "diff" "diff --history" "hashkv"; do
  case $c in
    diff*) read -r a h < <(mem "$etcdsnap" $c "$file" "$planted") ;;
    *) read -r a h < <(mem "$etcdsnap" $c "$file") ;;
  esac
  printf '%-22s %12s %12s\n' "$c" "$a" "$h"
done
