//! A streaming reader for pcap (micro- and nanosecond, both byte orders) and
//! pcapng (several sections and interfaces, each with its own link type and
//! timestamp resolution).
//!
//! Pure over `io::Read`. pcap records come from pcap-file 2.0.0's *raw*
//! records: its `PcapReader::next_packet` rejects every record whose
//! original length exceeds the snaplen, i.e. every frame of a
//! `tcpdump -s 60` capture (measured); we read `next_raw_packet` and check
//! the lengths here.
//!
//! pcapng is split into blocks here (type, length, body, length), because
//! pcap-file's pcapng reader is too strict and too loose for real files
//! (both measured): it fails "Invalid option" on an options list that ends
//! without `opt_endofopt` (the spec allows it; in the Section Header Block
//! the file never opens), and it ignores `if_tsresol`, treating raw
//! timestamps as nanoseconds. Here only interface descriptions and packet
//! blocks are decoded (`if_tsresol`, default microseconds, and
//! `if_tsoffset` honoured); an option or packet block that cannot be
//! decoded is counted and skipped ([`CaptureReader::warnings`]), never
//! dropped silently. Only a block whose length fields are broken stops the
//! reading: after it, nothing tells where the next block starts.
//!
//! Only one record or block is held at a time (at most
//! [`MAX_RECORD_LEN`]), so the file's size does not matter. Every error
//! names the file and the byte offset of the record or block that could not
//! be read.

use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::Path;

use pcap_file::pcap::PcapReader;
use pcap_file::{Endianness, PcapError, TsResolution};

/// The pcap file header's length (magic, versions, zone, sigfigs, snaplen,
/// link type).
pub const PCAP_HEADER_LEN: u64 = 24;
/// A pcap record header's length (ts_sec, ts_frac, incl_len, orig_len).
pub const PCAP_RECORD_HEADER_LEN: u64 = 16;
/// The name standard input goes by in reports and errors (as grep's).
pub const STDIN_NAME: &str = "(standard input)";
/// How long opening a FIFO may wait for its writer before the caller is
/// told ([`CaptureReader::open_waiting`]).
pub const FIFO_NOTICE_AFTER: std::time::Duration = std::time::Duration::from_millis(500);
/// pcap-file's read buffer: no record or block can be larger.
pub const MAX_RECORD_LEN: u64 = 8_000_000;

/// The four pcap magics (µs/ns, big/little endian, as read big-endian) and
/// the pcapng Section Header Block type.
const PCAP_MAGICS: [u32; 4] = [0xA1B2_C3D4, 0xD4C3_B2A1, 0xA1B2_3C4D, 0x4D3C_B2A1];
const PCAPNG_SHB_TYPE: u32 = 0x0A0D_0D0A;
/// Enough of the start to tell the format.
const PEEK_LEN: usize = 12;
/// A pcapng block: type, total length, body, total length again.
const BLOCK_HEAD_LEN: usize = 8;
const BLOCK_TRAILER_LEN: usize = 4;
/// The Section Header Block's byte-order magic, big-endian and little-endian.
const BYTE_ORDER_MAGIC_BE: [u8; 4] = [0x1A, 0x2B, 0x3C, 0x4D];
const BYTE_ORDER_MAGIC_LE: [u8; 4] = [0x4D, 0x3C, 0x2B, 0x1A];

/// Field offsets in a Section Header Block's body (pcapng §4.1).
mod shb {
    use std::ops::Range;
    pub const BYTE_ORDER: Range<usize> = 0..4;
    pub const MAJOR: Range<usize> = 4..6;
    pub const OPTIONS: usize = 16;
}

/// Field offsets in an Interface Description Block's body (pcapng §4.2),
/// and the options read from it.
mod idb {
    use std::ops::Range;
    pub const LINK_TYPE: Range<usize> = 0..2;
    pub const SNAPLEN: Range<usize> = 4..8;
    pub const OPTIONS: usize = 8;
    pub const OPT_TSRESOL: u16 = 9;
    pub const OPT_TSOFFSET: u16 = 14;
}

/// The pcapng reader's buffer (a block may be larger: it is then read
/// straight into the block).
const PCAPNG_BUFFER: usize = 1 << 16;
/// The end of an options list (it may also just end with its block).
const OPT_ENDOFOPT: u16 = 0;

/// pcapng block types this reader decodes itself.
mod block {
    pub const SECTION_HEADER: u32 = 0x0A0D_0D0A;
    pub const INTERFACE_DESCRIPTION: u32 = 0x0000_0001;
    pub const PACKET: u32 = 0x0000_0002;
    pub const SIMPLE_PACKET: u32 = 0x0000_0003;
    pub const ENHANCED_PACKET: u32 = 0x0000_0006;
}

/// Field offsets in an Enhanced Packet Block's body (pcapng §4.3).
mod epb {
    use std::ops::Range;
    pub const INTERFACE_ID: Range<usize> = 0..4;
    pub const TIMESTAMP_HIGH: Range<usize> = 4..8;
    pub const TIMESTAMP_LOW: Range<usize> = 8..12;
    pub const CAPTURED_LEN: Range<usize> = 12..16;
    pub const ORIGINAL_LEN: Range<usize> = 16..20;
    pub const DATA: usize = ORIGINAL_LEN.end;
}

/// Field offsets in the obsolete Packet Block's body (pcapng appendix A).
mod pb {
    use std::ops::Range;
    pub const INTERFACE_ID: Range<usize> = 0..2;
    pub const TIMESTAMP_HIGH: Range<usize> = 4..8;
    pub const TIMESTAMP_LOW: Range<usize> = 8..12;
    pub const CAPTURED_LEN: Range<usize> = 12..16;
    pub const ORIGINAL_LEN: Range<usize> = 16..20;
    pub const DATA: usize = ORIGINAL_LEN.end;
}

/// Field offsets in a Simple Packet Block's body (pcapng §4.4).
mod spb {
    use std::ops::Range;
    pub const ORIGINAL_LEN: Range<usize> = 0..4;
    pub const DATA: usize = ORIGINAL_LEN.end;
}

/// Why a capture could not be read (or not read to its end).
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The file could not be opened or read at all.
    #[error("{path}: cannot open")]
    Open {
        path: String,
        #[source]
        source: io::Error,
    },
    /// `-` was given but standard input is a terminal.
    #[error("{path}: is a terminal; pipe a capture in (tcpdump -U -w - … | synack inspect -)")]
    Terminal { path: String },
    /// The path names a directory.
    #[error("{path}: is a directory, not a capture file")]
    Directory { path: String },
    /// Zero bytes.
    #[error("{path}: empty file (0 bytes), not a capture")]
    Empty { path: String },
    /// The first bytes are no pcap or pcapng magic. The message gives the
    /// magic number read (hex), never the file's bytes as text: a text file
    /// must not be echoed to the terminal.
    #[error(
        "{path}: byte 0: not a pcap or pcapng file ({magic}; expected a pcap magic \
         0xa1b2c3d4 or 0xa1b23c4d in either byte order, or pcapng's 0x0a0d0d0a)"
    )]
    NotCapture { path: String, magic: String },
    /// The file header (pcap) or first section header (pcapng) is cut or
    /// invalid.
    #[error("{path}: byte 0: bad or truncated file header: {reason}")]
    BadHeader { path: String, reason: String },
    /// A record or block is cut short by the end of the file.
    #[error("{path}: byte {offset}: {what} is cut short{detail}; what came before it was read")]
    Cut {
        path: String,
        offset: u64,
        what: &'static str,
        detail: String,
    },
    /// A record or block is malformed (reading stops there).
    #[error("{path}: byte {offset}: unreadable {what}: {reason}; what came before it was read")]
    Corrupt {
        path: String,
        offset: u64,
        what: &'static str,
        reason: String,
    },
}

impl CaptureError {
    /// Whether nothing could be read (exit status 2) rather than the file
    /// being cut or damaged after a readable start (exit status 1).
    pub fn is_unreadable_file(&self) -> bool {
        matches!(
            self,
            CaptureError::Open { .. }
                | CaptureError::Terminal { .. }
                | CaptureError::Directory { .. }
                | CaptureError::Empty { .. }
                | CaptureError::NotCapture { .. }
                | CaptureError::BadHeader { .. }
        )
    }
}

/// The file format, as its magic says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap { nanoseconds: bool, big_endian: bool },
    PcapNg,
}

/// One captured frame, borrowed from the reader's buffer.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// Where the record (pcap) or block (pcapng) starts in the file.
    pub offset: u64,
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// The LINKTYPE_* of the frame's interface.
    pub link_type: u32,
    /// The captured bytes (maybe fewer than `orig_len`: snaplen).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub orig_len: u32,
}

/// What one step of the reader produced.
#[derive(Debug)]
pub enum Event<'a> {
    /// A frame.
    Packet(Record<'a>),
    /// A block without a frame (interface, statistics, comments, …).
    Other,
}

/// What a pcapng interface says about its frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Interface {
    link_type: u32,
    snaplen: u32,
    /// `if_tsresol`: the timestamp unit.
    resolution: Resolution,
    /// `if_tsoffset`, seconds.
    offset_s: u64,
}

/// A pcapng timestamp unit: 10^-n or 2^-n seconds (`if_tsresol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resolution {
    Decimal(u8),
    Binary(u8),
}

impl Interface {
    /// Stands for an interface description too short to read: its frames
    /// are counted under a link type no one uses.
    const UNREADABLE: Interface = Interface {
        link_type: u32::MAX,
        snaplen: 0,
        resolution: Resolution::DEFAULT,
        offset_s: 0,
    };
}

impl Resolution {
    /// The default when `if_tsresol` is absent: microseconds.
    const DEFAULT: Resolution = Resolution::Decimal(6);

    /// `if_tsresol`'s encoding: the high bit picks base 2, the rest is n.
    fn from_option(value: u8) -> Resolution {
        if value & 0x80 != 0 {
            Resolution::Binary(value & 0x7f)
        } else {
            Resolution::Decimal(value)
        }
    }

    /// Converts a raw timestamp to nanoseconds (saturating).
    fn to_ns(self, raw: u64) -> u64 {
        let ns = match self {
            Resolution::Decimal(n) if n <= 9 => u128::from(raw) * 10u128.pow(u32::from(9 - n)),
            Resolution::Decimal(n) => u128::from(raw) / 10u128.pow(u32::from(n.min(38)) - 9),
            Resolution::Binary(n) => (u128::from(raw) * 1_000_000_000) >> u32::from(n.min(127)),
        };
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}

enum Inner<R: Read> {
    Pcap {
        reader: PcapReader<Chunked<R>>,
        link_type: u32,
        /// Bytes of frame check sequence at the end of every frame.
        fcs_len: u32,
        nanoseconds: bool,
    },
    PcapNg(PcapNg<R>),
}

/// Reads at most [`READ_CHUNK`] bytes at a time. pcap-file reads into an
/// 8 MB buffer, as much as the source gives: from a file, 8 MB that are out
/// of the CPU caches again by the time the records are decoded. A smaller
/// read keeps the bytes the kernel just copied in cache for the checksum
/// (a third of `inspect`'s time on a gigabyte capture went to the reads).
struct Chunked<R>(R);

/// What [`Chunked`] reads at a time: a few times the largest frame, well
/// inside a core's L2 cache.
const READ_CHUNK: usize = 256 * 1024;

impl<R: Read> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(READ_CHUNK);
        self.0.read(&mut buf[..n])
    }
}

/// The pcapng block splitter's state.
struct PcapNg<R: Read> {
    /// Buffered: a block takes two or three reads.
    source: io::BufReader<R>,
    /// The current block, whole (head, body, trailer).
    block: Vec<u8>,
    /// The interfaces of the current section, in order.
    interfaces: Vec<Interface>,
    big_endian: bool,
}

/// Why a pcapng block could not be split off.
enum BlockFault {
    /// The input ended `n` bytes into the block.
    Eof(u64),
    Io(io::Error),
    /// Its length fields or byte-order magic make no sense.
    Bad(String),
}

impl<R: Read> PcapNg<R> {
    /// Reads the next block whole; its type, or `None` at the clean end.
    fn read_block(&mut self) -> Result<Option<u32>, BlockFault> {
        self.block.clear();
        self.block.resize(BLOCK_HEAD_LEN, 0);
        match read_full(&mut self.source, &mut self.block)? {
            0 => return Ok(None),
            n if n < BLOCK_HEAD_LEN => return Err(BlockFault::Eof(n as u64)),
            _ => {}
        }
        // The section header's type reads the same in both byte orders;
        // its byte-order magic says how to read its length and the rest
        // of the section.
        let is_section = self.block[0..4] == PCAPNG_SHB_TYPE.to_be_bytes();
        let mut big_endian = self.big_endian;
        if is_section {
            self.block.resize(BLOCK_HEAD_LEN + 4, 0);
            let n = read_full(&mut self.source, &mut self.block[BLOCK_HEAD_LEN..])?;
            if n < 4 {
                return Err(BlockFault::Eof((BLOCK_HEAD_LEN + n) as u64));
            }
            let order = &self.block[BLOCK_HEAD_LEN..][shb::BYTE_ORDER];
            big_endian = match <[u8; 4]>::try_from(order) {
                Ok(BYTE_ORDER_MAGIC_BE) => true,
                Ok(BYTE_ORDER_MAGIC_LE) => false,
                _ => {
                    return Err(BlockFault::Bad(
                        "section header without the byte-order magic 0x1a2b3c4d".into(),
                    ))
                }
            };
        }
        let kind = read_uint(&self.block[0..4], big_endian) as u32;
        let len = read_uint(&self.block[4..8], big_endian);
        let least = if is_section {
            BLOCK_HEAD_LEN + shb::OPTIONS + BLOCK_TRAILER_LEN
        } else {
            BLOCK_HEAD_LEN + BLOCK_TRAILER_LEN
        };
        if len < least as u64 || len % 4 != 0 || len > MAX_RECORD_LEN {
            return Err(BlockFault::Bad(format!(
                "block length {len} (a multiple of 4, {least} to {MAX_RECORD_LEN})"
            )));
        }
        let len = len as usize;
        let had = self.block.len();
        self.block.resize(len, 0);
        let n = read_full(&mut self.source, &mut self.block[had..])?;
        if had + n < len {
            return Err(BlockFault::Eof((had + n) as u64));
        }
        let trailer = read_uint(&self.block[len - BLOCK_TRAILER_LEN..], big_endian);
        if trailer != len as u64 {
            return Err(BlockFault::Bad(format!(
                "block length {len} at its start but {trailer} at its end"
            )));
        }
        if is_section {
            if read_uint(&self.body()[shb::MAJOR], big_endian) != 1 {
                return Err(BlockFault::Bad(format!(
                    "section of pcapng version {}, not 1",
                    read_uint(&self.body()[shb::MAJOR], big_endian)
                )));
            }
            self.big_endian = big_endian;
            self.interfaces.clear();
        }
        Ok(Some(kind))
    }

    /// The current block's body (between its length fields).
    fn body(&self) -> &[u8] {
        &self.block[BLOCK_HEAD_LEN..self.block.len() - BLOCK_TRAILER_LEN]
    }

    /// Decodes the block that `read_block` just read (of type `kind`, at
    /// byte `start` of the file); what it cannot decode is a [`Skip`].
    fn decode(&mut self, kind: u32, start: u64) -> Result<Event<'_>, Skip> {
        match kind {
            block::SECTION_HEADER => {
                if options(&self.body()[shb::OPTIONS..], self.big_endian).is_err() {
                    return Err(Skip::new(
                        "pcapng section option list(s)",
                        "an option runs past its block".into(),
                    ));
                }
                Ok(Event::Other)
            }
            block::INTERFACE_DESCRIPTION => self.interface_description(),
            block::ENHANCED_PACKET | block::PACKET => self.packet(kind, start),
            block::SIMPLE_PACKET => self.simple_packet(start),
            _ => Ok(Event::Other),
        }
    }

    /// An interface description block: one more interface of the section.
    fn interface_description(&mut self) -> Result<Event<'static>, Skip> {
        let be = self.big_endian;
        let body = &self.block[BLOCK_HEAD_LEN..self.block.len() - BLOCK_TRAILER_LEN];
        let Some(head) = body.get(..idb::OPTIONS) else {
            // Keep the numbering of the interfaces after it.
            let len = body.len();
            self.interfaces.push(Interface::UNREADABLE);
            return Err(Skip::new(
                "pcapng interface description(s)",
                format!("a body of {len} bytes; its frames are not decoded"),
            ));
        };
        let mut iface = Interface {
            link_type: read_uint(&head[idb::LINK_TYPE], be) as u32,
            snaplen: read_uint(&head[idb::SNAPLEN], be) as u32,
            resolution: Resolution::DEFAULT,
            offset_s: 0,
        };
        let (found, cut) = match options(&body[idb::OPTIONS..], be) {
            Ok(found) => (found, false),
            Err(found) => (found, true),
        };
        for (code, value) in found {
            match (code, value.len()) {
                (idb::OPT_TSRESOL, 1..) => {
                    iface.resolution = Resolution::from_option(value[0]);
                }
                (idb::OPT_TSOFFSET, 8) => iface.offset_s = read_uint(value, be),
                _ => {}
            }
        }
        self.interfaces.push(iface);
        if cut {
            return Err(Skip::new(
                "pcapng interface option list(s)",
                "an option runs past its block; the options before it were used".into(),
            ));
        }
        Ok(Event::Other)
    }

    /// An enhanced packet block, or the obsolete packet block (`kind`).
    fn packet(&self, kind: u32, start: u64) -> Result<Event<'_>, Skip> {
        let be = self.big_endian;
        let (id_field, hi, lo, cap, orig, data_at) = if kind == block::ENHANCED_PACKET {
            (
                epb::INTERFACE_ID,
                epb::TIMESTAMP_HIGH,
                epb::TIMESTAMP_LOW,
                epb::CAPTURED_LEN,
                epb::ORIGINAL_LEN,
                epb::DATA,
            )
        } else {
            (
                pb::INTERFACE_ID,
                pb::TIMESTAMP_HIGH,
                pb::TIMESTAMP_LOW,
                pb::CAPTURED_LEN,
                pb::ORIGINAL_LEN,
                pb::DATA,
            )
        };
        let body = self.body();
        if body.len() < data_at {
            return Err(Skip::new(
                "pcapng packet block(s) too short",
                format!("a body of {} bytes", body.len()),
            ));
        }
        let id = read_uint(&body[id_field], be);
        let Some(iface) = usize::try_from(id)
            .ok()
            .and_then(|i| self.interfaces.get(i).copied())
        else {
            return Err(Skip::new(
                "pcapng packet block(s) of an undescribed interface",
                format!("interface {id}"),
            ));
        };
        let cap_len = read_uint(&body[cap], be);
        let data = usize::try_from(cap_len)
            .ok()
            .and_then(|n| body.get(data_at..data_at.checked_add(n)?));
        let Some(data) = data else {
            return Err(Skip::new(
                "pcapng packet block(s) with a captured length past the block",
                format!("captured length {cap_len}, body {} bytes", body.len()),
            ));
        };
        let raw_ts = (read_uint(&body[hi], be) << 32) | read_uint(&body[lo], be);
        let ts_ns = iface
            .resolution
            .to_ns(raw_ts)
            .saturating_add(iface.offset_s.saturating_mul(1_000_000_000));
        Ok(Event::Packet(Record {
            offset: start,
            ts_ns,
            link_type: iface.link_type,
            data,
            orig_len: u32::try_from(read_uint(&body[orig], be)).unwrap_or(u32::MAX),
        }))
    }

    /// A simple packet block: a frame of the section's first interface,
    /// without a timestamp.
    fn simple_packet(&self, start: u64) -> Result<Event<'_>, Skip> {
        let body = self.body();
        let Some(iface) = self.interfaces.first().copied() else {
            return Err(Skip::new(
                "pcapng simple packet block(s) before any interface",
                String::new(),
            ));
        };
        if body.len() < spb::DATA {
            return Err(Skip::new(
                "pcapng simple packet block(s) too short",
                format!("a body of {} bytes", body.len()),
            ));
        }
        let orig_len = read_uint(&body[spb::ORIGINAL_LEN], self.big_endian);
        let mut cap = body.len() - spb::DATA;
        if iface.snaplen != 0 {
            cap = cap.min(iface.snaplen as usize);
        }
        cap = cap.min(usize::try_from(orig_len).unwrap_or(usize::MAX));
        Ok(Event::Packet(Record {
            offset: start,
            ts_ns: 0,
            link_type: iface.link_type,
            data: &body[spb::DATA..spb::DATA + cap],
            orig_len: u32::try_from(orig_len).unwrap_or(u32::MAX),
        }))
    }
}

/// A pcapng block read past: the kind of problem (one [`Note`] each) and
/// what the first one looked like.
struct Skip {
    what: &'static str,
    detail: String,
}

impl Skip {
    fn new(what: &'static str, detail: String) -> Skip {
        Skip { what, detail }
    }
}

impl BlockFault {
    /// The error for a block at byte `start` of the file `path`.
    fn into_error(self, path: &str, start: u64) -> CaptureError {
        let path = path.to_owned();
        let what = "pcapng block";
        match self {
            BlockFault::Eof(n) => CaptureError::Cut {
                path,
                offset: start,
                what,
                detail: format!(" (the file ends {n} bytes into it)"),
            },
            BlockFault::Io(e) => CaptureError::Corrupt {
                path,
                offset: start,
                what,
                reason: e.to_string(),
            },
            BlockFault::Bad(reason) => CaptureError::Corrupt {
                path,
                offset: start,
                what,
                reason,
            },
        }
    }
}

/// Reads until `buf` is full or the input ends; the bytes read.
fn read_full(source: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut at = 0;
    while at < buf.len() {
        match source.read(&mut buf[at..]) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(at)
}

impl From<io::Error> for BlockFault {
    fn from(e: io::Error) -> BlockFault {
        BlockFault::Io(e)
    }
}

/// A block's options, `(code, value)` in order.
type OptionList<'a> = Vec<(u16, &'a [u8])>;

/// The options of a block: `(code, value)` up to `opt_endofopt` or the
/// end of the body; `Err` with the ones read so far when an option runs
/// past the body.
fn options(mut rest: &[u8], big_endian: bool) -> Result<OptionList<'_>, OptionList<'_>> {
    let mut found = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(found);
        }
        let code = read_uint(&rest[0..2], big_endian) as u16;
        let len = read_uint(&rest[2..4], big_endian) as usize;
        if code == OPT_ENDOFOPT {
            break;
        }
        let Some(value) = rest.get(4..4 + len) else {
            return Err(found);
        };
        found.push((code, value));
        let padded = (4 + len + 3) & !3;
        rest = rest.get(padded..).unwrap_or(&[]);
    }
    Ok(found)
}

/// A problem the reader read past, counted per kind.
#[derive(Debug)]
struct Note {
    what: &'static str,
    count: u64,
    first_offset: u64,
    detail: String,
}

/// The source after its magic was peeked: the peeked bytes, then the rest.
type Source<R> = io::Chain<Cursor<Vec<u8>>, R>;

/// A streaming capture reader over any `io::Read`.
pub struct CaptureReader<R: Read> {
    path: String,
    inner: Inner<Source<R>>,
    format: Format,
    /// Byte offset of the next record or block.
    offset: u64,
    /// The file's length, when known (to tell a cut record from an
    /// oversized one).
    len: Option<u64>,
    /// Set after an error: the reader is done.
    failed: bool,
    /// What was read past (pcapng).
    notes: Vec<Note>,
}

impl CaptureReader<File> {
    /// Opens a capture file.
    ///
    /// # Errors
    /// [`CaptureError::Open`], `Directory`, `Empty`, `NotCapture` or
    /// `BadHeader`: the file cannot be read as a capture at all.
    pub fn open(path: &Path) -> Result<CaptureReader<File>, CaptureError> {
        CaptureReader::open_waiting(path, &mut || {})
    }

    /// Reads standard input as a stream (`synack inspect -`), named
    /// [`STDIN_NAME`] in reports and errors.
    ///
    /// # Errors
    /// [`CaptureError::Terminal`] when standard input is a terminal (a
    /// capture must be piped in), else as [`CaptureReader::new`].
    pub fn stdin() -> Result<CaptureReader<File>, CaptureError> {
        use std::io::IsTerminal;
        use std::os::fd::AsFd;

        let name = STDIN_NAME.to_string();
        let stdin = io::stdin();
        if stdin.is_terminal() {
            return Err(CaptureError::Terminal { path: name });
        }
        let fd = stdin
            .as_fd()
            .try_clone_to_owned()
            .map_err(|source| CaptureError::Open {
                path: name.clone(),
                source,
            })?;
        CaptureReader::new(name, File::from(fd), None)
    }

    /// Opens a capture file, and calls `on_wait` once if it is a FIFO
    /// whose open(2) is still waiting for a writer after
    /// [`FIFO_NOTICE_AFTER`].
    ///
    /// A FIFO (or `/dev/stdin` on a pipe) is read as a stream, like any
    /// file: `tcpdump -U -w fifo` and `mkfifo` pipelines work. Opening one
    /// blocks until a writer opens it; that wait is not bounded (a writer
    /// may come late), but it is no longer silent, and nothing else holds
    /// it up: the open runs on a helper thread, so Ctrl-C (SIGINT's
    /// default action) ends the process at once.
    ///
    /// # Errors
    /// As [`CaptureReader::open`].
    pub fn open_waiting(
        path: &Path,
        on_wait: &mut dyn FnMut(),
    ) -> Result<CaptureReader<File>, CaptureError> {
        use std::os::unix::fs::FileTypeExt;

        let name = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|source| CaptureError::Open {
            path: name.clone(),
            source,
        })?;
        if meta.is_dir() {
            return Err(CaptureError::Directory { path: name });
        }
        let opened = if meta.file_type().is_fifo() {
            open_fifo(path, on_wait)
        } else {
            File::open(path)
        };
        let file = opened.map_err(|source| CaptureError::Open {
            path: name.clone(),
            source,
        })?;
        let len = meta.is_file().then_some(meta.len());
        CaptureReader::new(name, file, len)
    }
}

impl<R: Read> CaptureReader<R> {
    /// Starts reading a capture from `source`; `name` appears in errors,
    /// `len` (the total size, when known) sharpens the message for a cut
    /// record.
    ///
    /// # Errors
    /// `Empty`, `NotCapture` or `BadHeader` (and `Open` for an I/O error
    /// on the first bytes).
    pub fn new(name: String, mut source: R, len: Option<u64>) -> Result<Self, CaptureError> {
        // Enough for the magic and, in pcapng, the first block's length and
        // byte-order magic.
        let mut magic = Vec::with_capacity(PEEK_LEN);
        (&mut source)
            .take(PEEK_LEN as u64)
            .read_to_end(&mut magic)
            .map_err(|source| CaptureError::Open {
                path: name.clone(),
                source,
            })?;
        if magic.is_empty() {
            return Err(CaptureError::Empty { path: name });
        }
        if magic.len() < 4 {
            return Err(CaptureError::NotCapture {
                path: name,
                magic: format!("only {} bytes, too short for a magic number", magic.len()),
            });
        }
        let word = u32::from_be_bytes([magic[0], magic[1], magic[2], magic[3]]);
        let chained = Cursor::new(magic).chain(source);
        let bad_header = |err: PcapError| CaptureError::BadHeader {
            path: name.clone(),
            reason: describe(&err),
        };
        let (inner, format, offset) = if PCAP_MAGICS.contains(&word) {
            let reader = PcapReader::new(Chunked(chained)).map_err(bad_header)?;
            let header = reader.header();
            let nanoseconds = header.ts_resolution == TsResolution::NanoSecond;
            let format = Format::Pcap {
                nanoseconds,
                big_endian: header.endianness == Endianness::Big,
            };
            let field = PcapLinkField(u32::from(header.datalink));
            let inner = Inner::Pcap {
                link_type: field.link_type(),
                fcs_len: field.fcs_len(),
                reader,
                nanoseconds,
            };
            (inner, format, PCAP_HEADER_LEN)
        } else if word == PCAPNG_SHB_TYPE {
            let mut ng = PcapNg {
                source: io::BufReader::with_capacity(PCAPNG_BUFFER, chained),
                block: Vec::new(),
                interfaces: Vec::new(),
                big_endian: false,
            };
            let reason = match ng.read_block() {
                Ok(Some(_)) => None,
                Ok(None) | Err(BlockFault::Eof(_)) => Some("the file ends inside it".to_string()),
                Err(BlockFault::Io(e)) => Some(e.to_string()),
                Err(BlockFault::Bad(why)) => Some(why),
            };
            if let Some(reason) = reason {
                return Err(CaptureError::BadHeader { path: name, reason });
            }
            let first_block_len = ng.block.len() as u64;
            (Inner::PcapNg(ng), Format::PcapNg, first_block_len)
        } else {
            return Err(CaptureError::NotCapture {
                path: name,
                magic: format!("magic 0x{word:08x}"),
            });
        };
        let reader = CaptureReader {
            path: name,
            inner,
            format,
            offset,
            len,
            failed: false,
            notes: Vec::new(),
        };
        Ok(reader)
    }

    /// The file's format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The name used in errors.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The byte offset of the next record or block.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// What was read past so far, one line per kind: pcapng options and
    /// packet blocks that could not be decoded (counted, skipped).
    pub fn warnings(&self) -> Vec<String> {
        self.notes
            .iter()
            .map(|n| {
                format!(
                    "{} {} read past, first at byte {}: {}",
                    n.count, n.what, n.first_offset, n.detail
                )
            })
            .collect()
    }

    /// Reads the next record or block. `None` at the clean end of the file;
    /// after an error, `None` forever.
    pub fn next_event(&mut self) -> Option<Result<Event<'_>, CaptureError>> {
        if self.failed {
            return None;
        }
        let start = self.offset;
        let path = &self.path;
        let len = self.len;
        let failed = &mut self.failed;
        let offset = &mut self.offset;
        let fail = |failed: &mut bool, what: &'static str, err: PcapError| {
            *failed = true;
            Some(Err(classify(path, start, len, what, err)))
        };
        match &mut self.inner {
            Inner::Pcap {
                reader,
                link_type,
                fcs_len,
                nanoseconds,
            } => {
                let raw = match reader.next_raw_packet()? {
                    Ok(raw) => raw,
                    Err(err) => return fail(failed, "packet record", err),
                };
                *offset += PCAP_RECORD_HEADER_LEN + u64::from(raw.incl_len);
                let frac_ns = if *nanoseconds {
                    u64::from(raw.ts_frac)
                } else {
                    u64::from(raw.ts_frac) * 1000
                };
                let data: &[u8] = match raw.data {
                    std::borrow::Cow::Borrowed(data) => data,
                    // pcap-file always borrows from its buffer; an owned
                    // copy cannot be returned without a buffer of ours.
                    std::borrow::Cow::Owned(_) => &[],
                };
                // The FCS is the last `fcs_len` bytes of the original frame:
                // drop what of it was captured.
                let orig_len = raw.orig_len.saturating_sub(*fcs_len);
                let data = &data[..data.len().min(orig_len as usize)];
                Some(Ok(Event::Packet(Record {
                    offset: start,
                    ts_ns: u64::from(raw.ts_sec) * 1_000_000_000 + frac_ns,
                    link_type: *link_type,
                    data,
                    orig_len,
                })))
            }
            Inner::PcapNg(ng) => {
                let kind = match ng.read_block() {
                    Ok(Some(kind)) => kind,
                    Ok(None) => return None,
                    Err(fault) => {
                        *failed = true;
                        return Some(Err(fault.into_error(path, start)));
                    }
                };
                *offset += ng.block.len() as u64;
                match ng.decode(kind, start) {
                    Ok(event) => Some(Ok(event)),
                    Err(Skip { what, detail }) => {
                        match self.notes.iter_mut().find(|n| n.what == what) {
                            Some(n) => n.count += 1,
                            None => self.notes.push(Note {
                                what,
                                count: 1,
                                first_offset: start,
                                detail,
                            }),
                        }
                        Some(Ok(Event::Other))
                    }
                }
            }
        }
    }
}

/// Opens a FIFO for reading: open(2) blocks until a writer opens it, so it
/// runs on a helper thread and `on_wait` is called if it has not returned
/// after [`FIFO_NOTICE_AFTER`]. The thread is left blocked only if the
/// process ends first (Ctrl-C).
fn open_fifo(path: &Path, on_wait: &mut dyn FnMut()) -> io::Result<File> {
    use std::sync::mpsc::{self, RecvTimeoutError};

    let (tx, rx) = mpsc::channel();
    let owned = path.to_path_buf();
    std::thread::Builder::new()
        .name("fifo-open".into())
        .spawn(move || {
            // The receiver may be gone (the caller gave up): nothing to do.
            let _ = tx.send(File::open(owned));
        })?;
    let gone = || io::Error::other("the thread opening the FIFO ended without an answer");
    match rx.recv_timeout(FIFO_NOTICE_AFTER) {
        Ok(opened) => opened,
        Err(RecvTimeoutError::Timeout) => {
            on_wait();
            rx.recv().unwrap_or_else(|_| Err(gone()))
        }
        Err(RecvTimeoutError::Disconnected) => Err(gone()),
    }
}

/// A pcap file header's link-type field: the LINKTYPE_* in the low 16 bits,
/// and above it libpcap's `LT_FCS_*` flags (`pcap/dlt.h`, and the pcap
/// format's "FCS len" and "F" fields): bit 26 says an FCS ends every frame,
/// bits 28–31 give its length in 16-bit words. tcpdump and tshark read it
/// so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PcapLinkField(u32);

impl PcapLinkField {
    const LINK_TYPE: u32 = 0x0000_FFFF;
    const FCS_PRESENT: u32 = 0x0400_0000;
    const FCS_WORDS: u32 = 0xF000_0000;
    const FCS_WORDS_SHIFT: u32 = 28;

    fn link_type(self) -> u32 {
        self.0 & Self::LINK_TYPE
    }

    /// The FCS length in bytes (0: no FCS, even when a length is given
    /// without the "present" bit).
    fn fcs_len(self) -> u32 {
        if self.0 & Self::FCS_PRESENT == 0 {
            return 0;
        }
        ((self.0 & Self::FCS_WORDS) >> Self::FCS_WORDS_SHIFT) * 2
    }
}

/// A big- or little-endian unsigned integer of 2 or 4 bytes.
fn read_uint(bytes: &[u8], big_endian: bool) -> u64 {
    let mut value = 0u64;
    if big_endian {
        for b in bytes {
            value = (value << 8) | u64::from(*b);
        }
    } else {
        for b in bytes.iter().rev() {
            value = (value << 8) | u64::from(*b);
        }
    }
    value
}

/// pcap-file's errors, in words.
fn describe(err: &PcapError) -> String {
    match err {
        PcapError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            "the file ends inside it".to_string()
        }
        PcapError::IoError(e) => e.to_string(),
        PcapError::InvalidField(what) => (*what).to_string(),
        other => other.to_string(),
    }
}

/// Turns a pcap-file error at `offset` into a cut or corrupt record.
fn classify(
    path: &str,
    offset: u64,
    len: Option<u64>,
    what: &'static str,
    err: PcapError,
) -> CaptureError {
    match err {
        PcapError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            let detail = match len {
                Some(len) if len.saturating_sub(offset) < MAX_RECORD_LEN => format!(
                    " (the file ends {} bytes into it)",
                    len.saturating_sub(offset)
                ),
                Some(_) => format!(" or longer than {MAX_RECORD_LEN} bytes"),
                None => String::new(),
            };
            CaptureError::Cut {
                path: path.to_string(),
                offset,
                what,
                detail,
            }
        }
        other => CaptureError::Corrupt {
            path: path.to_string(),
            offset,
            what,
            reason: describe(&other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A little-endian µs pcap with one 4-byte record.
    fn tiny_pcap() -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&0xA1B2_C3D4u32.to_le_bytes());
        v.extend_from_slice(&2u16.to_le_bytes());
        v.extend_from_slice(&4u16.to_le_bytes());
        v.extend_from_slice(&0i32.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        v.extend_from_slice(&60u32.to_le_bytes()); // snaplen
        v.extend_from_slice(&101u32.to_le_bytes()); // RAW
        v.extend_from_slice(&7u32.to_le_bytes()); // ts_sec
        v.extend_from_slice(&5u32.to_le_bytes()); // ts_usec
        v.extend_from_slice(&4u32.to_le_bytes()); // incl_len
        v.extend_from_slice(&1500u32.to_le_bytes()); // orig_len > snaplen
        v.extend_from_slice(&[0x45, 0, 0, 40]);
        v
    }

    fn reader(bytes: Vec<u8>) -> Result<CaptureReader<Cursor<Vec<u8>>>, CaptureError> {
        let len = bytes.len() as u64;
        CaptureReader::new("t.pcap".into(), Cursor::new(bytes), Some(len))
    }

    #[test]
    fn reads_a_record_longer_than_the_snaplen() {
        let mut r = reader(tiny_pcap()).expect("header");
        assert_eq!(
            r.format(),
            Format::Pcap {
                nanoseconds: false,
                big_endian: false
            }
        );
        let Some(Ok(Event::Packet(rec))) = r.next_event() else {
            panic!("expected a packet");
        };
        assert_eq!(rec.offset, 24);
        assert_eq!(rec.ts_ns, 7_000_005_000);
        assert_eq!(rec.link_type, 101);
        assert_eq!(rec.orig_len, 1500);
        assert_eq!(rec.data, &[0x45, 0, 0, 40]);
        assert!(r.next_event().is_none());
        assert_eq!(r.offset(), 44);
    }

    #[test]
    fn a_cut_record_names_its_offset() {
        let mut bytes = tiny_pcap();
        bytes.truncate(bytes.len() - 2);
        let mut r = reader(bytes).expect("header");
        let Some(Err(err)) = r.next_event() else {
            panic!("expected an error");
        };
        assert!(!err.is_unreadable_file());
        let text = err.to_string();
        assert!(text.contains("byte 24"), "{text}");
        assert!(text.contains("cut short"), "{text}");
        assert!(r.next_event().is_none());
    }

    #[test]
    fn bad_starts_are_told_apart() {
        assert!(matches!(reader(vec![]), Err(CaptureError::Empty { .. })));
        let text = reader(b"hello world".to_vec()).err().expect("an error");
        assert!(matches!(text, CaptureError::NotCapture { .. }), "{text}");
        let message = text.to_string();
        assert!(message.contains("magic 0x68656c6c"), "{message}");
        assert!(!message.contains("hell"), "echoes the file: {message}");
        assert!(matches!(
            reader(vec![0xd4, 0xc3]),
            Err(CaptureError::NotCapture { .. })
        ));
        let mut header = tiny_pcap();
        header.truncate(10);
        let err = reader(header).err().expect("an error");
        assert!(matches!(err, CaptureError::BadHeader { .. }), "{err}");
        assert!(err.is_unreadable_file());
    }

    #[test]
    fn the_link_type_field_is_masked_and_an_fcs_stripped_only_when_flagged() {
        assert_eq!(PcapLinkField(0x3000_0001).link_type(), 1);
        assert_eq!(PcapLinkField(0x3000_0001).fcs_len(), 0);
        assert_eq!(PcapLinkField(0x3000_00E5).link_type(), 229);
        assert_eq!(PcapLinkField(0x2400_0001).fcs_len(), 4);
        assert_eq!(PcapLinkField(0x1400_0001).fcs_len(), 2);
        assert_eq!(PcapLinkField(0x0400_0001).fcs_len(), 0);
        // RAW with a 4-byte FCS: the record's last 4 bytes go.
        let mut bytes = tiny_pcap();
        bytes[20..24].copy_from_slice(&0x2400_0065u32.to_le_bytes());
        bytes[32..36].copy_from_slice(&8u32.to_le_bytes()); // incl_len
        bytes[36..40].copy_from_slice(&8u32.to_le_bytes()); // orig_len
        bytes.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let mut r = reader(bytes).expect("header");
        let Some(Ok(Event::Packet(rec))) = r.next_event() else {
            panic!("expected a packet");
        };
        assert_eq!(rec.link_type, 101);
        assert_eq!(rec.data, &[0x45, 0, 0, 40]);
        assert_eq!(rec.orig_len, 4);
    }

    /// A little-endian pcapng block.
    fn ng_block(kind: u32, body: &[u8]) -> Vec<u8> {
        let len = (12 + body.len()) as u32;
        let mut v = kind.to_le_bytes().to_vec();
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(body);
        v.extend_from_slice(&len.to_le_bytes());
        v
    }

    /// An Enhanced Packet Block of interface `id` with 4 bytes of data.
    fn epb(id: u32, ts: u32) -> Vec<u8> {
        let mut body = id.to_le_bytes().to_vec();
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&ts.to_le_bytes());
        body.extend_from_slice(&4u32.to_le_bytes());
        body.extend_from_slice(&4u32.to_le_bytes());
        body.extend_from_slice(&[0x45, 0, 0, 40]);
        ng_block(block::ENHANCED_PACKET, &body)
    }

    /// A section whose header options end without `opt_endofopt`, an
    /// interface whose `if_tsresol` (ms) comes before an option running
    /// past its block, an unknown block, a packet of an undescribed
    /// interface, a packet too short, then a good packet: the good ones are
    /// read, the rest counted.
    #[test]
    fn pcapng_reads_past_what_it_cannot_decode() {
        let mut shb = BYTE_ORDER_MAGIC_LE.to_vec();
        shb.extend_from_slice(&1u16.to_le_bytes());
        shb.extend_from_slice(&0u16.to_le_bytes());
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        shb.extend_from_slice(&[4, 0, 3, 0, b'a', b'p', b'p', 0]); // shb_userappl, no end
        let mut idb = 101u16.to_le_bytes().to_vec(); // RAW
        idb.extend_from_slice(&[0, 0]);
        idb.extend_from_slice(&0u32.to_le_bytes());
        idb.extend_from_slice(&[9, 0, 1, 0, 3, 0, 0, 0]); // if_tsresol 10^-3
        idb.extend_from_slice(&[2, 0, 200, 0, b'x', b'y', 0, 0]); // if_name claiming 200 bytes
        let mut bytes = ng_block(block::SECTION_HEADER, &shb);
        bytes.extend(ng_block(block::INTERFACE_DESCRIPTION, &idb));
        bytes.extend(ng_block(0x0000_0BAD, &[1, 2, 3, 4]));
        bytes.extend(epb(7, 1));
        bytes.extend(ng_block(block::ENHANCED_PACKET, &[0; 8]));
        bytes.extend(epb(0, 2500));
        let mut r = reader(bytes).expect("header");
        let mut packets = Vec::new();
        while let Some(event) = r.next_event() {
            if let Event::Packet(rec) = event.expect("no error") {
                packets.push((rec.link_type, rec.ts_ns, rec.data.to_vec()));
            }
        }
        assert_eq!(packets, [(101, 2_500_000_000, vec![0x45, 0, 0, 40])]);
        let warnings = r.warnings();
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[0].contains("interface option"), "{warnings:?}");
        assert!(
            warnings[1].contains("undescribed interface"),
            "{warnings:?}"
        );
        assert!(warnings[2].contains("too short"), "{warnings:?}");
    }

    #[test]
    fn pcapng_with_broken_block_lengths_stops_there() {
        let mut shb = BYTE_ORDER_MAGIC_LE.to_vec();
        shb.extend_from_slice(&[1, 0, 0, 0]);
        shb.extend_from_slice(&(-1i64).to_le_bytes());
        let mut bytes = ng_block(block::SECTION_HEADER, &shb);
        let mut bad = epb(0, 1);
        bad[4] = 13; // not a multiple of 4
        bytes.extend(bad);
        let mut r = reader(bytes).expect("header");
        let Some(Err(err)) = r.next_event() else {
            panic!("expected an error");
        };
        assert!(err.to_string().contains("byte 28"), "{err}");
        assert!(r.next_event().is_none());
        let mut wrong = ng_block(block::SECTION_HEADER, &shb);
        wrong[8..12].copy_from_slice(&[1, 2, 3, 4]);
        let err = reader(wrong).err().expect("an error");
        assert!(matches!(err, CaptureError::BadHeader { .. }), "{err}");
    }

    #[test]
    fn pcapng_resolutions_convert_to_nanoseconds() {
        assert_eq!(Resolution::DEFAULT.to_ns(1_500_000), 1_500_000_000);
        assert_eq!(Resolution::from_option(9).to_ns(42), 42);
        assert_eq!(Resolution::from_option(3).to_ns(2), 2_000_000);
        assert_eq!(Resolution::from_option(12).to_ns(5_000), 5);
        assert_eq!(
            Resolution::from_option(0x80 | 10).to_ns(1024),
            1_000_000_000
        );
        assert_eq!(Resolution::from_option(19).to_ns(u64::MAX), 1_844_674_407);
    }
}
