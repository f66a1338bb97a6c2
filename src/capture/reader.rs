//! A streaming reader for pcap (micro- and nanosecond, both byte orders) and
//! pcapng (several sections and interfaces, each with its own link type and
//! timestamp resolution).
//!
//! Pure over `io::Read`. Built on pcap-file 2.0.0's *raw* records, because
//! two of its conveniences are wrong for real files (both measured):
//! - `PcapReader::next_packet` rejects every record whose original length
//!   exceeds the snaplen, i.e. every frame of a `tcpdump -s 60` capture; we
//!   read `next_raw_packet` and check the lengths here.
//! - its pcapng packets ignore the interface's `if_tsresol` and treat raw
//!   timestamps as nanoseconds; we decode Enhanced Packet Blocks ourselves
//!   and honour `if_tsresol` (default: microseconds) and `if_tsoffset`.
//!
//! Only one record is held at a time (pcap-file's 8 MB read buffer), so the
//! file's size does not matter. Every error names the file and the byte
//! offset of the record or block that could not be read.

use std::fs::File;
use std::io::{self, Cursor, Read};
use std::path::Path;

use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::PcapNgReader;
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
/// A Section Header Block starts with its type, its length and the
/// byte-order magic that says how to read that length.
const SHB_PREFIX_LEN: usize = 12;
const SHB_LEN: std::ops::Range<usize> = 4..8;
const SHB_BYTE_ORDER: std::ops::Range<usize> = 8..12;
const BYTE_ORDER_MAGIC_BE: [u8; 4] = [0x1A, 0x2B, 0x3C, 0x4D];

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
        reader: PcapReader<R>,
        link_type: u32,
        /// Bytes of frame check sequence at the end of every frame.
        fcs_len: u32,
        nanoseconds: bool,
    },
    PcapNg {
        reader: PcapNgReader<R>,
        interfaces: Vec<Interface>,
        big_endian: bool,
        /// The last block changed the section or its interfaces: re-read
        /// them from pcap-file's parser before the next block.
        stale: bool,
    },
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
        let mut magic = Vec::with_capacity(SHB_PREFIX_LEN);
        (&mut source)
            .take(SHB_PREFIX_LEN as u64)
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
        let first_block_len = shb_len(&magic);
        let chained = Cursor::new(magic).chain(source);
        let bad_header = |err: PcapError| CaptureError::BadHeader {
            path: name.clone(),
            reason: describe(&err),
        };
        let (inner, format, offset) = if PCAP_MAGICS.contains(&word) {
            let reader = PcapReader::new(chained).map_err(bad_header)?;
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
            let reader = PcapNgReader::new(chained).map_err(bad_header)?;
            // The first Section Header Block was consumed by `new`; its
            // length is the second word, in the section's byte order.
            let big_endian = reader.section().endianness == Endianness::Big;
            let inner = Inner::PcapNg {
                reader,
                interfaces: Vec::new(),
                big_endian,
                stale: true,
            };
            (inner, Format::PcapNg, first_block_len)
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
            Inner::PcapNg {
                reader,
                interfaces,
                big_endian,
                stale,
            } => {
                if *stale {
                    *big_endian = reader.section().endianness == Endianness::Big;
                    interfaces.clear();
                    interfaces.extend(reader.interfaces().iter().map(interface_of));
                    *stale = false;
                }
                let raw = match reader.next_raw_block()? {
                    Ok(raw) => raw,
                    Err(err) => return fail(failed, "pcapng block", err),
                };
                *offset += u64::from(raw.initial_len);
                let body: &[u8] = match raw.body {
                    std::borrow::Cow::Borrowed(body) => body,
                    std::borrow::Cow::Owned(_) => &[],
                };
                let corrupt = |failed: &mut bool, reason: String| {
                    *failed = true;
                    Some(Err(CaptureError::Corrupt {
                        path: path.clone(),
                        offset: start,
                        what: "pcapng block",
                        reason,
                    }))
                };
                let be = *big_endian;
                match raw.type_ {
                    block::SECTION_HEADER | block::INTERFACE_DESCRIPTION => {
                        *stale = true;
                        Some(Ok(Event::Other))
                    }
                    block::ENHANCED_PACKET | block::PACKET => {
                        let (id_field, hi, lo, cap, orig, data_at) =
                            if raw.type_ == block::ENHANCED_PACKET {
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
                        if body.len() < data_at {
                            return corrupt(
                                failed,
                                format!("packet block body of {} bytes", body.len()),
                            );
                        }
                        let id = read_uint(&body[id_field], be);
                        let Some(iface) = usize::try_from(id)
                            .ok()
                            .and_then(|i| interfaces.get(i).copied())
                        else {
                            return corrupt(
                                failed,
                                format!("packet of interface {id}, which was never described"),
                            );
                        };
                        let cap_len = read_uint(&body[cap], be);
                        let data = usize::try_from(cap_len)
                            .ok()
                            .and_then(|n| body.get(data_at..data_at.checked_add(n)?));
                        let Some(data) = data else {
                            return corrupt(
                                failed,
                                format!(
                                    "captured length {cap_len} exceeds the block ({} bytes)",
                                    body.len()
                                ),
                            );
                        };
                        let raw_ts = (read_uint(&body[hi], be) << 32) | read_uint(&body[lo], be);
                        let ts_ns = iface
                            .resolution
                            .to_ns(raw_ts)
                            .saturating_add(iface.offset_s.saturating_mul(1_000_000_000));
                        Some(Ok(Event::Packet(Record {
                            offset: start,
                            ts_ns,
                            link_type: iface.link_type,
                            data,
                            orig_len: u32::try_from(read_uint(&body[orig], be)).unwrap_or(u32::MAX),
                        })))
                    }
                    block::SIMPLE_PACKET => {
                        let Some(iface) = interfaces.first().copied() else {
                            return corrupt(failed, "simple packet before any interface".into());
                        };
                        if body.len() < spb::DATA {
                            return corrupt(
                                failed,
                                format!("simple packet block body of {} bytes", body.len()),
                            );
                        }
                        let orig_len = read_uint(&body[spb::ORIGINAL_LEN], be);
                        let mut cap = body.len() - spb::DATA;
                        if iface.snaplen != 0 {
                            cap = cap.min(iface.snaplen as usize);
                        }
                        cap = cap.min(usize::try_from(orig_len).unwrap_or(usize::MAX));
                        Some(Ok(Event::Packet(Record {
                            offset: start,
                            ts_ns: 0,
                            link_type: iface.link_type,
                            data: &body[spb::DATA..spb::DATA + cap],
                            orig_len: u32::try_from(orig_len).unwrap_or(u32::MAX),
                        })))
                    }
                    _ => Some(Ok(Event::Other)),
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

/// The first Section Header Block's length, from the peeked prefix.
fn shb_len(prefix: &[u8]) -> u64 {
    match (prefix.get(SHB_LEN), prefix.get(SHB_BYTE_ORDER)) {
        (Some(len), Some(order)) => read_uint(len, order == BYTE_ORDER_MAGIC_BE),
        _ => 0,
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

fn interface_of(
    idb: &pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock<'_>,
) -> Interface {
    let mut iface = Interface {
        link_type: u32::from(idb.linktype),
        snaplen: idb.snaplen,
        resolution: Resolution::DEFAULT,
        offset_s: 0,
    };
    for option in &idb.options {
        match option {
            InterfaceDescriptionOption::IfTsResol(value) => {
                iface.resolution = Resolution::from_option(*value);
            }
            InterfaceDescriptionOption::IfTsOffset(secs) => iface.offset_s = *secs,
            _ => {}
        }
    }
    iface
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
