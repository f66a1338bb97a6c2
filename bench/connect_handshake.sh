#!/usr/bin/env bash
# synack connect in the tool slot of bench/peers/handshake_peers.sh: the
# same labs, the same echo server, the same tcpdump yardstick as the peers
# (kernel client, scapy, hping3, nping), measured in the same run.
# Each cycle is one `synack connect` process in raw mode: veth1 has no IPv4
# address, synack plays 198.18.0.2 (--source, no RST guard), sends "hello\n",
# closes as soon as the 6-byte echo is in (--expect-reply), TIME-WAIT 0, no pcap.
# Usage: sudo bench/connect_handshake.sh [N] [RUNS]   (defaults 100 3; needs
# what handshake_peers.sh needs: tcpdump hping3 nping cc, python3 with scapy)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=$(cd "$here/.." && pwd)/target/release/synack
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
peers=$here/peers
export TOOL_HANDSHAKE_CMD="$bin -q connect \"\$LAB_SRV_IP:\$LAB_SRV_PORT\" -i \"\$LAB_CLI_IF\" --source \"\$LAB_CLI_IP\" --data \$'hello\\n' --expect-reply 6 --time-wait 0 --timeout 3 -w /dev/null"
N=${1:-100} RUNS=${2:-3} exec "$peers/handshake_peers.sh"
