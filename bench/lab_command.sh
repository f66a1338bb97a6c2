#!/usr/bin/env bash
# Whole-command cost of the lab: `synack lab -q --time-wait 0`, process start
# to exit (namespace, veth, server, handshake, data, teardown, pcap), N runs.
# Prints the median and worst wall time and the peak RSS (from
# /proc/<pid>/status VmHWM via GNU time's %M when available).
# Usage: sudo bench/lab_command.sh [N] [path/to/synack]   (root: namespaces)
# The binary defaults to target/release/synack (cargo build --release).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
n=${1:-20}
bin=${2:-$here/../target/release/synack}
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
walls=()
rss=0
for _ in $(seq 1 "$n"); do
  start=$(date +%s%N)
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f %M -o "$dir/rss" "$bin" -q lab --time-wait 0 -w "$dir/x.pcap" >/dev/null
    r=$(tail -n1 "$dir/rss"); [ "$r" -gt "$rss" ] && rss=$r
  else
    "$bin" -q lab --time-wait 0 -w "$dir/x.pcap" >/dev/null
  fi
  end=$(date +%s%N)
  walls+=($(( (end - start) / 1000 )))
done
sorted=($(printf '%s\n' "${walls[@]}" | sort -n))
median=${sorted[$(( n / 2 ))]}
worst=${sorted[$(( n - 1 ))]}
printf 'synack lab -q --time-wait 0, %d runs: median %.1f ms, worst %.1f ms wall' \
  "$n" "$(awk "BEGIN{print $median/1000}")" "$(awk "BEGIN{print $worst/1000}")"
if [ "$rss" -gt 0 ]; then printf ', peak RSS %.1f MB\n' "$(awk "BEGIN{print $rss/1024}")"; else echo; fi
