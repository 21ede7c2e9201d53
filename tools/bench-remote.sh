#!/usr/bin/env bash
# Object storage benchmark: `verify s3://…` of one large object through
# versitygw on loopback against the plain download of the same object.
#
#   tools/bench-remote.sh SNAPSHOT [ROUNDS]
#
# Builds target/release/{etcdsnap,remote-get}, starts versitygw 1.8.0 (the
# oracle, tools/install-oracles.sh) with its posix backend in a scratch
# directory on a free 127.0.0.1 port, uploads SNAPSHOT with one signed PUT
# (curl --aws-sigv4; the backend's file is the only copy made), then runs
# ROUNDS (default 5) rounds of
#   download     remote-get s3://bench/big.db             (one GET through etcdsnap-remote's
#                                                          object_store client, body dropped:
#                                                          the floor of our own client)
#   verify-s3    etcdsnap verify s3://bench/big.db        (spool + SHA-256 on the way + checks)
# as a pair, their order alternating from round to round (so a drift of the
# machine's load or memory state hits both alike), plus per round
#   curl         curl --aws-sigv4 GET to /dev/null        (another client's floor)
#   local        etcdsnap verify SNAPSHOT                 (the file, page cache warm)
# and prints each one's median seconds and client CPU seconds (user + sys),
# the median of the per-pair ratios verify-s3 / download, and the peak
# RssAnon of one verify-s3. The load average before and after says whether
# the machine was quiet.
#
# BENCH_ETCDSNAP=PATH times another etcdsnap binary (an A/B of two builds
# against one server). BENCH_SMALL_OBJECTS=N (default 0) also uploads N
# copies of a committed 1.9 MB fixture under 200 cluster prefixes and times
# one fleet verify at -j 16 (objects/s, peak RssAnon). The spool goes to
# $BENCH_SPOOL (default a scratch directory under $TMPDIR). Stops the server
# it started and removes the scratch directory on exit.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 SNAPSHOT [ROUNDS]" >&2; exit 2; }
big=$1
rounds=${2:-5}
small=${BENCH_SMALL_OBJECTS:-0}
[ -f "$big" ] || { echo "$big: not a file" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/tools/bench-lib.sh"
oracles=${ETCDSNAP_ORACLES:-$repo/.oracles}
gw=$oracles/versitygw-1.8.0/versitygw
[ -x "$gw" ] || { echo "no $gw: run tools/install-oracles.sh" >&2; exit 1; }
target=${CARGO_TARGET_DIR:-$repo/target}
(cd "$repo" && cargo build --release --locked -q -p etcdsnap -p etcdsnap-benches --bin etcdsnap --bin remote-get)
etcdsnap=${BENCH_ETCDSNAP:-$target/release/etcdsnap}
get=$target/release/remote-get

machine "$big"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
scratch=$(mktemp -d "${TMPDIR:-/tmp}/bench-remote.XXXXXX")
spool=${BENCH_SPOOL:-$scratch/spool}
mkdir -p "$scratch/posix/bench" "$spool"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export AWS_ACCESS_KEY_ID=bench-access AWS_SECRET_ACCESS_KEY=bench-secret-0123456789 AWS_REGION=us-east-1
ROOT_ACCESS_KEY=$AWS_ACCESS_KEY_ID ROOT_SECRET_KEY=$AWS_SECRET_ACCESS_KEY \
  "$gw" --port "127.0.0.1:$port" --region us-east-1 --quiet posix "$scratch/posix" > "$scratch/versitygw.log" 2>&1 &
gw_pid=$!
trap 'kill "$gw_pid" 2>/dev/null; wait "$gw_pid" 2>/dev/null; rm -rf "$scratch"' EXIT
ep=http://127.0.0.1:$port
for _ in $(seq 1 100); do curl -s -o /dev/null "$ep" && break; sleep 0.1; done
sigv4=(--aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
put() { # put FILE KEY
  curl -sf "${sigv4[@]}" -T "$1" "$ep/bench/$2" -o /dev/null
}
put "$big" big.db
size=$(stat -c %s "$big")
echo "object: $size bytes; $rounds rounds; spool $spool" >&2

# One run: "wall_seconds cpu_seconds" (CPU: the client's user + sys).
run() {
  local rc=0
  /usr/bin/time -o "$scratch/time" -f '%e %U %S' "$@" > /dev/null 2>&1 || rc=$?
  [ "$rc" -le 1 ] || { echo "FAILED ($rc): $*" >&2; exit 1; }
  awk '{printf "%.3f %.2f\n", $1, $2 + $3}' "$scratch/time"
}
download=("$get" s3://bench/big.db --endpoint "$ep" --allow-http)
verify_s3=("$etcdsnap" verify s3://bench/big.db --endpoint "$ep" --allow-http --spool-dir "$spool")
curl_get=(curl -sf "${sigv4[@]}" -o /dev/null "$ep/bench/big.db")
: > "$scratch/download"; : > "$scratch/verify-s3"; : > "$scratch/curl"; : > "$scratch/local"; : > "$scratch/ratio"
warm "$big"
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) -eq 1 ]; then
    d=$(run "${download[@]}"); v=$(run "${verify_s3[@]}")
  else
    v=$(run "${verify_s3[@]}"); d=$(run "${download[@]}")
  fi
  echo "$d" >> "$scratch/download"; echo "$v" >> "$scratch/verify-s3"
  echo "${v%% *} / ${d%% *}" | bc -l >> "$scratch/ratio"
  run "${curl_get[@]}" >> "$scratch/curl"
  run "$etcdsnap" verify "$big" >> "$scratch/local"
  echo "round $r: download ${d%% *} s, verify-s3 ${v%% *} s" >&2
done
read -r anon hwm < <(mem "${verify_s3[@]}")

col() { awk -v c="$1" '{print $c}' "$2" | median; }
mbs() { echo "$size / 1000000 / $1" | bc -l | xargs printf '%.0f'; }
printf '%-10s %8s %8s %12s   (medians of %d rounds)\n' what seconds MB/s "client CPU s" "$rounds"
for w in local curl download verify-s3; do
  t=$(col 1 "$scratch/$w")
  printf '%-10s %8.2f %8s %12.2f\n' "$w" "$t" "$(mbs "$t")" "$(col 2 "$scratch/$w")"
done
printf 'verify-s3 / download = %.2f (median of the pairs; %s)\n' "$(median < "$scratch/ratio")" \
  "$(sort -g "$scratch/ratio" | xargs printf '%.2f ' | sed 's/ $//')"
printf 'verify-s3 peak RssAnon %s MB (VmHWM %s MB, the spool file mapped)\n' "$anon" "$hwm"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

if [ "$small" -gt 0 ]; then
  fixture=$repo/testdata/etcd-3.6.16/snapshot.db
  export -f put; export ep; export sigv4_user="$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY"
  seq 0 $((small - 1)) | xargs -P 8 -I{} bash -c 'curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user "$sigv4_user" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -T "$0" "$ep/bench/fleet/c$(({} % 200))/b{}.db" -o /dev/null' "$fixture"
  fleet=("$etcdsnap" verify s3://bench/fleet/ -r -j 16 --group-by 'fleet/(c[0-9]+)/' --endpoint "$ep" --allow-http --spool-dir "$spool")
  t_fleet=$(secs "${fleet[@]}")
  read -r anon hwm < <(mem "${fleet[@]}")
  printf 'fleet: %d objects of %d bytes in %.2f s = %.0f objects/s at -j 16; peak RssAnon %s MB (VmHWM %s MB)\n' \
    "$small" "$(stat -c %s "$fixture")" "$t_fleet" "$(echo "$small / $t_fleet" | bc -l)" "$anon" "$hwm"
fi
