#!/usr/bin/env bash
# inspect_stream.sh — issue 15's memory and speed targets for `synack inspect`,
# each ratio measured against tcpdump in the same run:
#   1. the 1 GB capture in every output mode (default table+ladders, --summary,
#      --json): peak RSS < 50 MB and >= 5x faster than `tcpdump -nn -r`;
#   2. 300k SYN-only connection attempts (a SYN scan; at 20k SYN/s and all
#      in one burst): peak RSS < 100 MB;
#   3. a pcapng with 60k interface blocks: read in < 1 s.
#
#   bench/inspect_stream.sh [CAPTURE] [RUNS]
#   CAPTURE defaults to /tmp/synack-bench/capture.pcap, made as root by
#   bench/peers/gen_capture.sh (~1 GB); RUNS defaults to 3 (median wall
#   time, largest peak RSS, GNU time). The generated captures go to a
#   temporary directory, removed at the end. Not run in CI.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cap=${1:-/tmp/synack-bench/capture.pcap}
runs=${2:-3}
[ -r "$cap" ] || { echo "inspect_stream.sh: no capture at $cap (run bench/peers/gen_capture.sh as root)" >&2; exit 2; }
for tool in tcpdump python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "inspect_stream.sh: needs $tool" >&2; exit 2; }
done
(cd "$root" && cargo build --release --quiet)
synack=$root/target/release/synack
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat "$cap" >/dev/null # hot cache

measure() { # name cmd... -> "median_s max_rss_kb"
  local name=$1; shift
  local times=() rss=0
  for _ in $(seq 1 "$runs"); do
    /usr/bin/time -f "%e %M" -o "$work/t" "$@" >/dev/null 2>"$work/err" || {
      echo "inspect_stream.sh: $name failed: $(tail -3 "$work/err")" >&2; exit 1; }
    read -r t m <"$work/t"
    times+=("$t"); [ "$m" -gt "$rss" ] && rss=$m
  done
  local median
  median=$(printf '%s\n' "${times[@]}" | sort -g | sed -n "$(( (runs + 1) / 2 ))p")
  echo "$median $rss"
}
verdict() { python3 -c "import sys; print('ok' if $1 else 'MISSED')"; }

echo "capture: $cap ($(stat -c %s "$cap") bytes), $runs runs each, median wall time"
read -r t_tcpd m_tcpd < <(measure tcpdump tcpdump -nn -r "$cap")
printf '%-36s %8s %9s %10s\n' tool "time s" "peak RSS" "vs tcpdump"
printf '%-36s %8s %6s MB %10s\n' "tcpdump -nn -r" "$t_tcpd" $((m_tcpd / 1024)) "1.0x"
for mode in default --summary --json; do
  args=(inspect); [ "$mode" = default ] || args+=("$mode")
  read -r t m < <(measure "synack $mode" "$synack" "${args[@]}" "$cap")
  ratio=$(python3 -c "print(f'{$t_tcpd/$t:.1f}x')")
  printf '%-36s %8s %6s MB %10s  speed %s, memory %s\n' "synack inspect $mode" "$t" $((m / 1024)) "$ratio" \
    "$(verdict "$t_tcpd / $t >= 5")" "$(verdict "$m / 1024 < 50")"
done

echo
echo "300k SYN-only attempts (bench/gen_syn_only.py)"
for rate in 20000 1000000; do
  python3 "$here/gen_syn_only.py" "$work/syn.pcap" 300000 "$rate"
  for mode in default --summary --json; do
    args=(inspect); [ "$mode" = default ] || args+=("$mode")
    read -r t m < <(measure "syn $mode" "$synack" "${args[@]}" "$work/syn.pcap")
    printf '%-36s %8s %6s MB  memory %s\n' "$rate SYN/s, $mode" "$t" $((m / 1024)) "$(verdict "$m / 1024 < 100")"
  done
done

echo
echo "60k pcapng interface blocks (bench/gen_many_idb.py)"
python3 "$here/gen_many_idb.py" 60000 "$work/idb.pcapng"
read -r t m < <(measure idb "$synack" inspect --summary "$work/idb.pcapng")
printf '%-36s %8s %6s MB  time %s\n' "60k IDBs, --summary" "$t" $((m / 1024)) "$(verdict "$t < 1")"
