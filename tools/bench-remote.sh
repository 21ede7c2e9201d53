#!/usr/bin/env bash
# Object storage benchmark: verify through versitygw on loopback against the
# download floor of the same client, and a fleet of small objects.
#
#   tools/bench-remote.sh SNAPSHOT [SMALL_OBJECTS]
#
# Builds target/release/{etcdsnap,remote-get}, starts versitygw 1.8.0 (the
# oracle, tools/install-oracles.sh) with its posix backend in a scratch
# directory on a free 127.0.0.1 port, uploads SNAPSHOT with one signed PUT
# (curl --aws-sigv4) and SMALL_OBJECTS (default 2000) copies of a committed
# fixture under 200 cluster prefixes, then times, best of $BENCH_RUNS
# (default 3):
#   local        etcdsnap verify SNAPSHOT                 (the file, page cache warm)
#   download     remote-get s3://bench/big.db             (one GET through etcdsnap-remote's
#                                                          object_store client, body dropped)
#   verify-s3    etcdsnap verify s3://bench/big.db        (spool + SHA-256 on the way + checks)
#   fleet        etcdsnap verify s3://bench/fleet/ -r -j 16 --group-by …   (objects/s,
#                                                          peak RssAnon of the run)
# and prints verify-s3 / download (SMALL_OBJECTS 0: no fleet part). The spool goes to $BENCH_SPOOL (default
# $TMPDIR). Stops the server it started on exit.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 SNAPSHOT [SMALL_OBJECTS]" >&2; exit 2; }
big=$1
small=${2:-2000}
[ -f "$big" ] || { echo "$big: not a file" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/tools/bench-lib.sh"
runs=${BENCH_RUNS:-3}
oracles=${ETCDSNAP_ORACLES:-$repo/.oracles}
gw=$oracles/versitygw-1.8.0/versitygw
[ -x "$gw" ] || { echo "no $gw: run tools/install-oracles.sh" >&2; exit 1; }
target=${CARGO_TARGET_DIR:-$repo/target}
(cd "$repo" && cargo build --release --locked -q -p etcdsnap -p etcdsnap-benches --bin etcdsnap --bin remote-get)
etcdsnap=$target/release/etcdsnap
get=$target/release/remote-get

machine "$big"
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
put() { # put FILE KEY
  curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    -T "$1" "$ep/bench/$2" -o /dev/null
}
put "$big" big.db
fixture=$repo/testdata/etcd-3.6.16/snapshot.db
export -f put; export ep
[ "$small" -eq 0 ] || seq 0 $((small - 1)) | xargs -P 8 -I{} bash -c 'put "$0" "fleet/c$(({} % 200))/b{}.db"' "$fixture"
size=$(stat -c %s "$big")
echo "object: $size bytes; fleet: $small objects of $(stat -c %s "$fixture") bytes under 200 prefixes; spool $spool" >&2

best() { for _ in $(seq 1 "$runs"); do "$@"; done | sort -g | head -1; }
warm "$big"
t_local=$(best secs "$etcdsnap" verify "$big")
t_get=$(for _ in $(seq 1 "$runs"); do "$get" s3://bench/big.db --endpoint "$ep" --allow-http | awk '{print $2}'; done | sort -g | head -1)
t_s3=$(best secs "$etcdsnap" verify s3://bench/big.db --endpoint "$ep" --allow-http --spool-dir "$spool")
if [ "$small" -gt 0 ]; then
fleet=("$etcdsnap" verify s3://bench/fleet/ -r -j 16 --group-by 'fleet/(c[0-9]+)/' --endpoint "$ep" --allow-http --spool-dir "$spool")
t_fleet=$(best secs "${fleet[@]}")
read -r anon hwm < <(mem "${fleet[@]}")
fi

# CPU seconds (user + sys) of one run each: on loopback the server competes for the same cores.
cpu() { /usr/bin/time -f '%U %S' "$@" 2>&1 >/dev/null | tail -1 | awk '{printf "%.2f", $1 + $2}'; }
c_get=$(cpu "$get" s3://bench/big.db --endpoint "$ep" --allow-http)
c_s3=$(cpu "$etcdsnap" verify s3://bench/big.db --endpoint "$ep" --allow-http --spool-dir "$spool")
c_local=$(cpu "$etcdsnap" verify "$big")

mbs() { echo "$size / 1000000 / $1" | bc -l | xargs printf '%.0f'; }
printf '%-10s %8s %8s %12s\n' what seconds MB/s "client CPU s"
printf '%-10s %8.2f %8s %12s\n' local "$t_local" "$(mbs "$t_local")" "$c_local"
printf '%-10s %8.2f %8s %12s\n' download "$t_get" "$(mbs "$t_get")" "$c_get"
printf '%-10s %8.2f %8s %12s\n' verify-s3 "$t_s3" "$(mbs "$t_s3")" "$c_s3"
printf 'verify-s3 / download = %.2f\n' "$(echo "$t_s3 / $t_get" | bc -l)"
[ "$small" -eq 0 ] || printf 'fleet: %d objects in %.2f s = %.0f objects/s at -j 16; peak RssAnon %s MB (VmHWM %s MB)\n' \
  "$small" "$t_fleet" "$(echo "$small / $t_fleet" | bc -l)" "$anon" "$hwm"
