//! Captures: pcap writing for the lab, and pcap/pcapng reading, link-type
//! decoding and the connection analysis behind `synack inspect`. Pure over
//! `io::Read`/`io::Write`: nothing here opens a socket or needs privileges.
//!
//! - [`reader`]: a streaming pcap/pcapng reader (pcap-file's raw records,
//!   lengths and timestamp resolutions checked here).
//! - [`link`]: link-layer headers (Ethernet, VLAN, RAW, NULL/LOOP, SLL,
//!   SLL2, PPP, HDLC, ARCNET, Juniper Ethernet, IPoIB) down to the network
//!   layer.
//! - [`decap`]: IP, tunnels (IP-in-IP, GRE/ERSPAN/WCCP, VXLAN, Geneve),
//!   MPLS, sFlow samples and first fragments, down to the TCP segments.
//! - [`analyze`]: the connection tracker: handshake, close, Wireshark's
//!   sequence analysis, Zeek's `conn_state`/`history`, RFC 9293 states.
//! - [`writer`]: the pcap writer of the lab.

pub mod analyze;
pub mod decap;
pub mod link;
pub mod reader;
pub mod writer;
