//! The logical TCP segment: what synack sends and what it understood of what
//! it received, independent of the bytes (smoltcp's `Repr` idea).
//!
//! Pure: no I/O.

use std::fmt;

pub use pnet::packet::tcp::TcpFlags;

use super::SeqNumber;

/// The TCP control bits (RFC 9293 §3.1), as one byte with the layout of the
/// header's flags octet (`TcpFlags::SYN`, `TcpFlags::ACK`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    pub const SYN: Flags = Flags(TcpFlags::SYN);
    pub const SYN_ACK: Flags = Flags(TcpFlags::SYN | TcpFlags::ACK);
    pub const ACK: Flags = Flags(TcpFlags::ACK);
    pub const PSH_ACK: Flags = Flags(TcpFlags::PSH | TcpFlags::ACK);
    pub const FIN_ACK: Flags = Flags(TcpFlags::FIN | TcpFlags::ACK);
    pub const RST: Flags = Flags(TcpFlags::RST);
    pub const RST_ACK: Flags = Flags(TcpFlags::RST | TcpFlags::ACK);

    /// Whether every bit of `bits` is set.
    pub fn has(self, bits: u8) -> bool {
        self.0 & bits == bits
    }
    pub fn syn(self) -> bool {
        self.has(TcpFlags::SYN)
    }
    pub fn ack(self) -> bool {
        self.has(TcpFlags::ACK)
    }
    pub fn fin(self) -> bool {
        self.has(TcpFlags::FIN)
    }
    pub fn rst(self) -> bool {
        self.has(TcpFlags::RST)
    }
    pub fn psh(self) -> bool {
        self.has(TcpFlags::PSH)
    }
}

impl Flags {
    /// Wireshark's spelling of the flags (as `Display` writes them),
    /// appended to `out` without the formatting machinery: a big capture's
    /// ladder spells a million of them.
    pub fn push_names(self, out: &mut String) {
        const NAMES: [(u8, &str); 8] = [
            (TcpFlags::FIN, "FIN"),
            (TcpFlags::SYN, "SYN"),
            (TcpFlags::RST, "RST"),
            (TcpFlags::PSH, "PSH"),
            (TcpFlags::ACK, "ACK"),
            (TcpFlags::URG, "URG"),
            (TcpFlags::ECE, "ECE"),
            (TcpFlags::CWR, "CWR"),
        ];
        let mut first = true;
        for (bit, name) in NAMES {
            if self.has(bit) {
                if !first {
                    out.push_str(", ");
                }
                out.push_str(name);
                first = false;
            }
        }
        if first {
            out.push_str("<none>");
        }
    }
}

impl fmt::Display for Flags {
    /// Wireshark's spelling: `SYN, ACK`, `FIN, ACK`, `PSH, ACK`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names = String::with_capacity(24);
        self.push_names(&mut names);
        f.write_str(&names)
    }
}

/// The TCP options synack understands (RFC 9293 §3.2, RFC 7323, RFC 2018).
/// Unknown options are counted, not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TcpOptions {
    /// Maximum segment size (kind 2), only on SYNs.
    pub mss: Option<u16>,
    /// Window scale shift count (kind 3), only on SYNs.
    pub wscale: Option<u8>,
    /// SACK permitted (kind 4), only on SYNs.
    pub sack_permitted: bool,
    /// Timestamps (kind 8): `(TSval, TSecr)`.
    pub timestamps: Option<(u32, u32)>,
    /// How many SACK blocks (kind 5) the segment carried.
    pub sack_blocks: u8,
    /// The SACK blocks themselves, `(left edge, right edge)` (RFC 2018
    /// §3), in the order they came; at most four fit the option space.
    pub sack: [Option<(SeqNumber, SeqNumber)>; 4],
    /// Options of any other kind.
    pub unknown: u8,
}

impl TcpOptions {
    pub fn is_empty(&self) -> bool {
        *self == TcpOptions::default()
    }
}

impl fmt::Display for TcpOptions {
    /// A compact list in the order Linux sends them: `mss=1460,sack_perm,ts=…,ws=7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(mss) = self.mss {
            parts.push(format!("mss={mss}"));
        }
        if self.sack_permitted {
            parts.push("sack_perm".into());
        }
        if let Some((val, ecr)) = self.timestamps {
            parts.push(format!("ts={val}/{ecr}"));
        }
        if let Some(ws) = self.wscale {
            parts.push(format!("ws={ws}"));
        }
        if self.sack_blocks > 0 {
            parts.push(format!("sack×{}", self.sack_blocks));
        }
        if self.unknown > 0 {
            parts.push(format!("unknown×{}", self.unknown));
        }
        f.write_str(&parts.join(","))
    }
}

/// One TCP segment, in host terms. The acknowledgment number means something
/// only when the ACK flag is set.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct SegmentRepr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: SeqNumber,
    pub ack: SeqNumber,
    pub flags: Flags,
    /// The raw window field (not scaled).
    pub window: u16,
    pub options: TcpOptions,
    pub payload: Vec<u8>,
}

impl SegmentRepr {
    /// How much sequence space the segment takes: its payload plus one for
    /// SYN and one for FIN (RFC 9293 §3.4, "segment length").
    pub fn seq_len(&self) -> usize {
        self.payload.len() + usize::from(self.flags.syn()) + usize::from(self.flags.fin())
    }

    /// The acknowledgment number, when the ACK flag is set.
    pub fn ack_number(&self) -> Option<SeqNumber> {
        self.flags.ack().then_some(self.ack)
    }
}

impl fmt::Display for SegmentRepr {
    /// tcpdump-like: `40000 → 8080 [SYN] seq=… win=… len=0 <mss=1460,…>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} → {} [{}] seq={}",
            self.src_port, self.dst_port, self.flags, self.seq
        )?;
        if self.flags.ack() {
            write!(f, " ack={}", self.ack)?;
        }
        write!(f, " win={} len={}", self.window, self.payload.len())?;
        if !self.options.is_empty() {
            write!(f, " <{}>", self.options)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_read_like_wireshark() {
        assert_eq!(Flags::SYN_ACK.to_string(), "SYN, ACK");
        assert_eq!(Flags::FIN_ACK.to_string(), "FIN, ACK");
        assert_eq!(Flags(0).to_string(), "<none>");
        assert!(Flags::SYN_ACK.syn() && Flags::SYN_ACK.ack());
        assert!(!Flags::SYN_ACK.fin());
    }

    #[test]
    fn seq_len_counts_syn_and_fin() {
        let mut seg = SegmentRepr {
            flags: Flags::SYN,
            ..SegmentRepr::default()
        };
        assert_eq!(seg.seq_len(), 1);
        seg.flags = Flags::FIN_ACK;
        seg.payload = b"hello".to_vec();
        assert_eq!(seg.seq_len(), 6);
        assert_eq!(seg.ack_number(), Some(SeqNumber(0)));
    }
}
