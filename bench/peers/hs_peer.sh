#!/usr/bin/env bash
# hs_peer.sh PEER N RUNDIR — one measured run of one handshake peer. Runs INSIDE lab.sh
# (handshake_peers.sh calls it); needs the LAB_* environment. Writes RUNDIR/*.ns (one value in
# ns per line) plus the raw logs and the wire capture (RUNDIR/wire.pcap).
#   PEER: kernel | scapy-tutorial | scapy-socket | hping3 | nping | tool
#   N_CMD (env, default 20): samples of the "whole command, one process per sample" metric.
set -euo pipefail
peer=$1 n=$2 rd=$3
n_cmd=${N_CMD:-20}
port=${PORT:-8080}
here=$LAB_DIR
kclient=${KCLIENT:?KCLIENT must point to the compiled kclient}
py=${PYTHON:-python3}
mkdir -p "$rd"

# Prefix that runs a command in the client-side namespace (--client-ns) or here (raw mode).
# nsenter execs the command, so "$!" of a backgrounded prefixed command is the command's PID.
cli=()
[[ $LAB_MODE == clientns ]] && cli=(nsenter "--net=$LAB_CLI_NETNS" --)

# --- server (TcpListener-like, serial echo), bounded in time
rm -f "$rd/server.ready"
$py "$here/tcp_server.py" --host "$LAB_SRV_IP" --port "$port" --mode echo --max-seconds 900 \
  --ready-file "$rd/server.ready" >"$rd/server.log" 2>&1 &
spid=$!
for _ in $(seq 1 100); do [[ -s $rd/server.ready ]] && break; sleep 0.05; done
[[ -s $rd/server.ready ]] || { echo "hs_peer: server did not start" >&2; exit 1; }

# --- wire capture on the client-side interface (headers only, ns timestamps)
"${cli[@]}" tcpdump -i "$LAB_CLI_IF" -w "$rd/wire.pcap" -s 128 -B 16384 -U --time-stamp-precision=nano \
  "tcp port $port" >/dev/null 2>"$rd/tcpdump.log" &
tpid=$!
for _ in $(seq 1 100); do grep -q "listening on" "$rd/tcpdump.log" 2>/dev/null && break; sleep 0.05; done

# tcpdump (TPACKET_V3, no --immediate-mode, so it wakes rarely and disturbs the run little)
# hands packets over when a ring block is full or 1 s old; SIGINT before that loses them.
stop_capture() {
  [[ -n $tpid ]] || return 0
  sleep 1.5
  kill -INT "$tpid" 2>/dev/null || true; wait "$tpid" 2>/dev/null || true
  tpid=""
}
stop_all() {
  stop_capture
  kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true
}
trap stop_all EXIT

# whole-command timings use bash's $EPOCHREALTIME (µs resolution, no fork of date(1))
cmd_loop() { # time a whole command n_cmd times; $@ = command
  local k t0 t1
  for ((k = 0; k < n_cmd; k++)); do
    t0=${EPOCHREALTIME/./}; "$@" >>"$rd/cmd.log" 2>&1 || true; t1=${EPOCHREALTIME/./}
    echo $(((t1 - t0) * 1000)) >>"$rd/cmd.ns"
  done
}

case $peer in
kernel)
  "${cli[@]}" "$kclient" "$LAB_SRV_IP" "$port" "$n" >"$rd/client.txt" 2>"$rd/client.err"
  stop_capture  # the per-process timings below stay out of the wire capture
  cmd_loop "${cli[@]}" "$kclient" "$LAB_SRV_IP" "$port" 1
  ;;
scapy-tutorial | scapy-socket)
  mode=${peer#scapy-}
  $py "$here/scapy_client.py" --mode "$mode" --n "$n" >"$rd/client.txt" 2>"$rd/client.err"
  stop_capture
  [[ $mode == tutorial ]] && cmd_loop $py "$here/scapy_client.py" --mode tutorial --n 1
  ;;
hping3)
  # -S: one SYN per probe (source port +1 each), 10 ms apart; the client-side kernel owns
  # 198.18.0.2 (--client-ns) and RSTs each SYN-ACK, as in any hping3 use.
  "${cli[@]}" hping3 -S -p "$port" -c "$n" -i u10000 -I "$LAB_CLI_IF" "$LAB_SRV_IP" \
    >"$rd/client.txt" 2>"$rd/client.err" || true
  $py "$here/benchlib.py" hping "$rd/client.txt" >"$rd/reported_rtt.ns"
  stop_capture
  cmd_loop "${cli[@]}" hping3 -S -p "$port" -c 1 -I "$LAB_CLI_IF" "$LAB_SRV_IP"
  ;;
nping)
  # nping waits 1 s after its last probe, so a per-process timing would only measure that wait:
  # no "cmd" metric for nping.
  "${cli[@]}" nping --tcp -p "$port" --flags syn -c "$n" --delay 10ms "$LAB_SRV_IP" \
    >"$rd/client.txt" 2>"$rd/client.err" || true
  $py "$here/benchlib.py" nping "$rd/client.txt" >"$rd/reported_rtt.ns"
  ;;
tool)
  # ---- SLOT for the tool under test (synack connect, via bench/connect_handshake.sh): TOOL_HANDSHAKE_CMD runs in raw mode (veth1 has no
  # IPv4 address; 198.18.0.2 is the tool's to play), with the LAB_* variables in its
  # environment and the echo server listening on $LAB_SRV_IP:$port. Run N times, each timed
  # whole; its own output goes to RUNDIR/tool.log.
  : "${TOOL_HANDSHAKE_CMD:?TOOL_HANDSHAKE_CMD is not set}"
  export LAB_SRV_PORT=$port
  for ((k = 0; k < n; k++)); do
    t0=${EPOCHREALTIME/./}
    bash -c "$TOOL_HANDSHAKE_CMD" >>"$rd/tool.log" 2>&1 || echo "exit $? (run $k)" >>"$rd/tool.log"
    t1=${EPOCHREALTIME/./}; echo $(((t1 - t0) * 1000)) >>"$rd/cmd.ns"
  done
  ;;
*) echo "hs_peer: unknown peer $peer" >&2; exit 2 ;;
esac

stop_all
trap - EXIT
if [[ -s $rd/client.txt && $peer != hping3 && $peer != nping ]]; then
  $py "$here/benchlib.py" samples "$rd/client.txt" 1 >"$rd/client_hs.ns"
  $py "$here/benchlib.py" samples "$rd/client.txt" 2 >"$rd/client_cycle.ns"
fi
$py - "$rd" <<'EOF'
import json, subprocess, sys, os
rd = sys.argv[1]
here = os.environ["LAB_DIR"]
w = json.loads(subprocess.check_output([sys.executable, f"{here}/benchlib.py", "wire", f"{rd}/wire.pcap"]))
for k in ("synack", "hs", "ack", "cycle"):
    if w[k]:
        open(f"{rd}/wire_{k}.ns", "w").write("\n".join(map(str, w[k])) + "\n")
open(f"{rd}/wire.json", "w").write(json.dumps({"conns": w["conns"], "rst": w["rst"],
      "n_synack": len(w["synack"]), "n_hs": len(w["hs"]), "n_cycle": len(w["cycle"])}) + "\n")
EOF
grep -h "dropped by kernel" "$rd/tcpdump.log" | sed "s/^/[$peer] tcpdump: /" >&2 || true
