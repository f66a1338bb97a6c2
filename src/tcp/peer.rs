//! The peer's RFC 9293 state, inferred from the segments it sent and the
//! segments that reached it: what the narration shows for the end whose
//! state machine synack cannot read (the lab's kernel server, any server
//! of `synack connect`).
//!
//! Pure: segments in, transitions out. Each call returns the transitions
//! that segment caused, so a row shows the change it caused and no other
//! (the kernel's sock_diag answer is a later sample: a cross-check only).
//! The rules are RFC 9293 §3.10.7's, as far as the wire shows them; the
//! same rules `inspect` follows for both ends of a capture.

use super::State;
use crate::wire::{SegmentRepr, SeqNumber};

/// One end's state as the segments show it.
#[derive(Clone, Debug)]
pub struct PeerModel {
    /// `None`: not known yet (a server of `synack connect` before it
    /// answered: listening, or nothing there).
    state: Option<State>,
    /// Its ISN (its SYN or SYN-ACK).
    isn: Option<SeqNumber>,
    /// One past the sequence space it has sent.
    snd_max: Option<SeqNumber>,
    /// The sequence number of its FIN.
    fin: Option<SeqNumber>,
    /// What it expects next from the other end (after the other's SYN).
    rcv_nxt: Option<SeqNumber>,
    /// The other end's FIN reached it.
    peer_fin_received: bool,
    /// A SYN reached it while its state was unknown; its answer tells.
    syn_pending: bool,
}

/// What sending a segment did to the end that sent it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sent {
    pub changes: Vec<(State, State)>,
    /// Sequence space it had sent before: a retransmission.
    pub retransmission: bool,
}

impl PeerModel {
    /// An end in `initial` (LISTEN for a server, CLOSED when nothing
    /// listens), or unknown until it answers.
    pub fn new(initial: Option<State>) -> PeerModel {
        PeerModel {
            state: initial,
            isn: None,
            snd_max: None,
            fin: None,
            rcv_nxt: None,
            peer_fin_received: false,
            syn_pending: false,
        }
    }

    /// Its state now (`None` while unknown).
    pub fn state(&self) -> Option<State> {
        self.state
    }

    /// It has sent a FIN.
    pub fn sent_fin(&self) -> bool {
        self.fin.is_some()
    }

    fn go(&mut self, to: State, changes: &mut Vec<(State, State)>) {
        if let Some(from) = self.state {
            if from != to {
                changes.push((from, to));
            }
        }
        self.state = Some(to);
    }

    /// It sent `seg`: the transitions sending it caused (RFC 9293 §3.10.4
    /// CLOSE, §3.10.7 answers).
    pub fn sent(&mut self, seg: &SegmentRepr) -> Sent {
        let mut changes = Vec::new();
        let f = seg.flags;
        let end = seg.seq + seg.seq_len();
        let retransmission = seg.seq_len() > 0
            && self
                .snd_max
                .is_some_and(|max| end <= max && !(f.syn() && self.isn != Some(seg.seq)));
        if seg.seq_len() > 0 {
            self.snd_max = Some(self.snd_max.map_or(end, |max| max.max(end)));
        }
        if f.rst() {
            match self.state {
                // A listener (or nothing) answering: it stays as it was;
                // nothing listened when its state was not known yet.
                None => self.state = Some(State::Closed),
                Some(State::Listen | State::Closed) => {}
                Some(_) => self.go(State::Closed, &mut changes),
            }
            self.syn_pending = false;
            return Sent {
                changes,
                retransmission: false,
            };
        }
        if f.syn() {
            self.isn.get_or_insert(seg.seq);
            match self.state {
                // Its answer shows it listened when the SYN arrived.
                None if self.syn_pending => {
                    self.state = Some(State::Listen);
                    self.go(State::SynReceived, &mut changes);
                }
                None if !f.ack() => {
                    self.state = Some(State::Closed);
                    self.go(State::SynSent, &mut changes);
                }
                Some(State::Closed) if !f.ack() => self.go(State::SynSent, &mut changes),
                // A SYN-ACK crossing its own SYN (simultaneous open).
                Some(State::SynSent) if f.ack() => self.go(State::SynReceived, &mut changes),
                _ => {}
            }
            self.syn_pending = false;
        }
        if f.fin() && !retransmission {
            self.fin.get_or_insert(seg.seq + seg.payload.len());
            match self.state {
                // §3.10.4: CLOSE in ESTABLISHED or SYN-RECEIVED sends FIN
                // and enters FIN-WAIT-1; in CLOSE-WAIT, LAST-ACK.
                Some(State::Established | State::SynReceived) => {
                    self.go(State::FinWait1, &mut changes)
                }
                Some(State::CloseWait) => self.go(State::LastAck, &mut changes),
                _ => {}
            }
        }
        Sent {
            changes,
            retransmission,
        }
    }

    /// `seg`, from the other end, reached its TCP: the transitions it
    /// caused (RFC 9293 §3.10.7).
    pub fn received(&mut self, seg: &SegmentRepr) -> Vec<(State, State)> {
        let mut changes = Vec::new();
        let f = seg.flags;
        let Some(state) = self.state else {
            if f.syn() && !f.ack() {
                // Listening or not: its answer will tell.
                self.syn_pending = true;
                self.rcv_nxt = Some(seg.seq + 1);
            }
            return changes;
        };
        match state {
            // §3.10.7.1: a closed port answers, and stays closed.
            State::Closed => return changes,
            // §3.10.7.2: a RST is ignored, a SYN is taken.
            State::Listen => {
                if f.syn() && !f.ack() && !f.rst() {
                    self.rcv_nxt = Some(seg.seq + 1);
                    self.go(State::SynReceived, &mut changes);
                }
                return changes;
            }
            State::SynSent => {
                if f.rst() && f.ack() {
                    self.go(State::Closed, &mut changes);
                } else if f.syn() {
                    self.rcv_nxt = Some(seg.seq + 1);
                    let acks_syn = f.ack() && self.isn.is_some_and(|isn| seg.ack > isn);
                    let to = if acks_syn {
                        State::Established
                    } else {
                        State::SynReceived
                    };
                    self.go(to, &mut changes);
                }
                return changes;
            }
            _ => {}
        }
        if f.rst() {
            // §3.10.7.4 second: from SYN-RECEIVED of a passive open back
            // to LISTEN; from the other states to CLOSED.
            let to = if state == State::SynReceived {
                State::Listen
            } else {
                State::Closed
            };
            self.go(to, &mut changes);
            return changes;
        }
        if f.syn() {
            // A SYN again (a retransmission): answered, no change.
            return changes;
        }
        if !f.ack() {
            return changes;
        }
        // Fifth, the ACK field.
        if state == State::SynReceived && self.isn.is_some_and(|isn| seg.ack > isn) {
            self.go(State::Established, &mut changes);
        }
        let acks_fin = self.fin.is_some_and(|fin| seg.ack > fin);
        if acks_fin {
            match self.state {
                Some(State::FinWait1) => self.go(State::FinWait2, &mut changes),
                Some(State::Closing) => self.go(State::TimeWait, &mut changes),
                Some(State::LastAck) => self.go(State::Closed, &mut changes),
                _ => {}
            }
        }
        // Seventh, the text: in order, it moves what it expects next.
        let in_order = self.rcv_nxt.is_none_or(|nxt| seg.seq <= nxt);
        if in_order {
            let end = seg.seq + seg.payload.len();
            if let Some(nxt) = self.rcv_nxt {
                self.rcv_nxt = Some(nxt.max(end));
            }
        }
        // Eighth, the FIN: only when everything before it arrived.
        let fin_at = seg.seq + seg.payload.len();
        let fin_in_order = self.rcv_nxt.is_none_or(|nxt| fin_at == nxt);
        if f.fin() && in_order && fin_in_order && !self.peer_fin_received {
            self.peer_fin_received = true;
            self.rcv_nxt = Some(fin_at + 1);
            match self.state {
                Some(State::SynReceived | State::Established) => {
                    self.go(State::CloseWait, &mut changes)
                }
                // Its own FIN not yet acknowledged: the FINs crossed.
                Some(State::FinWait1) => self.go(State::Closing, &mut changes),
                Some(State::FinWait2) => self.go(State::TimeWait, &mut changes),
                _ => {}
            }
        }
        changes
    }

    /// The 2·MSL timer expired in TIME-WAIT (§3.10.8).
    pub fn time_wait_ended(&mut self) -> Vec<(State, State)> {
        let mut changes = Vec::new();
        if self.state == Some(State::TimeWait) {
            self.go(State::Closed, &mut changes);
        }
        changes
    }
}

/// Whether the kernel's sampled state is one the wire has not shown yet
/// because the application already called `close()` (its FIN is still to
/// leave): ESTABLISHED → FIN-WAIT-1, CLOSE-WAIT → LAST-ACK.
pub fn closed_ahead_of_wire(model: Option<State>, kernel: Option<State>) -> bool {
    matches!(
        (model, kernel),
        (Some(State::Established), Some(State::FinWait1))
            | (Some(State::CloseWait), Some(State::LastAck))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Flags, TcpOptions};
    use State::*;

    fn seg(flags: Flags, seq: u32, ack: u32, len: usize) -> SegmentRepr {
        SegmentRepr {
            src_port: 1,
            dst_port: 2,
            seq: SeqNumber(seq),
            ack: SeqNumber(ack),
            flags,
            window: 100,
            options: TcpOptions::default(),
            payload: vec![b'x'; len],
        }
    }

    const FIN_ACK: Flags = Flags::FIN_ACK;

    /// A server: SYN in, SYN-ACK out, the handshake's ACK in.
    fn established() -> PeerModel {
        let mut s = PeerModel::new(Some(Listen));
        assert_eq!(
            s.received(&seg(Flags::SYN, 100, 0, 0)),
            [(Listen, SynReceived)]
        );
        assert!(s.sent(&seg(Flags::SYN_ACK, 500, 101, 0)).changes.is_empty());
        assert_eq!(
            s.received(&seg(Flags::ACK, 101, 501, 0)),
            [(SynReceived, Established)]
        );
        s
    }

    #[test]
    fn a_listener_goes_through_the_handshake_on_the_rows_that_cause_it() {
        let s = established();
        assert_eq!(s.state(), Some(Established));
    }

    #[test]
    fn passive_close_fin_in_then_fin_out_then_last_ack() {
        let mut s = established();
        assert_eq!(
            s.received(&seg(FIN_ACK, 101, 501, 0)),
            [(Established, CloseWait)]
        );
        // Its bare ACK of our FIN changes nothing: it is not in LAST-ACK
        // before it sent a FIN.
        assert!(s.sent(&seg(Flags::ACK, 501, 102, 0)).changes.is_empty());
        assert_eq!(s.state(), Some(CloseWait));
        assert_eq!(
            s.sent(&seg(FIN_ACK, 501, 102, 0)).changes,
            [(CloseWait, LastAck)]
        );
        assert_eq!(
            s.received(&seg(Flags::ACK, 102, 502, 0)),
            [(LastAck, Closed)]
        );
    }

    #[test]
    fn active_close_walks_fin_wait_to_time_wait() {
        let mut s = established();
        assert!(s
            .sent(&seg(Flags::PSH_ACK, 501, 101, 13))
            .changes
            .is_empty());
        assert_eq!(
            s.sent(&seg(FIN_ACK, 514, 101, 0)).changes,
            [(Established, FinWait1)]
        );
        assert_eq!(
            s.received(&seg(Flags::ACK, 101, 515, 0)),
            [(FinWait1, FinWait2)]
        );
        assert_eq!(
            s.received(&seg(FIN_ACK, 101, 515, 0)),
            [(FinWait2, TimeWait)]
        );
        // Its FIN again from the peer's LAST-ACK: no change.
        assert!(s.received(&seg(FIN_ACK, 101, 515, 0)).is_empty());
        assert_eq!(s.time_wait_ended(), [(TimeWait, Closed)]);
    }

    #[test]
    fn a_fin_ack_that_acknowledges_our_fin_goes_through_fin_wait_2() {
        let mut s = established();
        s.sent(&seg(FIN_ACK, 501, 101, 0));
        assert_eq!(
            s.received(&seg(FIN_ACK, 101, 502, 0)),
            [(FinWait1, FinWait2), (FinWait2, TimeWait)]
        );
    }

    #[test]
    fn crossing_fins_go_through_closing() {
        let mut s = established();
        s.sent(&seg(FIN_ACK, 501, 101, 0));
        assert_eq!(
            s.received(&seg(FIN_ACK, 101, 501, 0)),
            [(FinWait1, Closing)]
        );
        assert_eq!(
            s.received(&seg(Flags::ACK, 102, 502, 0)),
            [(Closing, TimeWait)]
        );
    }

    #[test]
    fn a_retransmitted_fin_changes_nothing_and_is_told() {
        let mut s = established();
        s.received(&seg(FIN_ACK, 101, 501, 0));
        s.sent(&seg(FIN_ACK, 501, 102, 0));
        let again = s.sent(&seg(FIN_ACK, 501, 102, 0));
        assert!(again.changes.is_empty());
        assert!(again.retransmission);
    }

    #[test]
    fn resets_close_it_and_a_refusing_port_stays_closed() {
        let mut s = established();
        assert_eq!(
            s.received(&seg(Flags::RST, 101, 0, 0)),
            [(Established, Closed)]
        );
        let mut refused = PeerModel::new(Some(Closed));
        assert!(refused.received(&seg(Flags::SYN, 100, 0, 0)).is_empty());
        assert!(refused
            .sent(&seg(Flags::RST_ACK, 0, 101, 0))
            .changes
            .is_empty());
        assert_eq!(refused.state(), Some(Closed));
        let mut aborts = established();
        assert_eq!(
            aborts.sent(&seg(Flags::RST_ACK, 501, 101, 0)).changes,
            [(Established, Closed)]
        );
    }

    #[test]
    fn an_unknown_server_shows_it_listened_when_it_answers() {
        let mut s = PeerModel::new(None);
        assert!(s.received(&seg(Flags::SYN, 100, 0, 0)).is_empty());
        assert_eq!(s.state(), None);
        assert_eq!(
            s.sent(&seg(Flags::SYN_ACK, 500, 101, 0)).changes,
            [(Listen, SynReceived)]
        );
        let mut closed = PeerModel::new(None);
        closed.received(&seg(Flags::SYN, 100, 0, 0));
        assert!(closed
            .sent(&seg(Flags::RST_ACK, 0, 101, 0))
            .changes
            .is_empty());
        assert_eq!(closed.state(), Some(Closed));
    }

    #[test]
    fn a_fin_after_a_hole_waits_for_the_hole() {
        let mut s = established();
        // Bytes 101..106 never arrived: the FIN at 106 is out of order.
        assert!(s.received(&seg(FIN_ACK, 106, 501, 0)).is_empty());
        assert!(s.received(&seg(Flags::PSH_ACK, 101, 501, 5)).is_empty());
        assert_eq!(
            s.received(&seg(FIN_ACK, 106, 501, 0)),
            [(Established, CloseWait)]
        );
    }

    #[test]
    fn the_kernel_ahead_of_the_wire_is_the_application_closing() {
        assert!(closed_ahead_of_wire(Some(CloseWait), Some(LastAck)));
        assert!(closed_ahead_of_wire(Some(Established), Some(FinWait1)));
        assert!(!closed_ahead_of_wire(Some(Established), Some(Established)));
        assert!(!closed_ahead_of_wire(Some(SynReceived), Some(Established)));
    }
}
