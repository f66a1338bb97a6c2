//! Writes frames to a pcap file (libpcap format, Ethernet link type,
//! nanosecond timestamps) with pcap-file.
//!
//! Pure over `io::Write`.

use std::io::Write;
use std::time::{Duration, SystemTime};

use byteorder::LittleEndian;
use pcap_file::pcap::{PcapHeader, PcapPacket};
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

#[cfg(test)]
mod tests {
    use super::*;
    use pcap_file::pcap::PcapReader;

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
