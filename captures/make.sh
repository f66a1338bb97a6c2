#!/usr/bin/env bash
# make.sh — regenerates synack's stored captures (see README.md here).
#
#   sudo captures/make.sh [OUTDIR]      (default: this directory)
#
# Each scenario runs in its own private network namespace (`unshare -n`):
# only that namespace's loopback carries traffic (127.0.0.1, ::1), kernel
# sockets (scenarios.py) talk, tcpdump records. The namespace dies with the
# process: nothing is left on the host. Derived files (other link types,
# pcapng, cut files) are made from those recordings with relink.py,
# mergecap, editcap and head.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$(realpath -m "${1:-$here}")
if [ "$(id -u)" != 0 ]; then
  echo "make.sh: needs root (unshare -n, tcpdump)" >&2
  exit 2
fi
for tool in tcpdump editcap mergecap python3; do
  command -v "$tool" >/dev/null || { echo "make.sh: needs $tool" >&2; exit 2; }
done
mkdir -p "$out"

scenarios=(four_way_client four_way_server three_way refused rst_client rst_server
  syn_retransmission syn_timeout zero_window half_close concurrent port_reuse
  still_open transfer ipv6 any_sll2 nanosecond snaplen60)
for name in "${scenarios[@]}"; do
  # lo keeps its checksum offload (it cannot be turned off): TCP frames
  # carry only the pseudo-header sum, which synack counts as offloaded.
  timeout 60 unshare -n bash -c '
    set -euo pipefail
    ip link set lo up
    exec python3 "$0" "$1" "$2"
  ' "$here/scenarios.py" "$out" "$name.pcap"
done

# Other link types, frame for frame from real recordings.
python3 "$here/relink.py" "$out/four_way_client.pcap" raw "$out/linktype_raw.pcap"
python3 "$here/relink.py" "$out/four_way_client.pcap" ipv4 "$out/linktype_ipv4.pcap"
python3 "$here/relink.py" "$out/ipv6.pcap" ipv6 "$out/linktype_ipv6.pcap"
python3 "$here/relink.py" "$out/four_way_client.pcap" null "$out/linktype_null.pcap"
python3 "$here/relink.py" "$out/ipv6.pcap" loop "$out/linktype_loop.pcap"
python3 "$here/relink.py" "$out/four_way_client.pcap" sll "$out/linktype_sll.pcap"
python3 "$here/relink.py" "$out/four_way_client.pcap" vlan "$out/vlan.pcap"
python3 "$here/relink.py" "$out/four_way_client.pcap" bigendian "$out/bigendian.pcap"
# Link-type fields with libpcap's upper bits (LT_FCS_*): a 4-byte FCS on
# every frame (0x24000001); an FCS length without the present bit
# (0x30000001, 0x300000E5: no FCS).
python3 "$here/relink.py" "$out/four_way_client.pcap" fcs "$out/linktype_fcs.pcap"
python3 "$here/relink.py" "$out/four_way_client.pcap" flagged "$out/linktype_flagged.pcap"
python3 "$here/relink.py" "$out/ipv6.pcap" flagged_ipv6 "$out/linktype_flagged_ipv6.pcap"
# One frame with a really wrong checksum (the data segment, frame 4).
python3 "$here/relink.py" "$out/four_way_client.pcap" badsum "$out/bad_checksum.pcap"

# Other tools' link types and encapsulations, frame for frame from
# four_way_client.pcap (ipv6.pcap for 6in4), every checksum computed.
encap() { python3 "$here/encap.py" "$out/$1.pcap" "$2" "$out/$3.pcap"; }
encap four_way_client ppp linktype_ppp
encap four_way_client ppp_hdlc linktype_ppp_hdlc
encap four_way_client arcnet_bsd linktype_arcnet_bsd
encap four_way_client arcnet_linux linktype_arcnet_linux
encap four_way_client juniper_ether linktype_juniper_ether
encap four_way_client ipoib linktype_ipoib
encap four_way_client mpls_ppp mpls_ppp
encap four_way_client mpls_eth mpls_ethernet
encap four_way_client qinq vlan_qinq
encap four_way_client ipip tunnel_ipip
encap ipv6 sit tunnel_6in4
encap four_way_client gre tunnel_gre
encap four_way_client erspan2 tunnel_erspan2
encap four_way_client erspan3 tunnel_erspan3
encap four_way_client wccp tunnel_wccp
encap four_way_client vxlan tunnel_vxlan
encap four_way_client geneve tunnel_geneve
encap four_way_client sflow sflow
encap four_way_client frag ip_fragments

# A capture that starts mid-stream: the transfer without its first 6 frames.
editcap -r "$out/transfer.pcap" "$out/mid_stream.pcap" 7-1000000 >/dev/null

# pcapng, two interfaces with two link types (SLL2 µs, Ethernet ns), comments.
mergecap -F pcapng -w "$out/two_interfaces.tmp.pcapng" "$out/any_sll2.pcap" "$out/nanosecond.pcap"
editcap --capture-comment "synack: two interfaces, SLL2 and Ethernet" \
  -a "1:first frame of the any capture" "$out/two_interfaces.tmp.pcapng" "$out/two_interfaces.pcapng"
rm -f "$out/two_interfaces.tmp.pcapng"

# A file cut in the middle of its last record.
size=$(stat -c %s "$out/four_way_client.pcap")
head -c $((size - 10)) "$out/four_way_client.pcap" >"$out/truncated.pcap"

# synack's own lab captures: its hand-built client against the lab's kernel
# server, each run in a private namespace of its own. --isn 1000 keeps the
# client's sequence numbers the same on every run.
synack=${SYNACK:-$here/../target/debug/synack}
[ -x "$synack" ] || { echo "make.sh: no synack binary at $synack (cargo build, or set SYNACK=…)" >&2; exit 1; }
lab() {
  local name=$1
  shift
  "$synack" -q lab --isn 1000 "$@" -w "$out/$name.pcap" >/dev/null
}
lab lab_default --time-wait 0
lab lab_server_first --time-wait 0 --close server
lab lab_delayed_ack --time-wait 0 --delayed-ack
lab lab_refused --time-wait 0 --refused
lab lab_simultaneous --time-wait 0 --close simultaneous
lab lab_abort_client --time-wait 0 --abort client
lab lab_abort_server --time-wait 0 --abort server
lab lab_half_close --time-wait 0 --half-close
# TIME-WAIT (1 s) must outlast the server's RTO to re-ACK its FIN.
lab lab_drop_client --time-wait 1s --drop data:1,fin,final-ack
lab lab_drop_server --time-wait 0 --drop synack,data-reply,server-fin
lab lab_syn_backoff --time-wait 0 --drop syn,syn
lab lab_mss100 --time-wait 0 --mss 100 --reply "$(printf '%.0sabcdefghij' $(seq 30))"
lab lab_sticky --time-wait 0 --sticky --data hello --data world
lab lab_framing --time-wait 0 --framing json-header --sticky --data hello --data world
lab lab_no_options --time-wait 0 --no-wscale --no-sack --no-timestamps
# --isn means nothing over UDP (and is refused with --udp).
"$synack" -q lab --time-wait 0 --udp --data hello --data world -w "$out/lab_udp.pcap" >/dev/null
# The default run as pcapng, a comment on every frame (--pcapng).
"$synack" -q lab --isn 1000 --time-wait 0 --pcapng -w "$out/lab_default.pcapng" >/dev/null
# pcapng whose options lists (section, interface, every packet's comment)
# end with their blocks, without opt_endofopt (the spec allows it).
python3 "$here/no_endofopt.py" "$out/lab_default.pcapng" "$out/pcapng_no_endofopt.pcapng"

ls -l "$out"/*.pcap "$out"/*.pcapng
