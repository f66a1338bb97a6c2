#!/usr/bin/env bash
# handshake_peers.sh — handshake latency of the peers, each in a fresh lab namespace (lab.sh).
#
#   [N=200] [RUNS=3] [N_CMD=20] [PEERS="kernel scapy-tutorial scapy-socket hping3 nping"]
#   [OUT=/tmp/synack-bench/handshake-<time>] [TOOL_HANDSHAKE_CMD='...'] ./handshake_peers.sh
#
# Each run does every peer once (peers interleaved, so drift hits all alike); RUNS runs.
# Per run and peer: N cycles (or N probes for hping3/nping), a wire capture on veth1, and
# N_CMD whole-command timings (one process per handshake). Prints the table at the end
# (benchlib.py table OUT) and keeps the raw data under OUT.
#
# SLOT for the tool under test (bench/connect_handshake.sh puts synack connect there):
#   export TOOL_HANDSHAKE_CMD='synack connect -i "$LAB_CLI_IF" ...'
#   It runs N times per run in raw mode (veth1 without IPv4, 198.18.0.2 is the tool's), with
#   LAB_SRV_IP LAB_SRV_PORT LAB_SRV_MAC LAB_CLI_IF LAB_CLI_IP LAB_CLI_MAC in its environment and
#   the echo server listening; each run is timed whole (metric "cmd") and its SYN/ACK/FIN
#   timings are read off the wire capture like every peer's. Its own output: OUT/tool/run*/tool.log
#   TOOL_LAB_OPTS adds lab.sh options for the tool's runs only, e.g. --no-neigh when the tool
#   answers the server's ARP request itself instead of relying on the pre-seeded neighbour.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
N=${N:-200} RUNS=${RUNS:-3}
export N_CMD=${N_CMD:-20}
PEERS=${PEERS:-"kernel scapy-tutorial scapy-socket hping3 nping"}
[[ -n ${TOOL_HANDSHAKE_CMD:-} ]] && PEERS="$PEERS tool"
OUT=${OUT:-/tmp/synack-bench/handshake-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
for t in tcpdump hping3 nping cc; do command -v $t >/dev/null || { echo "missing: $t" >&2; exit 1; }; done
PYTHON=$(python3 -c 'import sys; print(sys.executable)')   # the real interpreter, not a shim
export PYTHON
"$PYTHON" -c 'import scapy' 2>/dev/null || { echo "missing: scapy (pip install scapy)" >&2; exit 1; }
export KCLIENT=$OUT/kclient
cc -O2 -Wall -o "$KCLIENT" "$here/kclient.c"

{
  echo "date: $(date -u +%FT%TZ)  kernel: $(uname -r)  cpus: $(nproc)"
  echo "N=$N RUNS=$RUNS N_CMD=$N_CMD PEERS=$PEERS"
  tcpdump --version 2>&1 | head -2
  hping3 --version 2>&1 | head -1
  nping --version 2>&1 | grep -m1 Nping
  echo "scapy $("$PYTHON" -c 'import scapy; print(scapy.__version__)')  python $("$PYTHON" -V 2>&1)"
  cc --version | head -1
} | tee "$OUT/versions.txt"

for ((r = 1; r <= RUNS; r++)); do
  for p in $PEERS; do
    case $p in
      kernel | hping3 | nping) mode=(--client-ns) ;;
      tool) read -r -a mode <<<"${TOOL_LAB_OPTS:-}" ;;  # e.g. TOOL_LAB_OPTS=--no-neigh
      *) mode=() ;;
    esac
    echo "run $r/$RUNS: $p" >&2
    "$here/lab.sh" "${mode[@]}" --timeout 900 -- bash "$here/hs_peer.sh" "$p" "$N" "$OUT/$p/run$r" \
      || echo "run $r: $p failed (rc $?)" >&2
  done
done

for p in $PEERS; do
  for d in "$OUT/$p"/run*; do
    [[ -s $d/client.err ]] && grep -hE "failed|cycle [0-9]+:" "$d/client.err" | tail -2 | sed "s|^|[$p $(basename "$d")] |" >&2 || true
    [[ -s $d/wire.json ]] && echo "[$p $(basename "$d")] wire: $(cat "$d/wire.json")"
  done
done | tee "$OUT/wire-summary.txt"
echo
"$PYTHON" "$here/benchlib.py" table "$OUT" | tee "$OUT/table.txt"
echo "raw data: $OUT"
