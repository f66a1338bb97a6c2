//! The tutorial server's reply logic, shared by `synack serve` and the
//! lab's server: what to answer to the bytes of each read (each read
//! unframed, each whole message framed), when the server has answered
//! enough to close, and the memory the framed messages may hold. Pure:
//! bytes in, bytes to send out; no sockets here.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::framing::{self, Decoder, Framing, FramingError};

/// What the server answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The same text for each read (or each framed message).
    Text(Vec<u8>),
    /// The bytes read (or each framed message's body), sent back.
    Echo,
    /// Nothing: the reads are taken and counted, never answered.
    Nothing,
}

/// One read (unframed) or one whole message (framed), and its answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    /// The framed message's body (None unframed).
    pub message: Option<Vec<u8>>,
    /// Bytes to send back (possibly none).
    pub reply: Vec<u8>,
}

/// What one read produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// One answer per read (unframed) or per message the read completed.
    pub answers: Vec<Answer>,
    /// A frame that could not be decoded after the answered ones: the
    /// stream is out of step and should be closed.
    pub error: Option<FramingError>,
}

impl Response {
    /// Every answer's reply, joined (one write for the whole read).
    pub fn joined_reply(&self) -> Vec<u8> {
        self.answers
            .iter()
            .flat_map(|a| a.reply.iter().copied())
            .collect()
    }
}

/// The pure reply logic: bytes of one read in, bytes to send out.
#[derive(Debug)]
pub struct Responder {
    reply: Reply,
    decoder: Option<Decoder>,
    /// Close once this many reads (messages) are answered (None: at the
    /// peer's FIN).
    close_after: Option<usize>,
    /// Answer once at the peer's FIN instead of each read (the half-close).
    at_eof: bool,
    answered: usize,
}

impl Responder {
    /// Answers each read (or each message of `framing`), closes at the
    /// peer's FIN; framed messages up to [`framing::DEFAULT_MAX_BODY_LEN`].
    pub fn new(reply: Reply, framing: Option<Framing>) -> Responder {
        Responder {
            reply,
            decoder: framing.map(Decoder::new),
            close_after: None,
            at_eof: false,
            answered: 0,
        }
    }

    /// Refuses framed messages over `max_message` bytes.
    pub fn max_message(mut self, max_message: usize) -> Responder {
        if let Some(decoder) = &self.decoder {
            self.decoder = Some(Decoder::with_max_body_len(decoder.framing(), max_message));
        }
        self
    }

    /// Closes once `answers` reads (or messages) are answered: the server
    /// closes first.
    pub fn close_after(mut self, answers: usize) -> Responder {
        self.close_after = Some(answers);
        self
    }

    /// Takes every read without answering, and answers once at the peer's
    /// FIN ([`Responder::on_eof`]): the client's half-close does not stop
    /// the server from sending.
    pub fn answer_at_eof(mut self) -> Responder {
        self.at_eof = true;
        self
    }

    fn reply_to(&self, bytes: &[u8]) -> Vec<u8> {
        match &self.reply {
            Reply::Text(text) => text.clone(),
            Reply::Echo => bytes.to_vec(),
            Reply::Nothing => Vec::new(),
        }
    }

    /// Answers the bytes of one read: each read (unframed) or each
    /// complete message (framed) gets one answer.
    pub fn on_read(&mut self, bytes: &[u8]) -> Response {
        let mut response = Response::default();
        let Some(decoder) = self.decoder.as_mut() else {
            let reply = if self.at_eof {
                Vec::new()
            } else {
                self.reply_to(bytes)
            };
            response.answers.push(Answer {
                message: None,
                reply,
            });
            self.answered += 1;
            return response;
        };
        decoder.push(bytes);
        let framing = decoder.framing();
        // Each message is at least the 4-byte prefix, so a read completes
        // at most pending / 4 + 1 messages.
        for _ in 0..=decoder.pending() / framing::LENGTH_PREFIX_LEN {
            let message = match decoder.next_message() {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(e) => {
                    response.error = Some(e);
                    break;
                }
            };
            let reply = match &self.reply {
                Reply::Nothing => Ok(Vec::new()),
                Reply::Text(text) => framing::encode_to_vec(framing, text),
                Reply::Echo => framing::encode_to_vec(framing, &message.body),
            };
            let reply = match reply {
                Ok(reply) => reply,
                Err(e) => {
                    response.error = Some(e);
                    break;
                }
            };
            response.answers.push(Answer {
                message: Some(message.body),
                reply,
            });
            self.answered += 1;
        }
        response
    }

    /// The answer at the peer's FIN: the reply once when answering at EOF
    /// (an echo has nothing left to send), else none.
    pub fn on_eof(&self) -> Vec<u8> {
        match (&self.reply, self.at_eof) {
            (Reply::Text(text), true) => text.clone(),
            _ => Vec::new(),
        }
    }

    /// Whether the server should close now: it closes first, and it has
    /// answered enough.
    pub fn done(&self) -> bool {
        self.close_after.is_some_and(|n| self.answered >= n)
    }

    /// Bytes of an incomplete frame held back (at EOF: a message cut short).
    pub fn pending(&self) -> usize {
        self.decoder.as_ref().map_or(0, Decoder::pending)
    }

    /// The memory held for incomplete messages (none without framing).
    pub fn held(&self) -> usize {
        self.decoder.as_ref().map_or(0, Decoder::held)
    }

    /// What [`Responder::held`] will be after a read of `len` bytes.
    pub fn held_after_read(&self, len: usize) -> usize {
        self.decoder.as_ref().map_or(0, |d| d.held_after_push(len))
    }

    /// `text` as one frame of this responder's framing (as is, unframed):
    /// how a refusal is told to the client.
    pub fn error_frame(&self, text: &str) -> Vec<u8> {
        match &self.decoder {
            Some(decoder) => framing::encode_to_vec(decoder.framing(), text.as_bytes())
                .unwrap_or_else(|_| text.as_bytes().to_vec()),
            None => text.as_bytes().to_vec(),
        }
    }

    /// One read taken within the memory budget (`synack serve`): refused
    /// when holding it would go past the budget, or when a message is over
    /// the cap or has a header over its limit; a frame that cannot be
    /// decoded is an error.
    ///
    /// # Errors
    ///
    /// The decoding error of a frame that is neither too long nor has a
    /// header too long.
    pub fn on_read_within(
        &mut self,
        bytes: &[u8],
        charge: &mut Charge<'_>,
    ) -> Result<Taken, FramingError> {
        let needed = self.held_after_read(bytes.len());
        if needed > charge.held && !charge.grow_to(needed) {
            let reason = format!(
                "the server's memory budget for messages is full ({} of {} bytes held \
                 by all clients, this read needs {} more; --memory-budget)",
                charge.budget.held(),
                charge.budget.limit,
                needed - charge.held
            );
            return Ok(self.refusal(reason));
        }
        let response = self.on_read(bytes);
        charge.settle(self.held());
        match response.error {
            None => Ok(Taken::Answered(response)),
            Some(e @ FramingError::BodyTooLong { .. }) => {
                Ok(self.refusal(format!("{e} (--max-message)")))
            }
            Some(e @ FramingError::HeaderTooLong { .. }) => Ok(self.refusal(e.to_string())),
            Some(e) => Err(e),
        }
    }

    fn refusal(&self, reason: String) -> Taken {
        let frame = self.error_frame(&format!("error: {reason}"));
        Taken::Refused { reason, frame }
    }
}

/// What became of one read taken within the budget.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// Answered: send each reply.
    Answered(Response),
    /// Over a limit: tell the client (`frame`, in its own framing) and
    /// close.
    Refused { reason: String, frame: Vec<u8> },
}

/// The bytes of framed messages all clients may hold at once.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    held: AtomicUsize,
}

impl Budget {
    /// A budget of `limit` bytes, none held.
    pub fn new(limit: usize) -> Budget {
        Budget {
            limit,
            held: AtomicUsize::new(0),
        }
    }

    /// The bytes held by all clients now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// A charge of nothing yet, for one client.
    pub fn charge(&self) -> Charge<'_> {
        Charge {
            budget: self,
            held: 0,
        }
    }
}

/// The bytes one client holds for incomplete messages, charged to the
/// shared [`Budget`]; given back when dropped.
#[derive(Debug)]
pub struct Charge<'a> {
    budget: &'a Budget,
    held: usize,
}

impl Charge<'_> {
    /// Charges `held` bytes in all, if the budget has room; false (and
    /// nothing charged) if not.
    fn grow_to(&mut self, held: usize) -> bool {
        let more = held.saturating_sub(self.held);
        let limit = self.budget.limit;
        let charged = self
            .budget
            .held
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |total| {
                total.checked_add(more).filter(|&t| t <= limit)
            })
            .is_ok();
        if charged {
            self.held += more;
        }
        charged
    }

    /// Charges what the client really holds now (less, once messages are
    /// answered).
    fn settle(&mut self, held: usize) {
        if held >= self.held {
            self.budget
                .held
                .fetch_add(held - self.held, Ordering::SeqCst);
        } else {
            self.budget
                .held
                .fetch_sub(self.held - held, Ordering::SeqCst);
        }
        self.held = held;
    }
}

impl Drop for Charge<'_> {
    fn drop(&mut self) {
        self.settle(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::encode_to_vec;

    fn text(reply: &str) -> Reply {
        Reply::Text(reply.as_bytes().to_vec())
    }

    fn replies(response: &Response) -> Vec<Vec<u8>> {
        response.answers.iter().map(|a| a.reply.clone()).collect()
    }

    #[test]
    fn unframed_text_reply_answers_each_read() {
        let mut r = Responder::new(text("hi\n"), None);
        assert_eq!(r.on_read(b"hello").joined_reply(), b"hi\n");
        assert!(!r.done());
        assert_eq!(r.on_read(b"again").joined_reply(), b"hi\n");
    }

    #[test]
    fn unframed_echo_sends_the_read_back() {
        let mut r = Responder::new(Reply::Echo, None);
        let response = r.on_read(b"hello");
        assert_eq!(response.joined_reply(), b"hello");
        assert_eq!(response.answers[0].message, None);
    }

    #[test]
    fn closing_first_is_done_after_enough_answers() {
        let mut r = Responder::new(text("bye"), None).close_after(1);
        assert!(!r.done());
        r.on_read(b"x");
        assert!(r.done());
        let mut two = Responder::new(Reply::Nothing, None).close_after(2);
        assert!(two.on_read(b"x").joined_reply().is_empty());
        assert!(!two.done());
        two.on_read(b"y");
        assert!(two.done());
    }

    #[test]
    fn answering_at_eof_takes_the_reads_silently() {
        let mut r = Responder::new(text("hello, client"), None).answer_at_eof();
        assert!(r.on_read(b"hello").joined_reply().is_empty());
        assert!(r.on_read(b"world").joined_reply().is_empty());
        assert_eq!(r.on_eof(), b"hello, client");
        assert!(Responder::new(text("x"), None).on_eof().is_empty());
    }

    #[test]
    fn framed_echo_answers_each_message_of_one_read() {
        for framing in [Framing::LengthPrefix, Framing::JsonHeader] {
            let mut wire = encode_to_vec(framing, b"one").expect("encode");
            wire.extend(encode_to_vec(framing, b"two").expect("encode"));
            wire.extend(encode_to_vec(framing, b"three").expect("encode"));
            let mut r = Responder::new(Reply::Echo, Some(framing));
            let response = r.on_read(&wire);
            let bodies: Vec<_> = response
                .answers
                .iter()
                .filter_map(|a| a.message.clone())
                .collect();
            assert_eq!(
                bodies,
                [b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
            );
            assert_eq!(
                response.joined_reply(),
                wire,
                "{framing:?}: an echo of the frames"
            );
        }
    }

    #[test]
    fn framed_reply_waits_for_the_whole_message() {
        let wire = encode_to_vec(Framing::LengthPrefix, b"hello").expect("encode");
        let mut r = Responder::new(text("ok"), Some(Framing::LengthPrefix)).close_after(1);
        for byte in &wire[..wire.len() - 1] {
            let response = r.on_read(std::slice::from_ref(byte));
            assert!(response.answers.is_empty() && response.error.is_none());
            assert!(!r.done());
        }
        assert_eq!(r.pending(), wire.len() - 1);
        let response = r.on_read(&wire[wire.len() - 1..]);
        assert_eq!(replies(&response), [b"\x00\x00\x00\x02ok".to_vec()]);
        assert!(r.done());
        assert_eq!(r.pending(), 0);
    }

    #[test]
    fn a_bad_frame_after_good_ones_keeps_their_answers() {
        let mut wire = encode_to_vec(Framing::JsonHeader, b"ok").expect("encode");
        wire.extend_from_slice(b"\x00\x00\x00\x03{x}");
        let mut r = Responder::new(Reply::Nothing, Some(Framing::JsonHeader));
        let response = r.on_read(&wire);
        assert_eq!(response.answers.len(), 1);
        assert!(matches!(
            response.error,
            Some(FramingError::BadHeader { .. })
        ));
    }

    #[test]
    fn a_message_over_the_limit_is_refused_in_its_own_framing() {
        let budget = Budget::new(1 << 20);
        let mut charge = budget.charge();
        let mut r = Responder::new(Reply::Echo, Some(Framing::LengthPrefix)).max_message(1024);
        let taken = r
            .on_read_within(&2048u32.to_be_bytes(), &mut charge)
            .expect("a refusal, not an error");
        let Taken::Refused { reason, frame } = taken else {
            panic!("refused: {taken:?}");
        };
        assert!(reason.ends_with("(--max-message)"), "{reason}");
        assert_eq!(&frame[..4], (frame.len() as u32 - 4).to_be_bytes());
        assert!(frame[4..].starts_with(b"error: frame announces a 2048-byte body"));
        assert_eq!(
            r.error_frame("error: too big"),
            b"\x00\x00\x00\x0eerror: too big"
        );
    }

    #[test]
    fn the_budget_refuses_a_read_it_cannot_hold_and_gives_back_on_drop() {
        let budget = Budget::new(10);
        let mut r = Responder::new(Reply::Echo, Some(Framing::LengthPrefix));
        {
            let mut charge = budget.charge();
            // 4 bytes of prefix announcing 100 bytes: held until whole.
            let taken = r.on_read_within(&100u32.to_be_bytes(), &mut charge);
            assert!(matches!(taken, Ok(Taken::Answered(_))), "{taken:?}");
            assert!(budget.held() > 0);
            let taken = r.on_read_within(&[0u8; 8], &mut charge).expect("taken");
            let Taken::Refused { reason, .. } = taken else {
                panic!("refused: {taken:?}");
            };
            assert!(reason.contains("memory budget"), "{reason}");
        }
        assert_eq!(budget.held(), 0);
    }
}
