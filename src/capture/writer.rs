//! Writes frames to a capture file with pcap-file: pcap (libpcap format,
//! Ethernet link type, nanosecond timestamps) or pcapng (one Ethernet
//! interface with `if_tsresol` = nanoseconds, a comment on every packet).
//!
//! Pure over `io::Write`.

use std::borrow::Cow;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use byteorder::LittleEndian;
use pcap_file::pcap::{PcapHeader, PcapPacket};
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness, TsResolution};

/// The largest frame recorded whole (libpcap's default snaplen).
pub const SNAPLEN: u32 = 262_144;

/// Why a capture could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing the capture: {0}")]
pub struct CaptureError(#[from] pcap_file::PcapError);

/// A pcap file being written, one Ethernet frame at a time. (pcap-file's
/// `PcapWriter` gives no access to its writer until the end; this one can
/// flush as it goes, so an interrupted run leaves a readable file.)
pub struct PcapRecorder<W: Write> {
    out: W,
    header: PcapHeader,
}

impl<W: Write> PcapRecorder<W> {
    /// Writes the file header: Ethernet (link type 1), nanosecond
    /// timestamps, little-endian.
    ///
    /// # Errors
    /// The underlying writer's error.
    pub fn new(out: W) -> Result<PcapRecorder<W>, CaptureError> {
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::NanoSecond,
            endianness: Endianness::Little,
            snaplen: SNAPLEN,
            ..PcapHeader::default()
        };
        let mut out = out;
        header.write_to(&mut out)?;
        Ok(PcapRecorder { out, header })
    }

    /// Records one frame with the time it was sent or received.
    ///
    /// # Errors
    /// The underlying writer's error.
    pub fn record(&mut self, at: SystemTime, frame: &[u8]) -> Result<(), CaptureError> {
        let ts = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let kept = &frame[..frame.len().min(SNAPLEN as usize)];
        PcapPacket::new(ts, len, kept).write_to::<_, LittleEndian>(
            &mut self.out,
            self.header.ts_resolution,
            self.header.snaplen,
        )?;
        Ok(())
    }

    /// Flushes the underlying writer.
    ///
    /// # Errors
    /// The underlying writer's error.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// Gives back the writer (flush it to be sure every byte is out).
    pub fn into_inner(self) -> W {
        self.out
    }
}

/// `if_tsresol` for nanoseconds: 10^-9 s (pcapng spec, section 4.2).
/// pcap-file 2.0.0 writes Enhanced Packet Block timestamps in nanoseconds
/// whatever the interface says, so the interface must say exactly this.
pub const TSRESOL_NANOSECONDS: u8 = 9;

/// The longest option value pcapng can hold (its length field is 16 bits).
const MAX_OPTION_LEN: usize = u16::MAX as usize;

/// Which file format a capture is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Pcap,
    PcapNg,
}

impl Format {
    /// pcapng when asked for, or when the file name ends in `.pcapng`.
    pub fn for_path(path: &Path, pcapng: bool) -> Format {
        let named = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("pcapng"));
        if pcapng || named {
            Format::PcapNg
        } else {
            Format::Pcap
        }
    }
}

/// The interface a pcapng file describes.
#[derive(Clone, Debug)]
pub struct Interface {
    /// `if_name`: `cli0`.
    pub name: String,
    /// `if_description`.
    pub description: String,
}

/// A pcapng file being written: a Section Header (naming synack), one
/// Interface Description (Ethernet, nanoseconds), then an Enhanced Packet
/// Block per frame with an optional `opt_comment`.
pub struct PcapNgRecorder<W: Write> {
    writer: PcapNgWriter<W>,
}

impl<W: Write> PcapNgRecorder<W> {
    /// Writes the Section Header and the Interface Description blocks.
    ///
    /// # Errors
    /// The underlying writer's error.
    pub fn new(out: W, iface: &Interface) -> Result<PcapNgRecorder<W>, CaptureError> {
        let section = SectionHeaderBlock {
            endianness: Endianness::Little,
            options: vec![SectionHeaderOption::UserApplication(Cow::Owned(format!(
                "synack {}",
                env!("CARGO_PKG_VERSION")
            )))],
            ..SectionHeaderBlock::default()
        };
        let mut writer = PcapNgWriter::with_section_header(out, section)?;
        writer.write_pcapng_block(InterfaceDescriptionBlock {
            linktype: DataLink::ETHERNET,
            snaplen: SNAPLEN,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(iface.name.clone())),
                InterfaceDescriptionOption::IfDescription(Cow::Owned(iface.description.clone())),
                InterfaceDescriptionOption::IfTsResol(TSRESOL_NANOSECONDS),
            ],
        })?;
        Ok(PcapNgRecorder { writer })
    }

    /// Records one frame with its time and, when given, a comment (cut to
    /// what a pcapng option holds, on a character boundary).
    ///
    /// # Errors
    /// The underlying writer's error.
    pub fn record(
        &mut self,
        at: SystemTime,
        frame: &[u8],
        comment: Option<&str>,
    ) -> Result<(), CaptureError> {
        let ts = at
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let kept = &frame[..frame.len().min(SNAPLEN as usize)];
        let options = comment
            .filter(|c| !c.is_empty())
            .map(|c| EnhancedPacketOption::Comment(Cow::Borrowed(cut(c, MAX_OPTION_LEN))))
            .into_iter()
            .collect();
        self.writer.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: ts,
            original_len: u32::try_from(frame.len()).unwrap_or(u32::MAX),
            data: Cow::Borrowed(kept),
            options,
        })?;
        Ok(())
    }

    /// Flushes the underlying writer.
    ///
    /// # Errors
    /// The underlying writer's error.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.writer.get_mut().flush()
    }

    /// Gives back the writer.
    pub fn into_inner(self) -> W {
        self.writer.into_inner()
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary (a comment must stay valid UTF-8).
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A capture in either format; comments are kept in pcapng and dropped in
/// pcap, which has no place for them.
pub enum CaptureWriter<W: Write> {
    Pcap(PcapRecorder<W>),
    PcapNg(PcapNgRecorder<W>),
}

impl<W: Write> CaptureWriter<W> {
    /// Starts a capture of `iface` in `format`.
    ///
    /// # Errors
    /// The underlying writer's error.
    pub fn new(
        out: W,
        format: Format,
        iface: &Interface,
    ) -> Result<CaptureWriter<W>, CaptureError> {
        Ok(match format {
            Format::Pcap => CaptureWriter::Pcap(PcapRecorder::new(out)?),
            Format::PcapNg => CaptureWriter::PcapNg(PcapNgRecorder::new(out, iface)?),
        })
    }

    /// Whether comments are kept (it is worth making them).
    pub fn keeps_comments(&self) -> bool {
        matches!(self, CaptureWriter::PcapNg(_))
    }

    /// Records one frame.
    ///
    /// # Errors
    /// The underlying writer's error.
    pub fn record(
        &mut self,
        at: SystemTime,
        frame: &[u8],
        comment: Option<&str>,
    ) -> Result<(), CaptureError> {
        match self {
            CaptureWriter::Pcap(rec) => rec.record(at, frame),
            CaptureWriter::PcapNg(rec) => rec.record(at, frame, comment),
        }
    }

    /// Flushes the underlying writer.
    ///
    /// # Errors
    /// The underlying writer's error.
    pub fn flush(&mut self) -> std::io::Result<()> {
        match self {
            CaptureWriter::Pcap(rec) => rec.flush(),
            CaptureWriter::PcapNg(rec) => rec.flush(),
        }
    }

    /// Gives back the writer.
    pub fn into_inner(self) -> W {
        match self {
            CaptureWriter::Pcap(rec) => rec.into_inner(),
            CaptureWriter::PcapNg(rec) => rec.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcap::PcapReader;
    use pcap_file::pcapng::{Block, PcapNgReader};

    fn cli0() -> Interface {
        Interface {
            name: "cli0".into(),
            description: "synack's client".into(),
        }
    }

    #[test]
    fn pcapng_declares_nanoseconds_and_keeps_comments() {
        let mut rec = PcapNgRecorder::new(Vec::new(), &cli0()).unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        rec.record(
            at,
            &[1, 2, 3],
            Some("SYN: client ISN 0x000003e8; client CLOSED → SYN-SENT"),
        )
        .unwrap();
        rec.record(at + Duration::from_nanos(1), &[4; 60], None)
            .unwrap();
        let bytes = rec.into_inner();
        // Little-endian Section Header Block.
        assert_eq!(&bytes[..4], &[0x0a, 0x0d, 0x0d, 0x0a]);
        assert_eq!(&bytes[8..12], &[0x4d, 0x3c, 0x2b, 0x1a]);
        let mut reader = PcapNgReader::new(&bytes[..]).unwrap();
        let mut blocks = Vec::new();
        while let Some(block) = reader.next_block() {
            blocks.push(block.unwrap().into_owned());
        }
        let Block::InterfaceDescription(idb) = &blocks[0] else {
            panic!("{:?}", blocks[0]);
        };
        assert_eq!(idb.linktype, DataLink::ETHERNET);
        assert!(idb
            .options
            .contains(&InterfaceDescriptionOption::IfTsResol(TSRESOL_NANOSECONDS)));
        assert!(idb
            .options
            .contains(&InterfaceDescriptionOption::IfName("cli0".into())));
        let Block::EnhancedPacket(first) = &blocks[1] else {
            panic!("{:?}", blocks[1]);
        };
        assert_eq!(first.timestamp, Duration::new(1_700_000_000, 123_456_789));
        assert_eq!(&first.data[..], &[1, 2, 3]);
        assert_eq!(
            first.options,
            vec![EnhancedPacketOption::Comment(
                "SYN: client ISN 0x000003e8; client CLOSED → SYN-SENT".into()
            )]
        );
        let Block::EnhancedPacket(second) = &blocks[2] else {
            panic!("{:?}", blocks[2]);
        };
        assert!(second.options.is_empty());
        assert_eq!(second.original_len, 60);
        assert_eq!(blocks.len(), 3);
        // Every block is a multiple of 4 bytes long (options padded).
        assert_eq!(bytes.len() % 4, 0);
    }

    #[test]
    fn a_long_comment_is_cut_on_a_character_boundary() {
        let text = "→".repeat(30_000);
        let kept = cut(&text, MAX_OPTION_LEN);
        assert!(kept.len() <= MAX_OPTION_LEN);
        assert!(kept.chars().all(|c| c == '→'));
        assert_eq!(cut("short", 10), "short");
    }

    #[test]
    fn the_format_follows_the_flag_or_the_name() {
        assert_eq!(Format::for_path(Path::new("a.pcap"), false), Format::Pcap);
        assert_eq!(Format::for_path(Path::new("a.pcap"), true), Format::PcapNg);
        assert_eq!(
            Format::for_path(Path::new("a.PCAPNG"), false),
            Format::PcapNg
        );
        assert_eq!(Format::for_path(Path::new("pcapng"), false), Format::Pcap);
    }

    #[test]
    fn frames_read_back_with_their_nanosecond_timestamps() {
        let mut rec = PcapRecorder::new(Vec::new()).unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        rec.record(at, &[1, 2, 3]).unwrap();
        rec.record(at + Duration::from_nanos(1), &[4; 60]).unwrap();
        let bytes = rec.into_inner();
        // Little-endian nanosecond magic.
        assert_eq!(&bytes[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        let mut reader = PcapReader::new(&bytes[..]).unwrap();
        assert_eq!(reader.header().datalink, DataLink::ETHERNET);
        let first = reader.next_packet().unwrap().unwrap();
        assert_eq!(first.timestamp, Duration::new(1_700_000_000, 123_456_789));
        assert_eq!(&first.data[..], &[1, 2, 3]);
        let second = reader.next_packet().unwrap().unwrap();
        assert_eq!(second.orig_len, 60);
        assert!(reader.next_packet().is_none());
    }
}
