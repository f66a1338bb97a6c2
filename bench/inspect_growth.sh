#!/usr/bin/env bash
# inspect_growth.sh — is `synack inspect --summary`'s memory flat as the
# capture grows? Writes the benchmark capture 1, 2 and 4 times into one file
# (bench/repeat_capture.py: each copy 120 s after the previous one, so every
# closed connection passes the 60 s linger and is reported and dropped), and
# prints wall time and peak RSS for each, all in the same run.
#
#   bench/inspect_growth.sh [CAPTURE] [WORKDIR]
#   CAPTURE defaults to /tmp/synack-bench/capture.pcap, made as root by
#   bench/peers/gen_capture.sh; WORKDIR (default: a fresh temp dir, removed
#   at the end) needs 7x the capture's size free. Not run in CI.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cap=${1:-/tmp/synack-bench/capture.pcap}
[ -r "$cap" ] || { echo "inspect_growth.sh: no capture at $cap (run bench/peers/gen_capture.sh as root)" >&2; exit 2; }
command -v /usr/bin/time >/dev/null || { echo "inspect_growth.sh: needs GNU time" >&2; exit 2; }
(cd "$root" && cargo build --release --quiet)
synack=$root/target/release/synack
if [ -n "${2:-}" ]; then work=$2; mkdir -p "$work"; else work=$(mktemp -d); fi
trap 'rm -f "$work"/copies*.pcap "$work"/t "$work"/out; [ -n "${2:-}" ] || rmdir "$work"' EXIT

printf '%-7s %10s %12s %8s %10s\n' copies "size MB" connections "time s" "peak RSS"
first_rss=0
for n in 1 2 4; do
  f=$work/copies$n.pcap
  python3 "$here/repeat_capture.py" "$cap" "$f" "$n"
  cat "$f" >/dev/null # hot cache, as for the other benchmarks
  /usr/bin/time -f "%e %M" -o "$work/t" "$synack" inspect --summary "$f" >"$work/out"
  read -r t m <"$work/t"
  [ "$first_rss" -gt 0 ] || first_rss=$m
  printf '%-7s %10s %12s %8s %7s MB  (%.2fx the 1-copy RSS)\n' "$n" $(( $(stat -c %s "$f") / 1000000 )) \
    "$(wc -l <"$work/out")" "$t" $((m / 1024)) "$(python3 -c "print($m / $first_rss)")"
  rm -f "$f"
done
