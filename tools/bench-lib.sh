# Shared helpers of the benchmark scripts (sourced, not run).
#
#   secs CMD...     wall seconds of one run, output discarded (exit 0 or 1 accepted:
#                   diff and verify say 1 for "differs"/"problems")
#   median          median of the numbers on stdin, one per line
#   mem CMD...      "RssAnon_MB VmHWM_MB": peak anonymous memory (heap and stacks,
#                   not the mapped file) and peak resident set of one run, sampled
#                   every 20 ms from /proc/PID/status

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
