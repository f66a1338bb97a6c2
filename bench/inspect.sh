#!/usr/bin/env bash
# inspect.sh — times `synack inspect --summary` against its peers on one
# capture, all in the same run, and prints the ratios the issue asks for.
#
#   bench/inspect.sh [CAPTURE] [RUNS]
#   CAPTURE defaults to /tmp/synack-bench/capture.pcap, made as root by
#   bench/peers/gen_capture.sh (~1 GB, 965k packets); RUNS defaults to 3.
#
# Peers: `tcpdump -nn -r`, `tshark -q -z conv,tcp -r`, and the yardstick
# bench/minimal_reader (pcap-file + etherparse + a HashMap per 4-tuple).
# Each tool runs RUNS times with a hot page cache; the median wall time and
# the largest peak RSS (GNU time) are reported. Not run in CI.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cap=${1:-/tmp/synack-bench/capture.pcap}
runs=${2:-3}
[ -r "$cap" ] || { echo "inspect.sh: no capture at $cap (run bench/peers/gen_capture.sh as root)" >&2; exit 2; }
for tool in tcpdump tshark /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "inspect.sh: needs $tool" >&2; exit 2; }
done
(cd "$root" && cargo build --release --quiet)
(cd "$here/minimal_reader" && cargo build --release --quiet --offline)
synack=$root/target/release/synack
minimal=$here/minimal_reader/target/release/minimal_reader
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat "$cap" >/dev/null # hot cache

measure() { # name cmd... -> "median_s max_rss_kb"
  local name=$1; shift
  local times=() rss=0
  for i in $(seq 1 "$runs"); do
    /usr/bin/time -f "%e %M" -o "$work/t" "$@" >/dev/null 2>"$work/err" || {
      echo "inspect.sh: $name failed: $(tail -3 "$work/err")" >&2; exit 1; }
    read -r t m <"$work/t"
    times+=("$t"); [ "$m" -gt "$rss" ] && rss=$m
  done
  local median
  median=$(printf '%s\n' "${times[@]}" | sort -g | sed -n "$(( (runs + 1) / 2 ))p")
  echo "$median $rss"
}

echo "capture: $cap ($(stat -c %s "$cap") bytes), $runs runs each, median wall time"
read -r t_syn m_syn < <(measure synack "$synack" inspect --summary "$cap")
read -r t_min m_min < <(measure minimal "$minimal" "$cap")
read -r t_tcpd m_tcpd < <(measure tcpdump tcpdump -nn -r "$cap")
read -r t_tsh m_tsh < <(measure tshark tshark -q -z conv,tcp -r "$cap")
printf '%-34s %8s %10s\n' tool "time s" "peak RSS"
printf '%-34s %8s %7s MB\n' "synack inspect --summary" "$t_syn" $((m_syn / 1024))
printf '%-34s %8s %7s MB\n' "minimal reader (yardstick)" "$t_min" $((m_min / 1024))
printf '%-34s %8s %7s MB\n' "tcpdump -nn -r" "$t_tcpd" $((m_tcpd / 1024))
printf '%-34s %8s %7s MB\n' "tshark -q -z conv,tcp" "$t_tsh" $((m_tsh / 1024))
python3 - "$t_syn" "$t_min" "$t_tcpd" "$t_tsh" "$m_syn" <<'PY'
import sys
syn, mini, tcpd, tsh, rss = map(float, sys.argv[1:])
def verdict(ok): return "ok" if ok else "MISSED"
print(f"vs tcpdump -nn -r:        {tcpd/syn:5.1f}x faster  (target >= 5x)   {verdict(tcpd/syn >= 5)}")
print(f"vs tshark conv,tcp:       {tsh/syn:5.1f}x faster  (target >= 15x)  {verdict(tsh/syn >= 15)}")
print(f"vs minimal reader:        {syn/mini:5.2f}x its time (target <= 2x)  {verdict(syn/mini <= 2)}")
print(f"peak RSS:                 {rss/1024:5.1f} MB        (target < 50 MB) {verdict(rss/1024 < 50)}")
PY
