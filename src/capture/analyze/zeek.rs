//! Zeek's view of a TCP connection: the endpoint states behind
//! `conn_state`, and the `history` letters, computed the way Zeek's
//! documentation (`base/protocols/conn/main.zeek`) describes them.
//!
//! Pure. Letters are recorded per physical direction and cased at the end,
//! once the originator (synack's client) is known.

/// Zeek's TCP endpoint states (`TCP_ENDPOINT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EndpointState {
    #[default]
    Inactive,
    SynSent,
    SynAckSent,
    Partial,
    Established,
    Closed,
    Reset,
}

/// Updates the sender's (and maybe the peer's) state for one segment.
pub fn on_segment(
    sender: &mut EndpointState,
    peer: &mut EndpointState,
    syn: bool,
    ack: bool,
    fin: bool,
    rst: bool,
) {
    use EndpointState::*;
    if rst {
        *sender = Reset;
        return;
    }
    if syn {
        match (*sender, ack) {
            (Inactive | Partial, false) => *sender = SynSent,
            (Inactive | Partial | SynSent, true) => *sender = SynAckSent,
            _ => {}
        }
    }
    if fin {
        if *sender != Reset {
            *sender = Closed;
        }
        return;
    }
    if !syn {
        match (*sender, *peer) {
            // The originator's ACK of the SYN-ACK (or data after it)
            // establishes both ends.
            (SynSent, SynAckSent) | (SynAckSent, SynSent) => {
                *sender = Established;
                *peer = Established;
            }
            (SynAckSent, Established) | (SynSent, Established) => *sender = Established,
            (Inactive, _) => *sender = Partial,
            _ => {}
        }
    }
}

/// The letters of `history` (originator's case: upper).
pub mod letter {
    pub const SYN: u8 = b'S';
    pub const SYN_ACK: u8 = b'H';
    pub const PURE_ACK: u8 = b'A';
    pub const DATA: u8 = b'D';
    pub const FIN: u8 = b'F';
    pub const RST: u8 = b'R';
    pub const BAD_CHECKSUM: u8 = b'C';
    pub const GAP: u8 = b'G';
    pub const RETRANSMISSION: u8 = b'T';
    pub const ZERO_WINDOW: u8 = b'W';
    pub const INCONSISTENT: u8 = b'I';
    pub const MULTI_FLAG: u8 = b'Q';
}

/// At most this many letters are kept (Zeek's own strings are short too).
pub const MAX_HISTORY: usize = 64;

/// The history of one connection, per physical direction.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// (letter, direction index) in order of occurrence.
    events: Vec<(u8, u8)>,
    /// A/D/I/Q: recorded once per direction.
    once: [u16; 2],
    /// S/H/F/R: the sequence number of the last one recorded.
    last_seq: [[Option<u32>; 4]; 2],
    /// C/G/T/W: how many seen, recorded at 1, 10, 100, …
    counts: [[u64; 4]; 2],
}

impl History {
    fn push(&mut self, letter: u8, dir: usize) {
        if self.events.len() < MAX_HISTORY {
            self.events.push((letter, dir as u8));
        }
    }

    /// A letter recorded at most once per direction.
    pub fn once(&mut self, letter: u8, dir: usize) {
        let bit = match letter {
            letter::PURE_ACK => 1,
            letter::DATA => 2,
            letter::INCONSISTENT => 4,
            letter::MULTI_FLAG => 8,
            _ => 16,
        };
        if self.once[dir] & bit == 0 {
            self.once[dir] |= bit;
            self.push(letter, dir);
        }
    }

    /// S/H/F/R: again only when the sequence number differs.
    pub fn with_seq(&mut self, letter: u8, dir: usize, seq: u32) {
        let slot = match letter {
            letter::SYN => 0,
            letter::SYN_ACK => 1,
            letter::FIN => 2,
            _ => 3,
        };
        if self.last_seq[dir][slot] != Some(seq) {
            self.last_seq[dir][slot] = Some(seq);
            self.push(letter, dir);
        }
    }

    /// C/G/T/W: at the 1st, 10th, 100th, … occurrence.
    pub fn logarithmic(&mut self, letter: u8, dir: usize) {
        let slot = match letter {
            letter::BAD_CHECKSUM => 0,
            letter::GAP => 1,
            letter::RETRANSMISSION => 2,
            _ => 3,
        };
        let count = &mut self.counts[dir][slot];
        *count += 1;
        let n = *count;
        let mut power = 1u64;
        while power < n {
            power = power.saturating_mul(10);
        }
        if power == n {
            self.push(letter, dir);
        }
    }

    /// The history string with `orig` (0 or 1) in upper case, prefixed with
    /// `^` when Zeek would have flipped the direction.
    pub fn render(&self, orig: usize, flipped: bool) -> String {
        let mut out = String::with_capacity(self.events.len() + 1);
        if flipped {
            out.push('^');
        }
        for (letter, dir) in &self.events {
            let c = char::from(*letter);
            out.push(if usize::from(*dir) == orig {
                c
            } else {
                c.to_ascii_lowercase()
            });
        }
        out
    }
}

/// Zeek's `conn_state` from both endpoint states, the payload sizes and
/// the history (`base/protocols/conn/main.zeek`, `conn_state()`).
pub fn conn_state(
    orig: EndpointState,
    resp: EndpointState,
    orig_size: u64,
    resp_size: u64,
    history: &str,
) -> &'static str {
    use EndpointState::*;
    let o_inactive = matches!(orig, Inactive | Partial);
    let r_inactive = matches!(resp, Inactive | Partial);
    if resp == Reset {
        if matches!(orig, SynSent | SynAckSent)
            || (orig == Reset && orig_size == 0 && resp_size == 0)
        {
            "REJ"
        } else if o_inactive {
            "RSTRH"
        } else {
            "RSTR"
        }
    } else if orig == Reset {
        if r_inactive {
            if is_rstos0_history(history) {
                "RSTOS0"
            } else {
                "OTH"
            }
        } else {
            "RSTO"
        }
    } else if resp == Closed && orig == Closed {
        "SF"
    } else if orig == Closed {
        if r_inactive {
            "SH"
        } else {
            "S2"
        }
    } else if resp == Closed {
        if o_inactive {
            "SHR"
        } else {
            "S3"
        }
    } else if orig == SynSent && resp == Inactive {
        "S0"
    } else if orig == Established && resp == Established {
        "S1"
    } else {
        "OTH"
    }
}

/// Zeek's `/\^?S[^HAFGIQ]*R.*/`: a SYN, then a RST before any of H A F G I Q.
fn is_rstos0_history(history: &str) -> bool {
    let rest = history.strip_prefix('^').unwrap_or(history);
    let Some(rest) = rest.strip_prefix('S') else {
        return false;
    };
    for c in rest.chars() {
        match c {
            'R' => return true,
            'H' | 'A' | 'F' | 'G' | 'I' | 'Q' => return false,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use EndpointState::*;

    #[test]
    fn a_full_connection_is_sf() {
        let (mut o, mut r) = (Inactive, Inactive);
        on_segment(&mut o, &mut r, true, false, false, false);
        on_segment(&mut r, &mut o, true, true, false, false);
        on_segment(&mut o, &mut r, false, true, false, false);
        assert_eq!((o, r), (Established, Established));
        assert_eq!(conn_state(o, r, 5, 5, "ShAD"), "S1");
        on_segment(&mut o, &mut r, false, true, true, false);
        assert_eq!(conn_state(o, r, 5, 5, "ShADF"), "S2");
        on_segment(&mut r, &mut o, false, true, true, false);
        assert_eq!(conn_state(o, r, 5, 5, "ShADFf"), "SF");
    }

    #[test]
    fn refused_and_unanswered() {
        let (mut o, mut r) = (Inactive, Inactive);
        on_segment(&mut o, &mut r, true, false, false, false);
        assert_eq!(conn_state(o, r, 0, 0, "S"), "S0");
        on_segment(&mut r, &mut o, false, true, false, true);
        assert_eq!(conn_state(o, r, 0, 0, "Sr"), "REJ");
        assert_eq!(conn_state(Reset, Inactive, 0, 0, "SR"), "RSTOS0");
        assert_eq!(conn_state(Partial, Partial, 3, 3, "^Dd"), "OTH");
    }

    #[test]
    fn letters_are_recorded_once_by_seq_or_logarithmically() {
        let mut h = History::default();
        h.with_seq(letter::SYN, 0, 7);
        h.with_seq(letter::SYN, 0, 7);
        h.with_seq(letter::SYN_ACK, 1, 9);
        h.once(letter::PURE_ACK, 0);
        h.once(letter::PURE_ACK, 0);
        for _ in 0..10 {
            h.logarithmic(letter::RETRANSMISSION, 1);
        }
        assert_eq!(h.render(0, false), "ShAtt");
        assert_eq!(h.render(1, true), "^sHaTT");
        assert!(is_rstos0_history("SR"));
        assert!(is_rstos0_history("^SdR"));
        assert!(is_rstos0_history("ShR"));
        assert!(!is_rstos0_history("SAR"));
    }
}
