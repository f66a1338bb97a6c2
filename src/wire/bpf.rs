//! Classic BPF programs (the kernel's socket filter, `SO_ATTACH_FILTER`)
//! for Ethernet frames, built by hand from a small filter expression, so
//! that a capture keeps only the frames it is about without libpcap.
//!
//! A [`Filter`] reads like a tcpdump expression: "tcp and host A and port
//! P", combined with [`Filter::and`], [`Filter::or`] and [`Filter::not`].
//! [`Filter::compile`] turns it into [`Insn`]s (`struct sock_filter`):
//! every primitive is a few loads and one conditional jump, `and`/`or`
//! short-circuit, and the program ends in "accept" (`ret #SNAPLEN`) or
//! "reject" (`ret #0`). Jumps only go forward, as the kernel's checker
//! demands.
//!
//! Frames are Ethernet II as an AF_PACKET socket sees them, `lo` included
//! (its frames have an Ethernet header with all-zero MACs). IPv4 has
//! `Host`/`Port`/`Proto`; IPv6 has `Ipv6` (`ip6`), `Ip6Proto` (`ip6
//! proto`, as tcpdump: the fixed header's Next Header, or the one after a
//! fragment header), `Host6`, `Port6` and `Icmp6Type`, which also looks
//! past one Hop-by-Hop Options header, where MLD reports carry their
//! Router Alert (RFC 2711): [`Filter::mld`] keeps them out of a capture
//! while Neighbor Discovery stays.
//!
//! Pure: no I/O; `net::sys::attach_filter` puts a program on a socket.
//! The tests run the programs in a small interpreter over real frames.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

/// One instruction, laid out as the kernel's `struct sock_filter`
/// (include/uapi/linux/filter.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// Instruction classes, sizes, modes and operations
/// (include/uapi/linux/bpf_common.h).
pub mod op {
    pub const LD: u16 = 0x00;
    pub const LDX: u16 = 0x01;
    pub const ALU: u16 = 0x04;
    pub const JMP: u16 = 0x05;
    pub const RET: u16 = 0x06;
    pub const MISC: u16 = 0x07;
    /// Sizes: a 32-bit word, a half word, a byte.
    pub const W: u16 = 0x00;
    pub const H: u16 = 0x08;
    pub const B: u16 = 0x10;
    /// Modes: at a fixed offset, at X + the offset, 4 × (the byte's low
    /// nibble) (an IPv4 header's length, into X).
    pub const ABS: u16 = 0x20;
    pub const IND: u16 = 0x40;
    pub const MSH: u16 = 0xa0;
    pub const ADD: u16 = 0x00;
    pub const AND: u16 = 0x50;
    pub const LSH: u16 = 0x60;
    pub const JA: u16 = 0x00;
    pub const JEQ: u16 = 0x10;
    pub const JGT: u16 = 0x20;
    pub const JSET: u16 = 0x40;
    /// The operand: the constant k, or X.
    pub const K: u16 = 0x00;
    pub const X: u16 = 0x08;
    /// MISC: A → X.
    pub const TAX: u16 = 0x00;
}

/// The longest program the kernel accepts (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;
/// How many bytes of an accepted frame to keep (tcpdump's default).
pub const SNAPLEN: u32 = 262_144;

const ETHERTYPE_OFFSET: u32 = 12;
const ETHERTYPE_IPV4: u32 = 0x0800;
const ETHERTYPE_ARP: u32 = 0x0806;
const ETHERTYPE_IPV6: u32 = 0x86dd;
/// The IPv4 header starts right after the 14-byte Ethernet header.
const IP: u32 = 14;
const IP_FLAGS_FRAGMENT: u32 = IP + 6;
const IP_PROTO: u32 = IP + 9;
const IP_SRC: u32 = IP + 12;
const IP_DST: u32 = IP + 16;
/// The fixed IPv6 header (RFC 8200 §3): Next Header, the addresses, and
/// what follows its 40 bytes.
const IP6_NEXT_HEADER: u32 = IP + 6;
const IP6_SRC: u32 = IP + 8;
const IP6_DST: u32 = IP + 24;
const IP6_PAYLOAD: u32 = IP + 40;
/// Next Header values: Hop-by-Hop Options, Fragment, ICMPv6.
const NH_HOP_BY_HOP: u32 = 0;
const NH_FRAGMENT: u32 = 44;
pub const PROTO_ICMPV6: u8 = 58;
/// MLD's ICMPv6 types: query, v1 report, done, v2 report (RFC 2710, 3810).
pub const MLD_TYPES: [u8; 4] = [130, 131, 132, 143];
/// The fragment offset's 13 bits: non-zero on every fragment but the
/// first, which alone carries the ports.
const FRAGMENT_OFFSET_MASK: u32 = 0x1fff;
/// ARP for IPv4 over Ethernet (RFC 826): the sender's and the target's
/// protocol addresses.
const ARP_SPA: u32 = IP + 14;
const ARP_TPA: u32 = IP + 24;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
const ICMP_DEST_UNREACHABLE: u32 = 3;
/// In an ICMP error, the quoted IPv4 header starts 8 bytes into the ICMP
/// message (RFC 792).
const ICMP_QUOTE: u32 = 8;

/// Which end of a packet an address or port test looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Src,
    Dst,
    /// Either (tcpdump's plain `host` / `port`).
    Either,
}

/// A filter expression over Ethernet frames.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Every frame.
    Any,
    /// ARP (ethertype 0x0806).
    Arp,
    /// IPv4 (ethertype 0x0800).
    Ipv4,
    /// IPv4 carrying this protocol (`ip proto 6`, [`PROTO_TCP`]).
    Proto(u8),
    /// An IPv4 address (`host`, `src host`, `dst host`).
    Host(Dir, Ipv4Addr),
    /// A TCP or UDP port of an IPv4 packet's first fragment (`port`,
    /// `src port`, `dst port`). Alone it matches both protocols, as
    /// tcpdump's does: combine it with `Proto(PROTO_TCP)` for TCP only.
    Port(Dir, u16),
    /// ARP whose sender or target protocol address is this one.
    ArpHost(Ipv4Addr),
    /// An ICMP destination unreachable that quotes a TCP segment from
    /// `from` to `to` (a router's or the server's error about a segment of
    /// this connection).
    IcmpUnreachableAbout {
        from: SocketAddrV4,
        to: SocketAddrV4,
    },
    /// IPv6 (ethertype 0x86dd): tcpdump's `ip6`.
    Ipv6,
    /// IPv6 carrying this protocol: tcpdump's `ip6 proto P`, the fixed
    /// header's Next Header, or the one after a fragment header. It does
    /// not chase other extension headers (tcpdump's neither).
    Ip6Proto(u8),
    /// An IPv6 address (`ip6 host`, `ip6 src`, `ip6 dst`).
    Host6(Dir, Ipv6Addr),
    /// A TCP or UDP port right after the fixed IPv6 header.
    Port6(Dir, u16),
    /// ICMPv6 of this type, right after the fixed header or after one
    /// Hop-by-Hop Options header (where MLD reports are).
    Icmp6Type(u8),
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
}

/// Why a filter could not become a program.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BpfError {
    #[error("the filter needs {len} instructions; the kernel takes at most {MAX_INSNS}")]
    TooLong { len: usize },
    #[error("the filter needs a jump of {distance} instructions; classic BPF jumps at most 255")]
    JumpTooFar { distance: usize },
}

impl Filter {
    /// All of `parts` (an empty list matches everything).
    pub fn and(parts: impl IntoIterator<Item = Filter>) -> Filter {
        Filter::And(parts.into_iter().collect())
    }

    /// Any of `parts` (an empty list matches nothing).
    pub fn or(parts: impl IntoIterator<Item = Filter>) -> Filter {
        Filter::Or(parts.into_iter().collect())
    }

    /// Everything `self` does not match.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Filter {
        Filter::Not(Box::new(self))
    }

    /// `tcp and host A and host B and port P and port Q`: both directions
    /// of one TCP connection (`a` and `b` are its two ends).
    pub fn tcp_connection(a: SocketAddrV4, b: SocketAddrV4) -> Filter {
        let end = |src: SocketAddrV4, dst: SocketAddrV4| {
            Filter::and([
                Filter::Host(Dir::Src, *src.ip()),
                Filter::Host(Dir::Dst, *dst.ip()),
                Filter::Port(Dir::Src, src.port()),
                Filter::Port(Dir::Dst, dst.port()),
            ])
        };
        Filter::and([Filter::Proto(PROTO_TCP), Filter::or([end(a, b), end(b, a)])])
    }

    /// Multicast Listener Discovery (queries, reports, done: ICMPv6 130,
    /// 131, 132, 143), which a Linux host sends for each group it joins.
    /// `Filter::mld().not()` keeps it out of a capture; Neighbor Discovery
    /// (133–137) is not MLD.
    pub fn mld() -> Filter {
        Filter::or(MLD_TYPES.map(Filter::Icmp6Type))
    }

    /// Both directions of one TCP connection over IPv6, as
    /// [`Filter::tcp_connection`] for IPv4.
    pub fn tcp6_connection(a: SocketAddrV6, b: SocketAddrV6) -> Filter {
        let end = |src: SocketAddrV6, dst: SocketAddrV6| {
            Filter::and([
                Filter::Host6(Dir::Src, *src.ip()),
                Filter::Host6(Dir::Dst, *dst.ip()),
                Filter::Port6(Dir::Src, src.port()),
                Filter::Port6(Dir::Dst, dst.port()),
            ])
        };
        Filter::and([
            Filter::Ip6Proto(PROTO_TCP),
            Filter::or([end(a, b), end(b, a)]),
        ])
    }

    /// The program: accept (keep [`SNAPLEN`] bytes) what the filter
    /// matches, drop the rest.
    ///
    /// # Errors
    /// A program longer than the kernel takes, or a jump over more than
    /// 255 instructions (a very long `and`/`or`).
    pub fn compile(&self) -> Result<Vec<Insn>, BpfError> {
        let mut asm = Asm::default();
        let (accept, reject) = (asm.label(), asm.label());
        asm.node(&self.lower(), accept, reject);
        asm.place(accept);
        asm.emit(stmt(op::RET | op::K, SNAPLEN));
        asm.place(reject);
        asm.emit(stmt(op::RET | op::K, 0));
        asm.finish()
    }

    /// The expression as tests: loads and one comparison each.
    fn lower(&self) -> Node {
        match self {
            Filter::Any => Node::And(Vec::new()),
            Filter::Arp => ethertype(ETHERTYPE_ARP),
            Filter::Ipv4 => ethertype(ETHERTYPE_IPV4),
            Filter::Proto(proto) => Node::And(vec![
                ethertype(ETHERTYPE_IPV4),
                test(vec![load(op::B, IP_PROTO)], op::JEQ, u32::from(*proto)),
            ]),
            Filter::Host(dir, addr) => {
                let is = |offset| test(vec![load(op::W, offset)], op::JEQ, u32::from(*addr));
                Node::And(vec![
                    ethertype(ETHERTYPE_IPV4),
                    either(dir, is(IP_SRC), is(IP_DST)),
                ])
            }
            Filter::Port(dir, port) => port4(dir, *port),
            Filter::ArpHost(addr) => {
                let is = |offset| test(vec![load(op::W, offset)], op::JEQ, u32::from(*addr));
                Node::And(vec![
                    ethertype(ETHERTYPE_ARP),
                    Node::Or(vec![is(ARP_SPA), is(ARP_TPA)]),
                ])
            }
            Filter::IcmpUnreachableAbout { from, to } => icmp_unreachable_about(from, to),
            Filter::Ipv6 => ethertype(ETHERTYPE_IPV6),
            Filter::Ip6Proto(proto) => {
                let proto = u32::from(*proto);
                // tcpdump's program: A keeps the Next Header for the
                // second comparison.
                Node::And(vec![
                    ethertype(ETHERTYPE_IPV6),
                    Node::Or(vec![
                        test(vec![load(op::B, IP6_NEXT_HEADER)], op::JEQ, proto),
                        Node::And(vec![
                            test(Vec::new(), op::JEQ, NH_FRAGMENT),
                            test(vec![load(op::B, IP6_PAYLOAD)], op::JEQ, proto),
                        ]),
                    ]),
                ])
            }
            Filter::Host6(dir, addr) => host6(dir, addr),
            Filter::Port6(dir, port) => {
                let is = |offset| test(vec![load(op::H, offset)], op::JEQ, u32::from(*port));
                Node::And(vec![
                    ethertype(ETHERTYPE_IPV6),
                    Node::Or(vec![
                        test(
                            vec![load(op::B, IP6_NEXT_HEADER)],
                            op::JEQ,
                            u32::from(PROTO_TCP),
                        ),
                        test(Vec::new(), op::JEQ, u32::from(PROTO_UDP)),
                    ]),
                    either(dir, is(IP6_PAYLOAD), is(IP6_PAYLOAD + 2)),
                ])
            }
            Filter::Icmp6Type(kind) => icmp6_type(*kind),
            Filter::And(parts) => Node::And(parts.iter().map(Filter::lower).collect()),
            Filter::Or(parts) => Node::Or(parts.iter().map(Filter::lower).collect()),
            Filter::Not(inner) => Node::Not(Box::new(inner.lower())),
        }
    }
}

/// The expression after lowering: tests and their combinations.
#[derive(Clone, Debug)]
enum Node {
    /// Run `loads`, then jump on `A <cond> k` (`JEQ`, `JGT`, `JSET`).
    Test {
        loads: Vec<Insn>,
        cond: u16,
        k: u32,
    },
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

fn stmt(code: u16, k: u32) -> Insn {
    Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

/// `[src|dst] port N` over IPv4: TCP or UDP, a first fragment, the port.
fn port4(dir: &Dir, port: u16) -> Node {
    // X = the IPv4 header's length; the ports are the first
    // four bytes after it, in TCP and UDP alike.
    let is = |offset| {
        test(
            vec![
                stmt(op::LDX | op::B | op::MSH, IP),
                stmt(op::LD | op::H | op::IND, offset),
            ],
            op::JEQ,
            u32::from(port),
        )
    };
    Node::And(vec![
        ethertype(ETHERTYPE_IPV4),
        Node::Or(vec![
            test(vec![load(op::B, IP_PROTO)], op::JEQ, u32::from(PROTO_TCP)),
            test(vec![load(op::B, IP_PROTO)], op::JEQ, u32::from(PROTO_UDP)),
        ]),
        first_fragment(),
        either(dir, is(IP), is(IP + 2)),
    ])
}

/// An ICMP destination unreachable about the TCP connection `from` → `to`
/// (the quoted IPv4 and TCP headers name it).
fn icmp_unreachable_about(from: &SocketAddrV4, to: &SocketAddrV4) -> Node {
    // Offsets after the ICMP header, with X = the outer IPv4
    // header's length.
    let quoted = IP + ICMP_QUOTE;
    let ind = |size, offset, value: u32| {
        test(
            vec![
                stmt(op::LDX | op::B | op::MSH, IP),
                stmt(op::LD | size | op::IND, offset),
            ],
            op::JEQ,
            value,
        )
    };
    // X = the outer header's length + the quoted header's:
    // A = [X + quoted] & 0xf, × 4, + X.
    let port = |offset, value: u16| {
        test(
            vec![
                stmt(op::LDX | op::B | op::MSH, IP),
                stmt(op::LD | op::B | op::IND, quoted),
                stmt(op::ALU | op::AND | op::K, 0x0f),
                stmt(op::ALU | op::LSH | op::K, 2),
                stmt(op::ALU | op::ADD | op::X, 0),
                stmt(op::MISC | op::TAX, 0),
                stmt(op::LD | op::H | op::IND, quoted + offset),
            ],
            op::JEQ,
            u32::from(value),
        )
    };
    Node::And(vec![
        ethertype(ETHERTYPE_IPV4),
        test(vec![load(op::B, IP_PROTO)], op::JEQ, u32::from(PROTO_ICMP)),
        first_fragment(),
        ind(op::B, IP, ICMP_DEST_UNREACHABLE),
        ind(op::B, quoted + 9, u32::from(PROTO_TCP)),
        ind(op::W, quoted + 12, u32::from(*from.ip())),
        ind(op::W, quoted + 16, u32::from(*to.ip())),
        port(0, from.port()),
        port(2, to.port()),
    ])
}

/// `ip6 [src|dst] host A`: the four words of the address.
fn host6(dir: &Dir, addr: &Ipv6Addr) -> Node {
    let words = addr.octets();
    let is = |base: u32| {
        Node::And(
            words
                .chunks(4)
                .zip((0u32..).step_by(4))
                .map(|(w, at)| {
                    let word = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
                    test(vec![load(op::W, base + at)], op::JEQ, word)
                })
                .collect(),
        )
    };
    Node::And(vec![
        ethertype(ETHERTYPE_IPV6),
        either(dir, is(IP6_SRC), is(IP6_DST)),
    ])
}

/// `icmp6[icmp6type] == N`: directly after the IPv6 header or after a
/// Hop-by-Hop header (MLD reports carry one).
fn icmp6_type(kind: u8) -> Node {
    let (icmp6, kind) = (u32::from(PROTO_ICMPV6), u32::from(kind));
    // After a Hop-by-Hop header: X = its length, (len + 1) × 8
    // (RFC 8200 §4.3), the type at 54 + X.
    let after_hop_by_hop = vec![
        load(op::B, IP6_PAYLOAD + 1),
        stmt(op::ALU | op::ADD | op::K, 1),
        stmt(op::ALU | op::LSH | op::K, 3),
        stmt(op::MISC | op::TAX, 0),
        stmt(op::LD | op::B | op::IND, IP6_PAYLOAD),
    ];
    Node::And(vec![
        ethertype(ETHERTYPE_IPV6),
        Node::Or(vec![
            Node::And(vec![
                test(vec![load(op::B, IP6_NEXT_HEADER)], op::JEQ, icmp6),
                test(vec![load(op::B, IP6_PAYLOAD)], op::JEQ, kind),
            ]),
            Node::And(vec![
                test(vec![load(op::B, IP6_NEXT_HEADER)], op::JEQ, NH_HOP_BY_HOP),
                test(vec![load(op::B, IP6_PAYLOAD)], op::JEQ, icmp6),
                test(after_hop_by_hop, op::JEQ, kind),
            ]),
        ]),
    ])
}

fn load(size: u16, offset: u32) -> Insn {
    stmt(op::LD | size | op::ABS, offset)
}

fn test(loads: Vec<Insn>, cond: u16, k: u32) -> Node {
    Node::Test { loads, cond, k }
}

fn ethertype(value: u32) -> Node {
    test(vec![load(op::H, ETHERTYPE_OFFSET)], op::JEQ, value)
}

/// Not a later fragment: only the first carries the transport header.
fn first_fragment() -> Node {
    Node::Not(Box::new(test(
        vec![load(op::H, IP_FLAGS_FRAGMENT)],
        op::JSET,
        FRAGMENT_OFFSET_MASK,
    )))
}

fn either(dir: &Dir, src: Node, dst: Node) -> Node {
    match dir {
        Dir::Src => src,
        Dir::Dst => dst,
        Dir::Either => Node::Or(vec![src, dst]),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Label(usize);

/// An instruction and where its jumps go: a conditional jump's (taken,
/// not taken) labels, or an unconditional one's label.
type Pending = (Insn, Option<(Label, Label)>, Option<Label>);

/// The assembler: instructions whose jumps name labels, resolved to
/// relative offsets once every label has its place.
#[derive(Default)]
struct Asm {
    code: Vec<Pending>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// The label is the next instruction emitted.
    fn place(&mut self, label: Label) {
        self.labels[label.0] = Some(self.code.len());
    }

    fn emit(&mut self, insn: Insn) {
        self.code.push((insn, None, None));
    }

    /// Emits `node`: it goes on to `yes` when it matches, to `no` when
    /// not. Both are placed later, so every jump goes forward.
    fn node(&mut self, node: &Node, yes: Label, no: Label) {
        match node {
            Node::Test { loads, cond, k } => {
                for insn in loads {
                    self.emit(*insn);
                }
                self.code
                    .push((stmt(op::JMP | cond | op::K, *k), Some((yes, no)), None));
            }
            // An empty `and` is true, an empty `or` false.
            Node::And(parts) if parts.is_empty() => self.jump(yes),
            Node::Or(parts) if parts.is_empty() => self.jump(no),
            Node::And(parts) => {
                let (last, first) = parts.split_last().expect("not empty");
                for part in first {
                    let next = self.label();
                    self.node(part, next, no);
                    self.place(next);
                }
                self.node(last, yes, no);
            }
            Node::Or(parts) => {
                let (last, first) = parts.split_last().expect("not empty");
                for part in first {
                    let next = self.label();
                    self.node(part, yes, next);
                    self.place(next);
                }
                self.node(last, yes, no);
            }
            Node::Not(inner) => self.node(inner, no, yes),
        }
    }

    fn jump(&mut self, to: Label) {
        self.code.push((stmt(op::JMP | op::JA, 0), None, Some(to)));
    }

    fn finish(self) -> Result<Vec<Insn>, BpfError> {
        let len = self.code.len();
        if len > MAX_INSNS {
            return Err(BpfError::TooLong { len });
        }
        let at = |label: Label| self.labels[label.0].expect("every label is placed");
        self.code
            .iter()
            .enumerate()
            .map(|(pc, (insn, cond, ja))| {
                let mut insn = *insn;
                // Offsets count from the instruction after this one.
                if let Some((yes, no)) = cond {
                    let offset = |to: usize| {
                        let distance = to - (pc + 1);
                        u8::try_from(distance).map_err(|_| BpfError::JumpTooFar { distance })
                    };
                    insn.jt = offset(at(*yes))?;
                    insn.jf = offset(at(*no))?;
                }
                if let Some(to) = ja {
                    insn.k = (at(*to) - (pc + 1)) as u32;
                }
                Ok(insn)
            })
            .collect()
    }
}

/// Runs `program` over `frame` as the kernel does (a load past the end
/// rejects the frame) and returns how many bytes it keeps (0: dropped).
/// For tests: checking a program without a socket.
///
/// # Panics
/// On an instruction this module never emits.
#[cfg(test)]
pub(crate) fn run(program: &[Insn], frame: &[u8]) -> u32 {
    let (mut a, mut x) = (0u32, 0u32);
    let mut pc = 0;
    let read = |offset: u32, size: u16| -> Option<u32> {
        let start = offset as usize;
        let len = match size {
            op::W => 4,
            op::H => 2,
            _ => 1,
        };
        let bytes = frame.get(start..start.checked_add(len)?)?;
        Some(bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b)))
    };
    while let Some(insn) = program.get(pc) {
        pc += 1;
        let class = insn.code & 0x07;
        let size = insn.code & 0x18;
        let mode = insn.code & 0xe0;
        match class {
            op::LD => {
                let offset = match mode {
                    op::ABS => insn.k,
                    op::IND => x.wrapping_add(insn.k),
                    _ => panic!("unsupported load {insn:?}"),
                };
                match read(offset, size) {
                    Some(value) => a = value,
                    None => return 0,
                }
            }
            op::LDX if mode == op::MSH => match read(insn.k, op::B) {
                Some(value) => x = (value & 0x0f) * 4,
                None => return 0,
            },
            op::ALU => {
                let operand = if insn.code & op::X != 0 { x } else { insn.k };
                a = match insn.code & 0xf0 {
                    op::ADD => a.wrapping_add(operand),
                    op::AND => a & operand,
                    op::LSH => a.wrapping_shl(operand),
                    _ => panic!("unsupported ALU {insn:?}"),
                };
            }
            op::MISC if insn.code & 0xf8 == op::TAX => x = a,
            op::JMP => {
                let taken = match insn.code & 0xf0 {
                    op::JA => {
                        pc += insn.k as usize;
                        continue;
                    }
                    op::JEQ => a == insn.k,
                    op::JGT => a > insn.k,
                    op::JSET => a & insn.k != 0,
                    _ => panic!("unsupported jump {insn:?}"),
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
            op::RET => return insn.k,
            _ => panic!("unsupported instruction {insn:?}"),
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{
        emit_arp, emit_tcp, emit_udp, ArpOp, ArpRepr, Flags, Ipv4Repr, MacAddr, SegmentRepr,
        SeqNumber, UdpRepr, ETHERNET_HEADER_LEN,
    };

    const CLIENT: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 2), 40000);
    const SERVER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 8080);

    fn tcp(src: SocketAddrV4, dst: SocketAddrV4) -> Vec<u8> {
        let segment = SegmentRepr {
            src_port: src.port(),
            dst_port: dst.port(),
            seq: SeqNumber(1),
            flags: Flags::SYN,
            window: 64240,
            ..SegmentRepr::default()
        };
        let ip = Ipv4Repr {
            src: *src.ip(),
            dst: *dst.ip(),
            ident: 1,
            ttl: 64,
        };
        emit_tcp(MacAddr::zero(), MacAddr::zero(), &ip, &segment).unwrap()
    }

    fn udp(src: SocketAddrV4, dst: SocketAddrV4) -> Vec<u8> {
        let ip = Ipv4Repr {
            src: *src.ip(),
            dst: *dst.ip(),
            ident: 1,
            ttl: 64,
        };
        let datagram = UdpRepr {
            src_port: src.port(),
            dst_port: dst.port(),
            payload: b"hi".to_vec(),
        };
        emit_udp(MacAddr::zero(), MacAddr::zero(), &ip, &datagram).unwrap()
    }

    fn arp(sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
        let repr = ArpRepr {
            op: ArpOp::Request,
            sender_mac: MacAddr::new(2, 0, 0, 0, 0, 2),
            sender_ip: sender,
            target_mac: MacAddr::zero(),
            target_ip: target,
        };
        emit_arp(repr.sender_mac, MacAddr::broadcast(), &repr)
    }

    /// An ICMP destination unreachable from `router` quoting `quoted` (an
    /// Ethernet frame whose IP packet and first 8 bytes are quoted).
    fn icmp_about(router: Ipv4Addr, quoted: &[u8]) -> Vec<u8> {
        use etherparse::{icmpv4::DestUnreachableHeader, Icmpv4Type, PacketBuilder};
        let inner = &quoted[ETHERNET_HEADER_LEN..];
        let dst = [inner[12], inner[13], inner[14], inner[15]];
        let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(router.octets(), dst, 64)
            .icmpv4(Icmpv4Type::DestinationUnreachable(
                DestUnreachableHeader::from_values(1, 0).unwrap(),
            ));
        let mut out = Vec::new();
        builder.write(&mut out, &inner[..28]).unwrap();
        out
    }

    fn matches(filter: &Filter, frame: &[u8]) -> bool {
        let program = filter.compile().unwrap();
        run(&program, frame) != 0
    }

    #[test]
    fn ip_proto_tcp_is_the_program_tcpdump_prints() {
        // `tcpdump -d 'ip proto 6'`, with our snaplen.
        assert_eq!(
            Filter::Proto(PROTO_TCP).compile().unwrap(),
            [
                Insn {
                    code: 0x28,
                    jt: 0,
                    jf: 0,
                    k: 12
                },
                Insn {
                    code: 0x15,
                    jt: 0,
                    jf: 3,
                    k: 0x800
                },
                Insn {
                    code: 0x30,
                    jt: 0,
                    jf: 0,
                    k: 23
                },
                Insn {
                    code: 0x15,
                    jt: 0,
                    jf: 1,
                    k: 6
                },
                Insn {
                    code: 0x06,
                    jt: 0,
                    jf: 0,
                    k: SNAPLEN
                },
                Insn {
                    code: 0x06,
                    jt: 0,
                    jf: 0,
                    k: 0
                },
            ]
        );
    }

    #[test]
    fn the_connection_filter_takes_both_directions_and_nothing_else() {
        let filter = Filter::tcp_connection(CLIENT, SERVER);
        assert!(matches(&filter, &tcp(CLIENT, SERVER)));
        assert!(matches(&filter, &tcp(SERVER, CLIENT)));
        let other_port = SocketAddrV4::new(*CLIENT.ip(), 40001);
        assert!(!matches(&filter, &tcp(other_port, SERVER)));
        let other_host = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 3), 40000);
        assert!(!matches(&filter, &tcp(other_host, SERVER)));
        // Both addresses right but crossed with the ports: not ours.
        let crossed = SocketAddrV4::new(*CLIENT.ip(), SERVER.port());
        let crossed_back = SocketAddrV4::new(*SERVER.ip(), CLIENT.port());
        assert!(!matches(&filter, &tcp(crossed, crossed_back)));
        // The same ports over UDP, ARP, a truncated frame.
        assert!(!matches(&filter, &udp(CLIENT, SERVER)));
        assert!(!matches(&filter, &arp(*CLIENT.ip(), *SERVER.ip())));
        assert!(!matches(&filter, &tcp(CLIENT, SERVER)[..30]));
    }

    #[test]
    fn port_alone_is_tcp_or_udp_and_direction_counts() {
        let port = Filter::Port(Dir::Either, 8080);
        assert!(matches(&port, &tcp(CLIENT, SERVER)));
        assert!(matches(&port, &udp(SERVER, CLIENT)));
        assert!(!matches(&port, &arp(*CLIENT.ip(), *SERVER.ip())));
        assert!(matches(&Filter::Port(Dir::Dst, 8080), &tcp(CLIENT, SERVER)));
        assert!(!matches(
            &Filter::Port(Dir::Src, 8080),
            &tcp(CLIENT, SERVER)
        ));
        assert!(matches(
            &Filter::Host(Dir::Src, *CLIENT.ip()),
            &tcp(CLIENT, SERVER)
        ));
        assert!(!matches(
            &Filter::Host(Dir::Dst, *CLIENT.ip()),
            &tcp(CLIENT, SERVER)
        ));
    }

    #[test]
    fn a_later_fragment_has_no_ports() {
        let mut frame = tcp(CLIENT, SERVER);
        // Fragment offset 1 (8 bytes): the ports' bytes are payload now.
        frame[IP_FLAGS_FRAGMENT as usize + 1] = 1;
        assert!(!matches(&Filter::Port(Dir::Either, 8080), &frame));
        assert!(matches(&Filter::Host(Dir::Either, *CLIENT.ip()), &frame));
    }

    #[test]
    fn an_ip_header_with_options_moves_the_ports() {
        // A 24-byte header (IHL 6): four option bytes (NOPs) before TCP.
        let plain = tcp(CLIENT, SERVER);
        let mut frame = plain[..34].to_vec();
        frame[IP as usize] = 0x46;
        frame.extend_from_slice(&[1, 1, 1, 1]);
        frame.extend_from_slice(&plain[34..]);
        assert!(matches(&Filter::tcp_connection(CLIENT, SERVER), &frame));
    }

    #[test]
    fn arp_host_is_the_sender_or_the_target() {
        let (ours, hop) = (*CLIENT.ip(), *SERVER.ip());
        let filter = Filter::and([Filter::ArpHost(ours), Filter::ArpHost(hop)]);
        assert!(matches(&filter, &arp(ours, hop)));
        assert!(matches(&filter, &arp(hop, ours)));
        assert!(!matches(&filter, &arp(hop, Ipv4Addr::new(198, 18, 0, 9))));
        assert!(!matches(&filter, &tcp(CLIENT, SERVER)));
        assert!(matches(&Filter::Arp, &arp(hop, ours)));
    }

    #[test]
    fn an_icmp_error_counts_only_when_it_quotes_our_segment() {
        let router = Ipv4Addr::new(198, 18, 0, 254);
        let filter = Filter::IcmpUnreachableAbout {
            from: CLIENT,
            to: SERVER,
        };
        assert!(matches(&filter, &icmp_about(router, &tcp(CLIENT, SERVER))));
        let other = SocketAddrV4::new(*CLIENT.ip(), 40001);
        assert!(!matches(&filter, &icmp_about(router, &tcp(other, SERVER))));
        assert!(!matches(&filter, &icmp_about(router, &udp(CLIENT, SERVER))));
        assert!(!matches(&filter, &tcp(CLIENT, SERVER)));
    }

    #[test]
    fn not_any_and_the_empty_combinations() {
        let frame = tcp(CLIENT, SERVER);
        assert!(matches(&Filter::Any, &frame));
        assert!(!matches(&Filter::Any.not(), &frame));
        assert!(!matches(&Filter::or([]), &frame));
        assert!(matches(&Filter::and([]), &frame));
        assert!(matches(&Filter::Arp.not(), &frame));
        assert!(!matches(&Filter::Ipv4.not(), &frame));
        // Every jump goes forward and lands inside the program.
        let program = Filter::or([
            Filter::tcp_connection(CLIENT, SERVER),
            Filter::and([Filter::Arp, Filter::ArpHost(*CLIENT.ip())]),
        ])
        .compile()
        .unwrap();
        for (pc, insn) in program.iter().enumerate() {
            if insn.code & 0x07 == op::JMP {
                assert!(pc + 1 + usize::from(insn.jt.max(insn.jf)) < program.len());
            }
        }
    }

    #[test]
    fn too_long_an_or_is_an_error_not_a_wrong_jump() {
        let many = Filter::and((0..100).map(|p| Filter::Port(Dir::Either, p)));
        assert!(matches!(many.compile(), Err(BpfError::JumpTooFar { .. })));
    }

    // IPv6.

    fn tcp6(src: SocketAddrV6, dst: SocketAddrV6) -> Vec<u8> {
        let segment = SegmentRepr {
            src_port: src.port(),
            dst_port: dst.port(),
            seq: SeqNumber(1),
            flags: Flags::SYN,
            window: 64800,
            ..SegmentRepr::default()
        };
        let ip = crate::wire::Ipv6Repr {
            src: *src.ip(),
            dst: *dst.ip(),
            flow_label: 0,
            hop_limit: 64,
        };
        crate::wire::emit_tcp6(MacAddr::zero(), MacAddr::zero(), &ip, &segment).unwrap()
    }

    fn v6(text: &str) -> Ipv6Addr {
        text.parse().unwrap()
    }

    /// An MLDv2 report as Linux sends it when an address is added: to
    /// ff02::16, hop limit 1, a Hop-by-Hop header with the Router Alert
    /// option, then ICMPv6 type 143 with one record.
    fn mld_report(kind: u8) -> Vec<u8> {
        #[rustfmt::skip]
        let mut frame = vec![
            0x33, 0x33, 0, 0, 0, 0x16, 0x02, 0, 0, 0, 0, 0x01, 0x86, 0xdd,
            0x60, 0, 0, 0, 0, 36, NH_HOP_BY_HOP as u8, 1,
        ];
        frame.extend(v6("fe80::1").octets());
        frame.extend(v6("ff02::16").octets());
        // Hop-by-Hop: next header ICMPv6, length 0 (8 bytes), Router
        // Alert (MLD), PadN.
        frame.extend([PROTO_ICMPV6, 0, 5, 2, 0, 0, 1, 0]);
        frame.extend([kind, 0, 0x12, 0x34, 0, 0, 0, 1]);
        frame.extend([4, 0, 0, 0]);
        frame.extend(v6("ff02::1:ff00:1").octets());
        frame
    }

    const C6: &str = "2001:2::2";
    const S6: &str = "2001:2::1";

    fn c6() -> SocketAddrV6 {
        SocketAddrV6::new(v6(C6), 40000, 0, 0)
    }
    fn s6() -> SocketAddrV6 {
        SocketAddrV6::new(v6(S6), 8080, 0, 0)
    }

    #[test]
    fn ip6_proto_tcp_is_the_program_tcpdump_prints() {
        // `tcpdump -d 'ip6 proto 6'` (tcpdump 4.99): the Next Header, or
        // a fragment header's.
        let expected: [(u16, u8, u8, u32); 9] = [
            (0x28, 0, 0, 12),
            (0x15, 0, 6, 0x86dd),
            (0x30, 0, 0, 20),
            (0x15, 3, 0, 6),
            (0x15, 0, 3, 0x2c),
            (0x30, 0, 0, 54),
            (0x15, 0, 1, 6),
            (0x06, 0, 0, SNAPLEN),
            (0x06, 0, 0, 0),
        ];
        let program = Filter::Ip6Proto(PROTO_TCP).compile().unwrap();
        let got: Vec<_> = program.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn ip6_and_ip6_proto_tell_the_families_apart() {
        let (v4, v6frame) = (tcp(CLIENT, SERVER), tcp6(c6(), s6()));
        assert!(matches(&Filter::Ipv6, &v6frame));
        assert!(!matches(&Filter::Ipv6, &v4));
        assert!(!matches(&Filter::Ipv4, &v6frame));
        assert!(matches(&Filter::Ip6Proto(PROTO_TCP), &v6frame));
        assert!(!matches(&Filter::Ip6Proto(PROTO_UDP), &v6frame));
        assert!(!matches(&Filter::Ip6Proto(PROTO_TCP), &v4));
        assert!(!matches(&Filter::Proto(PROTO_TCP), &v6frame));
        // TCP behind a fragment header counts, as in tcpdump.
        let mut fragment = v6frame[..54].to_vec();
        fragment[IP6_NEXT_HEADER as usize] = NH_FRAGMENT as u8;
        fragment.extend([PROTO_TCP, 0, 0, 0, 0, 0, 0, 1]);
        fragment.extend(&v6frame[54..]);
        assert!(matches(&Filter::Ip6Proto(PROTO_TCP), &fragment));
    }

    #[test]
    fn the_ip6_connection_filter_takes_both_directions_and_nothing_else() {
        let filter = Filter::tcp6_connection(c6(), s6());
        assert!(matches(&filter, &tcp6(c6(), s6())));
        assert!(matches(&filter, &tcp6(s6(), c6())));
        let other_port = SocketAddrV6::new(v6(C6), 40001, 0, 0);
        assert!(!matches(&filter, &tcp6(other_port, s6())));
        // One bit off in the last word of the address.
        let other_host = SocketAddrV6::new(v6("2001:2::3"), 40000, 0, 0);
        assert!(!matches(&filter, &tcp6(other_host, s6())));
        // ... and in the first.
        let far = SocketAddrV6::new(v6("2001:3::2"), 40000, 0, 0);
        assert!(!matches(&filter, &tcp6(far, s6())));
        assert!(!matches(&filter, &tcp(CLIENT, SERVER)));
        assert!(!matches(&filter, &tcp6(c6(), s6())[..56]));
        assert!(matches(&Filter::Host6(Dir::Src, v6(C6)), &tcp6(c6(), s6())));
        assert!(!matches(
            &Filter::Host6(Dir::Dst, v6(C6)),
            &tcp6(c6(), s6())
        ));
        assert!(matches(&Filter::Port6(Dir::Dst, 8080), &tcp6(c6(), s6())));
        assert!(!matches(&Filter::Port6(Dir::Src, 8080), &tcp6(c6(), s6())));
    }

    #[test]
    fn mld_is_dropped_and_neighbor_discovery_kept() {
        let ns = crate::wire::neighbor_solicitation(MacAddr::zero(), v6(C6), v6(S6)).unwrap();
        let na =
            crate::wire::neighbor_advertisement(MacAddr::zero(), v6(S6), MacAddr::zero(), v6(C6))
                .unwrap();
        assert!(matches(&Filter::Icmp6Type(135), &ns));
        assert!(matches(&Filter::Icmp6Type(136), &na));
        assert!(!matches(&Filter::Icmp6Type(136), &ns));
        // MLD behind its Hop-by-Hop header.
        for kind in MLD_TYPES {
            assert!(matches(&Filter::Icmp6Type(kind), &mld_report(kind)));
            assert!(matches(&Filter::mld(), &mld_report(kind)));
        }
        assert!(!matches(&Filter::Icmp6Type(135), &mld_report(143)));
        // A longer Hop-by-Hop header (length 1: 16 bytes) moves ICMPv6.
        let mut long = mld_report(143);
        long[IP6_PAYLOAD as usize + 1] = 1;
        long.splice(62..62, [1, 6, 0, 0, 0, 0, 0, 0]);
        assert!(matches(&Filter::mld(), &long));
        // What the lab's tap keeps: everything but MLD.
        let keep = Filter::mld().not();
        let len = keep.compile().unwrap().len();
        assert!(len < 100, "{len} instructions");
        for frame in [&ns, &na, &tcp6(c6(), s6()), &tcp(CLIENT, SERVER)] {
            assert!(matches(&keep, frame));
        }
        assert!(!matches(&keep, &mld_report(143)));
        assert!(!matches(&keep, &mld_report(131)));
        // Truncated right after the Hop-by-Hop header: no type to read.
        assert!(!matches(&Filter::mld(), &mld_report(143)[..62]));
    }
}
