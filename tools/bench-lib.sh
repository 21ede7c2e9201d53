# Shared helpers of the benchmark scripts (sourced, not run).
#
#   secs CMD...     wall seconds of one run, output discarded (exit 0 or 1 accepted:
#                   diff and verify say 1 for "differs"/"problems")
#   median          median of the numbers on stdin, one per line
#   mem CMD...      "RssAnon_MB VmHWM_MB": peak anonymous memory (heap and stacks,
#                   not the mapped file) and peak resident set of one run, sampled
#                   every 20 ms from /proc/PID/status
#   warm FILE...    puts each FILE in one defined page-cache state: its cached
#                   pages dropped (dd iflag=nocache), then read once in order.
#                   The kernel's readahead then caches it in large folios (up
#                   to 2 MiB, mapped by one PMD entry where the kernel can), as
#                   after any sequential read or download; a file the kernel
#                   cached as it was written is often in 4 KiB folios, which
#                   cost every mmap reader (ours and Go bbolt's) several times
#                   more in page-table work. BENCH_KEEP_CACHE=1 leaves the cache
#                   as it is (only reads the files).

secs() {
  local s e rc=0
  s=$(date +%s.%N)
  "$@" > /dev/null 2>&1 || rc=$?
  e=$(date +%s.%N)
  [ "$rc" -le 1 ] || { echo "FAILED ($rc): $*" >&2; exit 1; }
  echo "$e - $s" | bc -l
}

median() { sort -g | awk '{a[NR]=$1} END{print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

mem() {
  local pid anon=0 hwm=0 st a h
  "$@" > /dev/null 2>&1 &
  pid=$!
  while :; do
    read -r st a h < <(awk '/^State:/{s=$2} /^RssAnon:/{a=$2} /^VmHWM:/{h=$2} END{print (s == "" ? "X" : s), a+0, h+0}' \
      "/proc/$pid/status" 2>/dev/null || echo "X 0 0")
    case $st in Z|X) break ;; esac
    [ "$a" -gt "$anon" ] && anon=$a
    [ "$h" -gt "$hwm" ] && hwm=$h
    sleep 0.02
  done
  wait "$pid" || true
  printf '%.1f %.1f\n' "$(echo "$anon / 1024" | bc -l)" "$(echo "$hwm / 1024" | bc -l)"
}

warm() {
  local f
  for f in "$@"; do
    [ -n "${BENCH_KEEP_CACHE:-}" ] || dd if="$f" iflag=nocache count=0 status=none
    cat "$f" > /dev/null
  done
}

# machine FILE...   prints (to stderr) what a figure depends on: the CPU model
#                   and vendor, cores, memory, kernel, how sequential passes
#                   read (ETCDSNAP_SEQUENTIAL, else by CPU vendor: the map on
#                   AMD, pread elsewhere; crates/io/src/seq.rs), and how much
#                   of each FILE is in the page cache now. Every bench-*.sh
#                   starts with it, so a table says which machine it came from.
machine() {
  local model vendor mode f
  model=$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)
  vendor=$(awk -F': ' '/^vendor_id/{print $2; exit}' /proc/cpuinfo)
  mode=${ETCDSNAP_SEQUENTIAL:-$([ "$vendor" = AuthenticAMD ] && echo map || echo read)}
  echo "machine: ${model:-unknown CPU} ($vendor), $(nproc) cores, $(awk '/^MemTotal/{printf "%.0f GiB", $2/2^20}' /proc/meminfo), $(uname -sr); sequential passes: $mode" >&2
  for f in "$@"; do
    [ -f "$f" ] || continue
    echo "page cache: $f: $(cached "$f")" >&2
  done
}

# cached FILE    the share of FILE in the page cache ("97% cached"), from fincore.
cached() {
  local res size
  size=$(stat -c %s "$1")
  res=$(fincore --bytes --noheadings --output RES "$1" 2>/dev/null | tr -d ' ')
  if [ -n "$res" ] && [ "$size" -gt 0 ]; then
    awk -v r="$res" -v s="$size" 'BEGIN{printf "%.0f%% cached", 100 * r / s}'
  else
    echo "unknown (no fincore)"
  fi
}

# cold FILE...   drops each FILE from the page cache (a cold run reads the disk).
cold() {
  local f
  for f in "$@"; do dd if="$f" iflag=nocache count=0 status=none; done
}
