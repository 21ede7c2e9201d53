#!/usr/bin/env bash
# Peak anonymous memory (RssAnon: heap and stacks, not the mapped file) of
# every command on one snapshot, against issue 10's bound of 64 MiB.
#
#   tools/bench-mem.sh SNAPSHOT [TENANT_PREFIX]
#
# Generate a many-keys snapshot to judge memory by the key count:
#   LARGE_KEYS=600000 LARGE_VALUE_LOG2=7,9 tools/gen-large-snapshot.sh OUT 0.3
# Each command runs once, sampled every 20 ms (bench-lib.sh's mem); `diff`
# compares the file with a copy of itself, `bolt compact`, the rewrites and salvage
# write into a temporary directory beside SNAPSHOT. Also prints the live keys
# and revisions (from `status`) and the bytes per live key above a 16 MiB base.
# Environment: ETCDSNAP (default target/release/etcdsnap, built if missing).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 SNAPSHOT [TENANT_PREFIX]" >&2; exit 2; }
file=$1
prefix=${2:-/registry/configmaps/}
repo=$(cd "$(dirname "$0")/.." && pwd)
etcdsnap=${ETCDSNAP:-$repo/target/release/etcdsnap}
[ -x "$etcdsnap" ] || (cd "$repo" && cargo build -q --release -p etcdsnap)
. "$repo/tools/bench-lib.sh"
tmp=$(mktemp -d "$(dirname "$(realpath "$file")")/bench-mem-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cp "$file" "$tmp/copy.db"
read -r live revs < <("$etcdsnap" status "$file" --json | python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["live_keys"], s["revisions"])')
echo "file: $file ($(stat -c %s "$file") bytes): $live live keys, $revs revisions" >&2
machine "$file"
bump=(--bump-revision 1000000000 --mark-compacted)
jobs=(
  "status|status $file"
  "hashkv|hashkv $file"
  "verify|verify $file"
  "keys|keys $file"
  "keys --all-revisions|keys $file --all-revisions"
  "get --prefix -w json|get $file / --prefix -w json"
  "du|du $file --by resource"
  "diff (copy)|diff $file $tmp/copy.db"
  "bolt check|bolt check $file"
  "bolt compact|bolt compact $file $tmp/out.db --force"
  "rewrite bump (patched)|rewrite $file $tmp/out.db --force ${bump[*]}"
  "rewrite bump --rebuild|rewrite $file $tmp/out.db --force --rebuild ${bump[*]}"
  "rewrite --compact|rewrite $file $tmp/out.db --force --compact"
  "rewrite tenant move|rewrite $file $tmp/out.db --force --include $prefix --rename $prefix=/moved$prefix ${bump[*]}"
  "salvage|salvage $file $tmp/out.db --force -q"
)
printf '%-26s %11s %10s %14s\n' command RssAnon_MB "<= 64 MiB" "B/live key*"
worst=0
for j in "${jobs[@]}"; do
  name=${j%%|*}
  # shellcheck disable=SC2086  # the job line is split into arguments on purpose
  read -r a _ < <(mem "$etcdsnap" ${j#*|})
  ok=$(awk -v a="$a" 'BEGIN{print (a <= 64 * 1.048576) ? "yes" : "NO"}')
  per=$(awk -v a="$a" -v l="$live" 'BEGIN{x = (a - 16 * 1.048576) * 1e6 / (l > 0 ? l : 1); printf "%.0f", (x > 0 ? x : 0)}')
  printf '%-26s %11s %10s %14s\n' "$name" "$a" "$ok" "$per"
  [ "$ok" = yes ] || worst=1
done
echo "* (RssAnon - 16 MiB) / live keys: the bytes per live key above a fixed base" >&2
exit "$worst"
