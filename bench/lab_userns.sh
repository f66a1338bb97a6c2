#!/usr/bin/env bash
# lab_userns.sh — does running the lab without root (in a user namespace) cost
# anything? `synack lab --json --time-wait 0`, N runs as root and N as nobody
# (setpriv --reuid=nobody --regid=nogroup --clear-groups), alternating, in the
# same run. Prints, per side, the median (min–max) of the whole process (wall,
# from the shell; includes setpriv for nobody), of the lab's own set-up
# (`setup_us`: namespaces, veth pair, offload, sysctls) and of the cycle (SYN
# to last ACK, `cycle_us`).
#
#   sudo bench/lab_userns.sh [N]          N defaults to 30
#   SYNACK=path/to/synack overrides target/release/synack (build it first:
#   cargo build --release). The binary is copied to a fresh directory nobody
#   can read; the host must allow unprivileged user namespaces.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
n=${1:-30}
src=${SYNACK:-$here/../target/release/synack}
[ -x "$src" ] || { echo "lab_userns.sh: build first: cargo build --release" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "lab_userns.sh: needs root (to run as nobody too)" >&2; exit 2; }
command -v setpriv >/dev/null || { echo "lab_userns.sh: needs setpriv (util-linux)" >&2; exit 2; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
chmod 755 "$dir"
cp "$src" "$dir/synack"
mkdir "$dir/out" && chown nobody:nogroup "$dir/out"

one() { # side -> appends "wall_us setup_us cycle_us" to $dir/side.txt
  local side=$1 start end json
  start=$(date +%s%N)
  if [ "$side" = root ]; then
    json=$("$dir/synack" lab --json --time-wait 0 -w "$dir/out/r.pcap")
  else
    json=$(setpriv --reuid=nobody --regid=nogroup --clear-groups \
      "$dir/synack" lab --json --time-wait 0 -w "$dir/out/u.pcap")
  fi
  end=$(date +%s%N)
  python3 -c '
import json, sys
ev = [json.loads(l) for l in sys.stdin if l.strip()]
setup = next(e["setup_us"] for e in ev if e["event"] == "setup")
cycle = next(e["cycle_us"] for e in ev if e["event"] == "summary")
print(int(sys.argv[1]) // 1000, setup, cycle)' "$((end - start))" <<<"$json" >>"$dir/$side.txt"
}

for _ in $(seq 1 "$n"); do one root; one nobody; done
python3 - "$dir" "$n" <<'PY'
import statistics, sys
d, n = sys.argv[1], sys.argv[2]
print(f"synack lab --json --time-wait 0, {n} runs each, alternating")
print(f"{'run as':<8} {'wall median (min-max)':>28} {'setup median (min-max)':>26} {'cycle median':>13}")
for side in ("root", "nobody"):
    rows = [list(map(float, l.split())) for l in open(f"{d}/{side}.txt")]
    def col(i):
        v = [r[i] / 1000 for r in rows]
        return f"{statistics.median(v):.1f} ms ({min(v):.1f}-{max(v):.1f})"
    print(f"{side:<8} {col(0):>28} {col(1):>26} {statistics.median(r[2] / 1000 for r in rows):10.1f} ms")
PY
