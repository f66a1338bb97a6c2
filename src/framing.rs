//! Message framing over a TCP byte stream, the tutorials' answer to
//! "sticky packets": TCP delivers bytes, not messages, so one `recv` may
//! hold several messages or part of one.
//!
//! Two framings, as `synack serve --framing` and `synack lab --framing`
//! speak them:
//! - [`Framing::LengthPrefix`]: a 4-byte big-endian body length, then the
//!   body (Python: `struct.pack(">I", len(body)) + body`);
//! - [`Framing::JsonHeader`]: a 4-byte big-endian length of a JSON header,
//!   then the header (`{"length": N, "encoding": "utf-8"}`, carrying the
//!   body's length), then the body (Python: `struct.pack(">I",
//!   len(header)) + header + body` with `header = json.dumps(…).encode()`).
//!
//! Pure: [`encode`] appends a frame to a buffer, [`decode`] reads one frame
//! from the front of a buffer, and [`Decoder`] accumulates the bytes of
//! successive reads and hands out complete messages.

use serde::{Deserialize, Serialize};

/// The size of the big-endian length that starts every frame.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// The largest body accepted by default (16 MiB): a length above it is
/// taken for garbage rather than allocated.
pub const DEFAULT_MAX_BODY_LEN: usize = 16 * 1024 * 1024;

/// The largest JSON header accepted (64 KiB).
pub const MAX_HEADER_LEN: usize = 64 * 1024;

/// The encoding the JSON header announces when none is given.
pub const DEFAULT_ENCODING: &str = "utf-8";

/// How messages are delimited on the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Framing {
    /// `u32` big-endian body length, then the body.
    LengthPrefix,
    /// `u32` big-endian header length, a JSON [`JsonHeader`], then the body.
    JsonHeader,
}

impl Framing {
    /// The name used on the command line: `length-prefix`, `json-header`.
    pub fn name(self) -> &'static str {
        match self {
            Framing::LengthPrefix => "length-prefix",
            Framing::JsonHeader => "json-header",
        }
    }
}

/// The JSON header of [`Framing::JsonHeader`]: `{"length": N, "encoding":
/// "utf-8"}`. Unknown fields are ignored; `content-length` is accepted for
/// `length` (the Real Python tutorial's spelling).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsonHeader {
    /// The body's length in bytes.
    #[serde(alias = "content-length")]
    pub length: usize,
    /// The body's text encoding, `utf-8` unless said otherwise.
    #[serde(default = "default_encoding", alias = "content-encoding")]
    pub encoding: String,
}

fn default_encoding() -> String {
    DEFAULT_ENCODING.to_string()
}

/// One decoded message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The JSON header, for [`Framing::JsonHeader`].
    pub header: Option<JsonHeader>,
    /// The body.
    pub body: Vec<u8>,
}

/// A frame that cannot be decoded: the stream is out of step and should be
/// closed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FramingError {
    /// A body length above the limit.
    #[error("frame announces a {len}-byte body, more than the {max}-byte limit")]
    BodyTooLong { len: usize, max: usize },
    /// A JSON header length above [`MAX_HEADER_LEN`].
    #[error("frame announces a {len}-byte JSON header, more than the {max}-byte limit")]
    HeaderTooLong { len: usize, max: usize },
    /// The JSON header does not parse or lacks `length`.
    #[error("bad JSON header: {reason}")]
    BadHeader { reason: String },
}

/// The outcome of [`decode`] on the front of a buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole message, which used the first `consumed` bytes.
    Complete { message: Message, consumed: usize },
    /// Not enough bytes yet: at least `needed` in total are required
    /// before the next step can be taken.
    Incomplete { needed: usize },
}

/// Appends `body` as one frame to `out`.
///
/// # Errors
///
/// [`FramingError::BodyTooLong`] for a body whose length does not fit the
/// 32-bit prefix.
pub fn encode(framing: Framing, body: &[u8], out: &mut Vec<u8>) -> Result<(), FramingError> {
    let body_len = u32::try_from(body.len()).map_err(|_| FramingError::BodyTooLong {
        len: body.len(),
        max: u32::MAX as usize,
    })?;
    match framing {
        Framing::LengthPrefix => {
            out.reserve(LENGTH_PREFIX_LEN + body.len());
            out.extend_from_slice(&body_len.to_be_bytes());
        }
        Framing::JsonHeader => {
            let header = JsonHeader {
                length: body.len(),
                encoding: default_encoding(),
            };
            let header = serde_json::to_vec(&header).map_err(|e| FramingError::BadHeader {
                reason: e.to_string(),
            })?;
            let header_len =
                u32::try_from(header.len()).map_err(|_| FramingError::HeaderTooLong {
                    len: header.len(),
                    max: MAX_HEADER_LEN,
                })?;
            out.reserve(LENGTH_PREFIX_LEN + header.len() + body.len());
            out.extend_from_slice(&header_len.to_be_bytes());
            out.extend_from_slice(&header);
        }
    }
    out.extend_from_slice(body);
    Ok(())
}

/// `body` as one frame, in a new buffer.
///
/// # Errors
///
/// As [`encode`].
pub fn encode_to_vec(framing: Framing, body: &[u8]) -> Result<Vec<u8>, FramingError> {
    let mut out = Vec::new();
    encode(framing, body, &mut out)?;
    Ok(out)
}

/// Reads one frame from the front of `buf` (which may hold more after it).
///
/// # Errors
///
/// A length above `max_body_len` or [`MAX_HEADER_LEN`], or a JSON header
/// that does not parse.
pub fn decode(framing: Framing, buf: &[u8], max_body_len: usize) -> Result<Decoded, FramingError> {
    let Some(prefix) = read_prefix(buf) else {
        return Ok(Decoded::Incomplete {
            needed: LENGTH_PREFIX_LEN,
        });
    };
    match framing {
        Framing::LengthPrefix => {
            if prefix > max_body_len {
                return Err(FramingError::BodyTooLong {
                    len: prefix,
                    max: max_body_len,
                });
            }
            let end = LENGTH_PREFIX_LEN + prefix;
            match buf.get(LENGTH_PREFIX_LEN..end) {
                Some(body) => Ok(Decoded::Complete {
                    message: Message {
                        header: None,
                        body: body.to_vec(),
                    },
                    consumed: end,
                }),
                None => Ok(Decoded::Incomplete { needed: end }),
            }
        }
        Framing::JsonHeader => {
            if prefix > MAX_HEADER_LEN {
                return Err(FramingError::HeaderTooLong {
                    len: prefix,
                    max: MAX_HEADER_LEN,
                });
            }
            let header_end = LENGTH_PREFIX_LEN + prefix;
            let Some(raw_header) = buf.get(LENGTH_PREFIX_LEN..header_end) else {
                return Ok(Decoded::Incomplete { needed: header_end });
            };
            let header: JsonHeader =
                serde_json::from_slice(raw_header).map_err(|e| FramingError::BadHeader {
                    reason: e.to_string(),
                })?;
            if header.length > max_body_len {
                return Err(FramingError::BodyTooLong {
                    len: header.length,
                    max: max_body_len,
                });
            }
            let end = header_end + header.length;
            match buf.get(header_end..end) {
                Some(body) => Ok(Decoded::Complete {
                    message: Message {
                        body: body.to_vec(),
                        header: Some(header),
                    },
                    consumed: end,
                }),
                None => Ok(Decoded::Incomplete { needed: end }),
            }
        }
    }
}

fn read_prefix(buf: &[u8]) -> Option<usize> {
    let bytes: [u8; LENGTH_PREFIX_LEN] = buf.get(..LENGTH_PREFIX_LEN)?.try_into().ok()?;
    usize::try_from(u32::from_be_bytes(bytes)).ok()
}

/// Below this capacity an emptied buffer is kept (not worth freeing).
const KEEP_CAPACITY: usize = 4 * 1024;

/// Collects the bytes of successive reads and yields whole messages.
///
/// Its memory is predictable, so that a server can charge it to a budget
/// before it grows ([`Decoder::held_after_push`]): the buffer doubles, but
/// never past the end of the frame being read (once its length is known),
/// and an emptied buffer is freed.
#[derive(Clone, Debug)]
pub struct Decoder {
    framing: Framing,
    max_body_len: usize,
    buf: Vec<u8>,
    /// Where the frame being read ends, as far as the last decode knew.
    frame_end: usize,
}

impl Decoder {
    /// A decoder with the [`DEFAULT_MAX_BODY_LEN`] limit.
    pub fn new(framing: Framing) -> Decoder {
        Decoder::with_max_body_len(framing, DEFAULT_MAX_BODY_LEN)
    }

    /// A decoder that rejects bodies longer than `max_body_len`.
    pub fn with_max_body_len(framing: Framing, max_body_len: usize) -> Decoder {
        Decoder {
            framing,
            max_body_len,
            buf: Vec::new(),
            frame_end: LENGTH_PREFIX_LEN,
        }
    }

    /// The framing this decoder reads.
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Adds the bytes of one read.
    pub fn push(&mut self, bytes: &[u8]) {
        let capacity = self.held_after_push(bytes.len());
        if capacity > self.buf.capacity() {
            self.buf.reserve_exact(capacity - self.buf.len());
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, or `None` until more bytes are pushed.
    ///
    /// # Errors
    ///
    /// As [`decode`]; the decoder is then out of step with the stream.
    pub fn next_message(&mut self) -> Result<Option<Message>, FramingError> {
        match decode(self.framing, &self.buf, self.max_body_len)? {
            Decoded::Complete { message, consumed } => {
                self.buf.drain(..consumed);
                Ok(Some(message))
            }
            Decoded::Incomplete { needed } => {
                self.frame_end = needed;
                if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
                    self.buf = Vec::new();
                } else if self.buf.capacity() > 2 * needed.max(KEEP_CAPACITY) {
                    // What is left of a big read: the next frame's start.
                    self.buf.shrink_to(needed.max(self.buf.len()));
                }
                Ok(None)
            }
        }
    }

    /// Bytes received that do not yet form a whole message (at EOF: a
    /// message cut short).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The bytes of memory the decoder holds (its buffer's capacity).
    pub fn held(&self) -> usize {
        self.buf.capacity()
    }

    /// What [`Decoder::held`] will be once `len` more bytes are pushed.
    pub fn held_after_push(&self, len: usize) -> usize {
        let want = self.buf.len().saturating_add(len);
        let capacity = self.buf.capacity();
        if want <= capacity {
            return capacity;
        }
        let doubled = capacity.saturating_mul(2).max(KEEP_CAPACITY);
        let target = if self.frame_end >= want {
            doubled.min(self.frame_end)
        } else {
            doubled
        };
        target.max(want)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: [Framing; 2] = [Framing::LengthPrefix, Framing::JsonHeader];

    fn drain(decoder: &mut Decoder) -> Vec<Vec<u8>> {
        let mut bodies = Vec::new();
        while let Some(message) = decoder.next_message().expect("decodes") {
            bodies.push(message.body);
        }
        bodies
    }

    #[test]
    fn length_prefix_matches_struct_pack() {
        // Python: struct.pack(">I", 5) + b"hello"
        assert_eq!(
            encode_to_vec(Framing::LengthPrefix, b"hello").expect("encode"),
            b"\x00\x00\x00\x05hello"
        );
        assert_eq!(
            encode_to_vec(Framing::LengthPrefix, b"").expect("encode"),
            b"\x00\x00\x00\x00"
        );
    }

    #[test]
    fn json_header_frame_layout() {
        let frame = encode_to_vec(Framing::JsonHeader, b"hello").expect("encode");
        let header = br#"{"length":5,"encoding":"utf-8"}"#;
        let mut expected = (header.len() as u32).to_be_bytes().to_vec();
        expected.extend_from_slice(header);
        expected.extend_from_slice(b"hello");
        assert_eq!(frame, expected);
    }

    #[test]
    fn json_header_from_python_with_spaces_and_other_keys() {
        // json.dumps({"content-length": 2, "content-type": "text/json",
        //             "content-encoding": "utf-8"}).encode()
        let header =
            br#"{"content-length": 2, "content-type": "text/json", "content-encoding": "utf-8"}"#;
        let mut frame = (header.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(header);
        frame.extend_from_slice(b"{}");
        let Decoded::Complete { message, consumed } =
            decode(Framing::JsonHeader, &frame, DEFAULT_MAX_BODY_LEN).expect("decode")
        else {
            panic!("incomplete");
        };
        assert_eq!(consumed, frame.len());
        assert_eq!(message.body, b"{}");
        assert_eq!(
            message.header,
            Some(JsonHeader {
                length: 2,
                encoding: "utf-8".into()
            })
        );
    }

    #[test]
    fn several_messages_in_one_buffer() {
        let bodies: [&[u8]; 4] = [b"hello", b"", b"world", &[0xff; 300]];
        for framing in BOTH {
            let mut wire = Vec::new();
            for body in bodies {
                encode(framing, body, &mut wire).expect("encode");
            }
            let mut decoder = Decoder::new(framing);
            decoder.push(&wire);
            assert_eq!(
                drain(&mut decoder),
                bodies.map(<[u8]>::to_vec),
                "{framing:?}"
            );
            assert_eq!(decoder.pending(), 0);
        }
    }

    #[test]
    fn one_message_split_across_reads_at_every_byte() {
        for framing in BOTH {
            let wire = encode_to_vec(framing, b"hello, sticky packets").expect("encode");
            for cut in 0..=wire.len() {
                let mut decoder = Decoder::new(framing);
                decoder.push(&wire[..cut]);
                let first = drain(&mut decoder);
                decoder.push(&wire[cut..]);
                let second = drain(&mut decoder);
                let all: Vec<_> = first.into_iter().chain(second).collect();
                assert_eq!(
                    all,
                    vec![b"hello, sticky packets".to_vec()],
                    "{framing:?} cut {cut}"
                );
                assert_eq!(decoder.pending(), 0);
            }
        }
    }

    #[test]
    fn one_byte_at_a_time_then_two_messages_with_a_split_between() {
        for framing in BOTH {
            let mut wire = encode_to_vec(framing, b"one").expect("encode");
            encode(framing, b"two", &mut wire).expect("encode");
            let mut decoder = Decoder::new(framing);
            let mut bodies = Vec::new();
            for byte in &wire {
                decoder.push(std::slice::from_ref(byte));
                bodies.extend(drain(&mut decoder));
            }
            assert_eq!(bodies, vec![b"one".to_vec(), b"two".to_vec()]);
        }
    }

    #[test]
    fn incomplete_says_how_many_bytes_are_needed() {
        let wire = encode_to_vec(Framing::LengthPrefix, b"hello").expect("encode");
        assert_eq!(
            decode(Framing::LengthPrefix, &wire[..2], 100),
            Ok(Decoded::Incomplete { needed: 4 })
        );
        assert_eq!(
            decode(Framing::LengthPrefix, &wire[..6], 100),
            Ok(Decoded::Incomplete { needed: 9 })
        );
        let json = encode_to_vec(Framing::JsonHeader, b"hello").expect("encode");
        let header_end = json.len() - 5;
        assert_eq!(
            decode(Framing::JsonHeader, &json[..6], 100),
            Ok(Decoded::Incomplete { needed: header_end })
        );
        assert_eq!(
            decode(Framing::JsonHeader, &json[..header_end + 1], 100),
            Ok(Decoded::Incomplete { needed: json.len() })
        );
    }

    #[test]
    fn oversized_and_malformed_frames_are_errors() {
        assert_eq!(
            decode(Framing::LengthPrefix, b"\xff\xff\xff\xff", 1024),
            Err(FramingError::BodyTooLong {
                len: u32::MAX as usize,
                max: 1024
            })
        );
        assert!(matches!(
            decode(Framing::JsonHeader, b"\x00\x10\x00\x00", 1024),
            Err(FramingError::HeaderTooLong { .. })
        ));
        let mut bad = 7u32.to_be_bytes().to_vec();
        bad.extend_from_slice(b"{nope}!");
        assert!(matches!(
            decode(Framing::JsonHeader, &bad, 1024),
            Err(FramingError::BadHeader { .. })
        ));
        let mut no_length = 2u32.to_be_bytes().to_vec();
        no_length.extend_from_slice(b"{}");
        assert!(matches!(
            decode(Framing::JsonHeader, &no_length, 1024),
            Err(FramingError::BadHeader { .. })
        ));
        let big = encode_to_vec(Framing::JsonHeader, &[0; 2000]).expect("encode");
        assert!(matches!(
            decode(Framing::JsonHeader, &big, 1024),
            Err(FramingError::BodyTooLong {
                len: 2000,
                max: 1024
            })
        ));
    }

    #[test]
    fn the_buffer_grows_as_predicted_and_never_past_the_frame() {
        for framing in BOTH {
            let body = vec![7u8; 100_000];
            let wire = encode_to_vec(framing, &body).expect("encode");
            let mut decoder = Decoder::new(framing);
            let mut peak = 0;
            for chunk in wire.chunks(1000) {
                let predicted = decoder.held_after_push(chunk.len());
                decoder.push(chunk);
                assert_eq!(decoder.held(), predicted, "{framing:?}");
                peak = peak.max(decoder.held());
                let _ = drain(&mut decoder);
            }
            assert!(peak <= wire.len(), "{framing:?}: {peak} > {}", wire.len());
            assert_eq!(decoder.held(), 0, "{framing:?}: freed once empty");
        }
    }

    #[test]
    fn framing_names_match_the_command_line() {
        assert_eq!(Framing::LengthPrefix.name(), "length-prefix");
        assert_eq!(Framing::JsonHeader.name(), "json-header");
    }
}
