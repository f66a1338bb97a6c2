//! The yardstick: the least a streaming pcap reader must do to count TCP
//! connections (pcap-file raw records, etherparse slices, a HashMap of
//! counters per 4-tuple). synack inspect must stay within 2x of it.

use std::collections::HashMap;
use std::fs::File;
use std::net::IpAddr;

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use pcap_file::pcap::PcapReader;

#[derive(Default)]
struct Counters {
    packets: u64,
    bytes: u64,
    syns: u64,
    fins: u64,
    rsts: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: minimal_reader FILE.pcap")?;
    let mut reader = PcapReader::new(File::open(path)?)?;
    let mut conns: HashMap<(IpAddr, u16, IpAddr, u16), Counters> = HashMap::new();
    let mut packets = 0u64;
    while let Some(raw) = reader.next_raw_packet() {
        let raw = raw?;
        packets += 1;
        let Ok(sliced) = SlicedPacket::from_ethernet(&raw.data) else { continue };
        let (src, dst) = match &sliced.net {
            Some(NetSlice::Ipv4(ip)) => (
                IpAddr::from(ip.header().source_addr()),
                IpAddr::from(ip.header().destination_addr()),
            ),
            Some(NetSlice::Ipv6(ip)) => (
                IpAddr::from(ip.header().source_addr()),
                IpAddr::from(ip.header().destination_addr()),
            ),
            _ => continue,
        };
        let Some(TransportSlice::Tcp(tcp)) = &sliced.transport else { continue };
        let a = (src, tcp.source_port());
        let b = (dst, tcp.destination_port());
        let key = if a <= b { (a.0, a.1, b.0, b.1) } else { (b.0, b.1, a.0, a.1) };
        let c = conns.entry(key).or_default();
        c.packets += 1;
        c.bytes += tcp.payload().len() as u64;
        c.syns += u64::from(tcp.syn());
        c.fins += u64::from(tcp.fin());
        c.rsts += u64::from(tcp.rst());
    }
    let bytes: u64 = conns.values().map(|c| c.bytes).sum();
    let syns: u64 = conns.values().map(|c| c.syns + c.fins + c.rsts).sum();
    println!("{packets} packets, {} tuples, {bytes} payload bytes, {syns} SYN/FIN/RST", conns.len());
    Ok(())
}
