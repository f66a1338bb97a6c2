//! What each segment of a lab run is and what it did, in words: the
//! pcapng packet comment (`--pcapng`) and the plain-language sentence with
//! its RFC 9293 section (`--explain`).
//!
//! Pure: narration events in, strings out. Everything is derived from the
//! generic data of a [`SegmentLine`] (flags, relative seq/ack, length, the
//! client's state changes, the server's observed state, the client's note)
//! plus what a [`Narrator`] remembers of the segments before it (who sent
//! which FIN, the highest sequence number each side sent, each side's last
//! acknowledgment). So a scenario this module has never heard of still gets
//! a sensible text: retransmissions, duplicate ACKs and RSTs are recognised
//! from the numbers, not from the scenario.

use std::fmt::Write as _;

use crate::client::{Direction, Note, Received, What};
use crate::report::{self, DatagramLine, NotePart, SegmentLine};
use crate::tcp::{SendReason, State};
use crate::wire::{ArpOp, Ipv6Repr, NdpRepr, SeqNumber};

/// Who sent a segment.
fn sender(dir: Direction) -> &'static str {
    match dir {
        Direction::ClientToServer => "client",
        Direction::ServerToClient => "server",
    }
}

/// Who received it.
fn receiver(dir: Direction) -> &'static str {
    match dir {
        Direction::ClientToServer => "server",
        Direction::ServerToClient => "client",
    }
}

fn index(dir: Direction) -> usize {
    match dir {
        Direction::ClientToServer => 0,
        Direction::ServerToClient => 1,
    }
}

/// What a segment's acknowledgment number acknowledged that the sender had
/// not acknowledged before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// No ACK flag.
    None,
    /// The peer's SYN (ISN+1).
    Syn,
    /// `n` new bytes of the peer's data.
    Data(u32),
    /// The peer's FIN (and any data before it).
    Fin,
    /// Nothing new: the same acknowledgment as before.
    Same,
}

/// What the segments before this one tell about it: the states on both
/// sides before it, and what its numbers mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    /// The client's state before the segment.
    pub client_before: State,
    /// The server socket's state before it, as last observed (None when
    /// the kernel's view is off).
    pub server_before: Option<State>,
    /// It carries sequence space (data, SYN or FIN) its sender had already
    /// sent.
    pub retransmission: bool,
    pub acks: Acks,
    /// A pure ACK that repeats the sender's last one, window and all.
    pub duplicate_ack: bool,
    /// A pure ACK that repeats the sender's last acknowledgment with
    /// another window.
    pub window_update: bool,
    /// The other side's FIN came before this segment.
    pub peer_fin_seen: bool,
}

impl Context {
    /// The client's state after the segment.
    fn client_after(seg: &SegmentLine) -> State {
        seg.client.last().map_or(seg.client_state, |(_, to)| *to)
    }
}

/// Per-direction memory of a run.
#[derive(Clone, Copy, Debug, Default)]
struct Side {
    /// One past the highest relative sequence number sent (SYN and FIN
    /// count one each).
    next: Option<u32>,
    /// The relative sequence number of this side's FIN.
    fin: Option<u32>,
    /// The last acknowledgment sent (relative) and the window with it.
    last_ack: Option<(u32, u16)>,
}

/// Follows a run segment by segment and gives each its [`Context`].
#[derive(Clone, Debug)]
pub struct Narrator {
    sides: [Side; 2],
    client_state: State,
    server_state: Option<State>,
}

impl Default for Narrator {
    fn default() -> Self {
        Narrator::new()
    }
}

/// `a < b` for relative sequence numbers (wrapping, RFC 9293 §3.4).
fn seq_lt(a: u32, b: u32) -> bool {
    SeqNumber(a) < SeqNumber(b)
}

impl Narrator {
    pub fn new() -> Narrator {
        Narrator {
            sides: [Side::default(); 2],
            client_state: State::Closed,
            server_state: None,
        }
    }

    /// The context of `seg`, and remembers it for the next segments.
    pub fn step(&mut self, seg: &SegmentLine) -> Context {
        let me = index(seg.dir);
        let peer = 1 - me;
        let seq_len = seg.len as u32 + u32::from(seg.flags.syn()) + u32::from(seg.flags.fin());
        let end = seg.seq_rel.wrapping_add(seq_len);
        let retransmission = seq_len > 0
            && self.sides[me]
                .next
                .is_some_and(|next| seq_lt(seg.seq_rel, next));

        let acks = match seg.ack_rel {
            None => Acks::None,
            Some(ack) => {
                let before = self.sides[me].last_ack.map(|(a, _)| a);
                let new = before.is_none_or(|b| seq_lt(b, ack));
                let peer_fin = self.sides[peer].fin;
                if !new {
                    Acks::Same
                } else if peer_fin.is_some_and(|f| ack == f.wrapping_add(1)) {
                    Acks::Fin
                } else if ack == 1 && before.is_none() {
                    Acks::Syn
                } else {
                    Acks::Data(ack.wrapping_sub(before.unwrap_or(1)))
                }
            }
        };
        let pure_ack = seq_len == 0 && !seg.flags.rst() && seg.flags.ack();
        let last = self.sides[me].last_ack;
        let duplicate_ack =
            pure_ack && acks == Acks::Same && last.is_some_and(|(_, w)| w == seg.win);
        let window_update =
            pure_ack && acks == Acks::Same && last.is_some_and(|(_, w)| w != seg.win);

        let ctx = Context {
            client_before: seg
                .client
                .first()
                .map_or(self.client_state, |(from, _)| *from),
            server_before: self.server_state,
            retransmission,
            acks,
            duplicate_ack,
            window_update,
            peer_fin_seen: self.sides[peer].fin.is_some(),
        };

        let side = &mut self.sides[me];
        if side.next.is_none_or(|next| seq_lt(next, end)) {
            side.next = Some(end);
        }
        if seg.flags.fin() {
            side.fin
                .get_or_insert(seg.seq_rel.wrapping_add(seg.len as u32));
        }
        if let Some(ack) = seg.ack_rel {
            side.last_ack = Some((ack, seg.win));
        }
        self.client_state = Context::client_after(seg);
        if seg.server_state.is_some() {
            self.server_state = seg.server_state;
        }
        ctx
    }
}

/// The parts of the client's note that say more than the flags do:
/// "ignored: …", "challenge ACK", a scenario's own words ("dropped on
/// purpose …"). Parts that only name the segment ("data", "FIN: active
/// close", "retransmission #2") are left out.
fn informative_note(note: &Note) -> Option<String> {
    let kept: Vec<String> = informative_parts(note).map(|part| part.text).collect();
    (!kept.is_empty()).then(|| kept.join("; "))
}

fn informative_parts(note: &Note) -> impl Iterator<Item = NotePart> {
    report::note_parts(note)
        .into_iter()
        .filter(|part| !part.plain)
}

/// What the segment carries, in a few words: "the SYN", "5 bytes (seq
/// 1–5)", "the FIN".
fn what(seg: &SegmentLine) -> String {
    let who = sender(seg.dir);
    if seg.flags.syn() && seg.flags.ack() {
        format!("the {who}'s SYN-ACK")
    } else if seg.flags.syn() {
        format!("the {who}'s SYN")
    } else if seg.len > 0 {
        let last = seg.seq_rel.wrapping_add(seg.len as u32 - 1);
        let fin = if seg.flags.fin() { " and FIN" } else { "" };
        format!(
            "{} bytes of the {who}'s data (seq {}–{last}){fin}",
            seg.len, seg.seq_rel
        )
    } else if seg.flags.fin() {
        format!("the {who}'s FIN")
    } else {
        format!("the {who}'s segment")
    }
}

/// The same from the sender's side: "its SYN", "its 5 bytes of data (seq
/// 1–5)", "its FIN".
fn what_own(seg: &SegmentLine) -> String {
    if seg.flags.syn() && seg.flags.ack() {
        "its SYN-ACK".into()
    } else if seg.flags.syn() {
        "its SYN".into()
    } else if seg.len > 0 {
        let last = seg.seq_rel.wrapping_add(seg.len as u32 - 1);
        let fin = if seg.flags.fin() { " and its FIN" } else { "" };
        format!(
            "its {} bytes of data (seq {}–{last}){fin}",
            seg.len, seg.seq_rel
        )
    } else if seg.flags.fin() {
        "its FIN".into()
    } else {
        "its segment".into()
    }
}

fn acks_text(seg: &SegmentLine, acks: Acks) -> Option<String> {
    let peer = receiver(seg.dir);
    Some(match acks {
        Acks::None | Acks::Same => return None,
        Acks::Syn => format!("acks the {peer}'s ISN+1"),
        Acks::Data(n) => format!(
            "acks {n} byte{} of the {peer}'s data (ack {})",
            if n == 1 { "" } else { "s" },
            seg.ack_rel.unwrap_or(0)
        ),
        Acks::Fin => format!("acks the {peer}'s FIN"),
    })
}

/// The pcapng comment of one segment: what it is, what it did, the states
/// on both sides. Example: `SYN-ACK: server ISN 0x9c3a…, acks the client's
/// ISN+1; client SYN-SENT → ESTABLISHED; server SYN-RECEIVED`.
pub fn comment(seg: &SegmentLine, ctx: &Context) -> String {
    let who = sender(seg.dir);
    let peer = receiver(seg.dir);
    let mut parts: Vec<String> = Vec::new();
    let flags = seg.flags;
    // An ACK that acknowledges nothing new reads "ACK from the client".
    let mut bare_ack = false;
    let (name, rest): (&str, String) = if flags.rst() {
        let name = if flags.ack() { "RST+ACK" } else { "RST" };
        if seg.dir == Direction::ServerToClient && ctx.client_before == State::SynSent {
            (
                name,
                "the server refuses the SYN (no socket listens on the port)".into(),
            )
        } else {
            (name, format!("the {who} resets the connection"))
        }
    } else if flags.syn() {
        let name = if flags.ack() { "SYN-ACK" } else { "SYN" };
        let mut text = format!("{who} ISN 0x{:08x}", seg.seq);
        if flags.ack() && ctx.acks == Acks::Syn {
            let _ = write!(text, ", acks the {peer}'s ISN+1");
        }
        if !seg.options.is_empty() {
            let verb = if flags.ack() { "answers" } else { "offers" };
            let _ = write!(text, ", {verb} {}", options_words(seg));
        }
        (name, text)
    } else if seg.len > 0 {
        let name = if flags.fin() { "data+FIN" } else { "data" };
        let last = seg.seq_rel.wrapping_add(seg.len as u32 - 1);
        let mut text = format!(
            "{} bytes from the {who}, seq {}–{last}",
            seg.len, seg.seq_rel
        );
        if flags.psh() {
            text.push_str(" (PSH: deliver at once)");
        }
        (name, text)
    } else if flags.fin() {
        (
            "FIN",
            format!("the {who} closes its sending side (seq {})", seg.seq_rel),
        )
    } else if ctx.duplicate_ack {
        (
            "duplicate ACK",
            format!("the {who} repeats ack {}", seg.ack_rel.unwrap_or(0)),
        )
    } else if ctx.window_update {
        (
            "window update",
            format!("the {who} now offers window {}", seg.win),
        )
    } else {
        match acks_text(seg, ctx.acks) {
            Some(acks) => ("ACK", acks),
            None => {
                bare_ack = true;
                ("ACK", format!("from the {who}"))
            }
        }
    };
    let head = if ctx.retransmission {
        // Numbered only for the bare reason: an RTO retransmission's note
        // (`What::Retransmission`) says its number in its own part, as
        // the comments have always shown it.
        let nth = match seg.note.what {
            What::Sent(SendReason::Retransmission { attempt }) => format!(" #{attempt}"),
            _ => String::new(),
        };
        format!("retransmission{nth} of {}: {rest}", what(seg))
    } else if bare_ack {
        format!("ACK {rest}")
    } else {
        format!("{name}: {rest}")
    };
    parts.push(head);
    if (flags.fin() || seg.len != 0) && !flags.rst() && !flags.syn() {
        if let Some(acks) = acks_text(seg, ctx.acks) {
            parts[0].push_str(", ");
            parts[0].push_str(&acks);
        }
    }
    parts.push(client_states(seg, ctx));
    if let Some(server) = server_states(seg, ctx) {
        parts.push(server);
    }
    if !seg.checksums_ok {
        parts.push("bad checksum".into());
    }
    if let Some(note) = informative_note(&seg.note) {
        parts.push(note);
    }
    parts.join("; ")
}

fn options_words(seg: &SegmentLine) -> String {
    let o = &seg.options;
    let mut words = Vec::new();
    if let Some(mss) = o.mss {
        words.push(format!("MSS {mss}"));
    }
    if o.sack_permitted {
        words.push("SACK".to_string());
    }
    if o.timestamps.is_some() {
        words.push("timestamps".to_string());
    }
    if let Some(ws) = o.wscale {
        words.push(format!("window scale {ws}"));
    }
    words.join(", ")
}

fn client_states(seg: &SegmentLine, ctx: &Context) -> String {
    if seg.client.is_empty() {
        return format!("client {}", seg.client_state);
    }
    let mut text = format!("client {}", ctx.client_before);
    for (_, to) in &seg.client {
        let _ = write!(text, " → {to}");
    }
    text
}

fn server_states(seg: &SegmentLine, ctx: &Context) -> Option<String> {
    let after = seg.server_state?;
    Some(match ctx.server_before {
        Some(before) if before != after => format!("server {before} → {after}"),
        _ => format!("server {after}"),
    })
}

/// A Neighbor Discovery frame in the words of ARP's narration:
/// "who has 2001:2::1? tell 2001:2::2", "2001:2::1 is at 02:…".
pub fn ndp_text(ip: &Ipv6Repr, ndp: &NdpRepr) -> String {
    match ndp {
        NdpRepr::NeighborSolicit { target, .. } => {
            format!("Neighbor Solicitation: who has {target}? tell {}", ip.src)
        }
        NdpRepr::NeighborAdvert {
            target, target_mac, ..
        } => match target_mac {
            Some(mac) => format!("Neighbor Advertisement: {target} is at {mac}"),
            None => format!("Neighbor Advertisement: {target}"),
        },
    }
}

/// The pcapng comment of a Neighbor Discovery frame (`text` as the
/// narration shows it).
pub fn ndp_comment(dir: Direction, ndp: &NdpRepr, text: &str) -> String {
    let solicit = matches!(ndp, NdpRepr::NeighborSolicit { .. });
    match dir {
        Direction::ClientToServer if solicit => format!(
            "{text} (the client needs the server's MAC before it can send; IPv6 asks the \
             target's solicited-node multicast group, RFC 4861 §7.2.2)"
        ),
        Direction::ClientToServer => format!(
            "{text} (no kernel owns the client's address, so synack answers, RFC 4861 §7.2.4)"
        ),
        Direction::ServerToClient if solicit => {
            format!("{text} (the server must find where to send to the client)")
        }
        Direction::ServerToClient => text.to_string(),
    }
}

/// The pcapng comment of an ARP frame (`text` as the narration shows it).
pub fn arp_comment(dir: Direction, op: ArpOp, text: &str) -> String {
    let request = op == ArpOp::Request;
    match dir {
        Direction::ClientToServer if request => format!(
            "ARP request from the client: {text} (the client needs the server's MAC before it can send)"
        ),
        Direction::ClientToServer => {
            format!("ARP reply from the client: {text} (no kernel owns the client's address, so synack answers)")
        }
        Direction::ServerToClient if request => {
            format!("ARP request from the server: {text} (it must find where to send its SYN-ACK)")
        }
        Direction::ServerToClient => format!("ARP reply from the server: {text}"),
    }
}

/// The pcapng comment of a UDP datagram (`--udp`): what it carries, and
/// what UDP leaves out.
pub fn datagram_comment(d: &DatagramLine) -> String {
    let who = sender(d.dir);
    let mut text = format!(
        "UDP datagram #{} from the {who}: {} bytes {:?}, one send() = one datagram; no connection, \
         no sequence or acknowledgment numbers",
        d.number, d.len, d.text
    );
    if !d.checksums_ok {
        text.push_str("; bad checksum");
    }
    text
}

/// The `--explain` sentence of a UDP datagram. UDP is RFC 768, not RFC
/// 9293, so it cites no RFC 9293 section.
pub fn datagram_explain(d: &DatagramLine) -> Explanation {
    let who = sender(d.dir);
    let peer = receiver(d.dir);
    explained(
        format!(
            "The {who} sends datagram #{} ({} bytes) with no handshake before it: the {peer} \
             reads it whole, in one recvfrom(), or never; nothing acknowledges or repeats it \
             (UDP, RFC 768)",
            d.number, d.len
        ),
        &[],
    )
}

/// One sentence and the RFC 9293 sections it follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    pub text: String,
    /// Section numbers without the `§`: `["3.5"]`.
    pub sections: Vec<&'static str>,
}

impl std::fmt::Display for Explanation {
    /// `The SYN opens … (RFC 9293 §3.5).`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.sections.is_empty() {
            return write!(f, "{}.", self.text);
        }
        let sections: Vec<String> = self.sections.iter().map(|s| format!("§{s}")).collect();
        write!(f, "{} (RFC 9293 {}).", self.text, sections.join(", "))
    }
}

fn explained(text: impl Into<String>, sections: &[&'static str]) -> Explanation {
    Explanation {
        text: text.into(),
        sections: sections.to_vec(),
    }
}

/// The plain-language sentence for one segment, from its flags and numbers
/// and the states before and after it on both sides.
pub fn explain(seg: &SegmentLine, ctx: &Context) -> Explanation {
    let mut exp = explain_inner(seg, ctx);
    // A scenario's own words ("dropped on purpose …") follow the sentence;
    // notes that cite the RFC themselves, and RSTs (explained in full
    // already), are left to the comment.
    let ignored = matches!(seg.note.what, What::Received(Received::Ignored(_)));
    let cites_rfc = informative_parts(&seg.note).any(|part| part.cites_rfc);
    if !ignored && !cites_rfc && !seg.flags.rst() {
        if let Some(note) = informative_note(&seg.note) {
            let _ = write!(exp.text, " — {note}");
        }
    }
    exp
}

fn explain_inner(seg: &SegmentLine, ctx: &Context) -> Explanation {
    use State::*;
    let who = sender(seg.dir);
    let peer = receiver(seg.dir);
    let from_client = seg.dir == Direction::ClientToServer;
    let cb = ctx.client_before;
    let ca = Context::client_after(seg);
    let flags = seg.flags;

    // A segment the client's state machine dropped.
    if let What::Received(Received::Ignored(why)) = seg.note.what {
        return explained(
            format!("The client drops this segment without effect: {why}"),
            &["3.10.7.4"],
        );
    }
    if flags.rst() {
        return if !from_client && cb == SynSent {
            explained(
                "No socket listens on the server's port, so its kernel answers the SYN with \
                 RST+ACK and the client gives up: connection refused",
                &["3.10.7.1", "3.5.2", "3.10.7.3"],
            )
        } else if !from_client {
            explained(
                "The server resets the connection: RST ends it at once, with no FIN exchange \
                 and no TIME-WAIT, and the client deletes it",
                &["3.5.3", "3.10.7.4"],
            )
        } else if cb.is_synchronized() && ca == Closed {
            explained(
                "The client aborts: RST ends the connection at once, unsent data is lost and \
                 neither side waits in TIME-WAIT",
                &["3.10.5", "3.5.2"],
            )
        } else {
            explained(
                "The client answers a segment that does not fit its connection with RST",
                &["3.5.2"],
            )
        };
    }
    if from_client && matches!(seg.note.what, What::Sent(SendReason::WindowProbe { .. })) {
        return explained(
            "The server's window is zero and data waits, so when the client's persist timer \
             expires it sends one byte into the closed window: the ACK it draws reports \
             whether the window has opened (the timer backs off after each probe)",
            &["3.8.6.1"],
        );
    }
    let go_back_n = match seg.note.what {
        What::Sent(SendReason::GoBackN { sacked_skipped }) => Some(sacked_skipped),
        _ => None,
    };
    if let (true, true, Some(sacked_skipped)) = (ctx.retransmission, from_client, go_back_n) {
        let skipped = if sacked_skipped > 0 {
            ", leaving out what the server had SACKed"
        } else {
            ""
        };
        return explained(
            format!(
                "The client sends {} again: it was outstanding when the retransmission timer \
                 expired, and the ACK of the first retransmission releases the rest at once \
                 (go-back-N{skipped}) instead of one segment per timeout",
                what_own(seg)
            ),
            &["3.8.1"],
        );
    }
    if ctx.retransmission {
        let taken = if ca != cb {
            format!("; this time the client takes it and is {ca}")
        } else {
            String::new()
        };
        return explained(
            format!(
                "The {who} sends {} again: no acknowledgment came before its retransmission \
                 timer expired{taken}",
                what_own(seg)
            ),
            &["3.8.1"],
        );
    }
    if flags.syn() && !flags.ack() {
        return if from_client {
            explained(
                "The SYN opens the connection and carries the client's initial sequence \
                 number (ISN) and the options it offers",
                &["3.5", "3.4.1"],
            )
        } else {
            explained(
                "The server sends its own SYN: both sides opened at once (simultaneous open)",
                &["3.5"],
            )
        };
    }
    if flags.syn() {
        return if from_client {
            explained(
                "The client answers a SYN with SYN-ACK: a simultaneous open",
                &["3.5"],
            )
        } else if ca == Established {
            explained(
                "The server accepts: its SYN-ACK carries its own ISN and acknowledges the \
                 client's ISN+1, so the client is ESTABLISHED and owes it an ACK",
                &["3.5", "3.10.7.3"],
            )
        } else {
            explained(
                "The server's SYN-ACK carries its ISN and acknowledges the client's SYN",
                &["3.5"],
            )
        };
    }
    if flags.fin() {
        let data = if seg.len > 0 {
            format!("sends its last {} bytes and ", seg.len)
        } else {
            String::new()
        };
        return match (from_client, cb, ca) {
            (true, Established, FinWait1) if ctx.peer_fin_seen => explained(
                format!(
                    "The client {data}closes while the server's FIN is already under way: \
                     the two FINs cross (simultaneous close), and the client waits in \
                     FIN-WAIT-1 for the ACK of its own"
                ),
                &["3.6"],
            ),
            (true, Established, FinWait1) => explained(
                format!(
                    "The client {data}closes first: its FIN says it will send no more data, \
                     takes one sequence number, and the client waits in FIN-WAIT-1 for its ACK"
                ),
                &["3.6"],
            ),
            (true, CloseWait, LastAck) => explained(
                format!(
                    "The client {data}closes its side too, after the server: it waits in \
                     LAST-ACK for the ACK of its FIN"
                ),
                &["3.6"],
            ),
            (false, Established, CloseWait) => explained(
                format!(
                    "The server {data}closes first: the client enters CLOSE-WAIT and may \
                     still send until its application closes"
                ),
                &["3.6", "3.6.1"],
            ),
            (false, FinWait1, TimeWait) if ctx.acks == Acks::Fin => explained(
                "The server's ACK of the client's FIN was delayed and rides on its own FIN: \
                 a three-segment close; the client passes FIN-WAIT-2 and enters TIME-WAIT at once",
                &["3.6", "3.8.6.3"],
            ),
            (false, FinWait2, TimeWait) => explained(
                "The server closes too: the client acknowledges its FIN and waits in TIME-WAIT \
                 (2·MSL) so that a lost last ACK can still be repeated",
                &["3.6"],
            ),
            (false, _, Closing) => explained(
                "The FINs crossed: the server's FIN arrived before the ACK of the client's \
                 own, so the client goes to CLOSING (simultaneous close)",
                &["3.6"],
            ),
            (_, TimeWait, _) => explained(
                format!(
                    "The {who}'s FIN arrives again while the client is in TIME-WAIT; the \
                     client acknowledges it once more"
                ),
                &["3.6", "3.10.7.4"],
            ),
            _ => explained(
                format!("The {who} {data}closes its sending side with FIN"),
                &["3.6"],
            ),
        };
    }
    if seg.len > 0 {
        return if !from_client && matches!(cb, FinWait1 | FinWait2) {
            explained(
                format!(
                    "The server still sends {} bytes after the client's FIN: the connection \
                     is half-closed, and data flows the other way until the server closes",
                    seg.len
                ),
                &["3.6.1"],
            )
        } else {
            let psh = if flags.psh() {
                "; PSH asks the receiver to hand them to its application at once"
            } else {
                ""
            };
            explained(
                format!(
                    "The {who} sends {} bytes of application data, numbered from seq {}{psh}",
                    seg.len, seg.seq_rel
                ),
                &["3.8"],
            )
        };
    }
    // A segment with no sequence space: an ACK.
    if ctx.duplicate_ack {
        return if from_client && cb == TimeWait {
            explained(
                "The client, still in TIME-WAIT, acknowledges the server's FIN again: this is \
                 why TIME-WAIT lasts 2·MSL",
                &["3.6"],
            )
        } else {
            explained(
                format!(
                    "The {who} repeats its last acknowledgment (a duplicate ACK): what arrived \
                     was not the next segment it expected"
                ),
                &["3.10.7.4"],
            )
        };
    }
    if ctx.window_update {
        return explained(
            format!(
                "The {who} acknowledges nothing new but announces another window: a window update"
            ),
            &["3.8.6"],
        );
    }
    match ctx.acks {
        Acks::Syn if from_client => explained(
            "The client's ACK of the server's SYN completes the three-way handshake: both \
             sides are ESTABLISHED",
            &["3.5"],
        ),
        Acks::Syn => explained("The server acknowledges the client's SYN", &["3.5"]),
        Acks::Fin => match (from_client, cb, ca) {
            (false, FinWait1, FinWait2) => explained(
                "The server acknowledges the client's FIN: the client's side is closed and it \
                 waits in FIN-WAIT-2 for the server's own FIN",
                &["3.6"],
            ),
            (false, LastAck, Closed) => explained(
                "The server acknowledges the client's FIN: the connection is closed for the \
                 client; the server closed first, so it is the one holding TIME-WAIT",
                &["3.6"],
            ),
            (false, Closing, TimeWait) => explained(
                "The ACK of the client's FIN ends the simultaneous close: the client goes from \
                 CLOSING to TIME-WAIT",
                &["3.6"],
            ),
            (true, TimeWait, _) if seg.server_state == Some(Closed) => explained(
                "The client acknowledges the server's FIN and stays in TIME-WAIT; on this ACK \
                 the server's socket goes to CLOSED",
                &["3.6"],
            ),
            (true, TimeWait, _) => explained(
                "The client acknowledges the server's FIN and stays in TIME-WAIT; the server's \
                 socket closes when this ACK reaches it",
                &["3.6"],
            ),
            (true, FinWait1, Closing) => explained(
                "The client acknowledges the server's FIN while its own is not acknowledged \
                 yet: both sides closed at once, so it goes to CLOSING (simultaneous close)",
                &["3.6"],
            ),
            (true, CloseWait, _) => explained(
                "The client acknowledges the server's FIN; it stays in CLOSE-WAIT until its \
                 application closes too",
                &["3.6"],
            ),
            _ => explained(format!("The {who} acknowledges the {peer}'s FIN"), &["3.6"]),
        },
        Acks::Data(n) => explained(
            format!(
                "The {who} acknowledges {n} byte{} of the {peer}'s data: the acknowledgment \
                 number {} is the next byte it expects",
                if n == 1 { "" } else { "s" },
                seg.ack_rel.unwrap_or(0)
            ),
            &["3.4"],
        ),
        Acks::Same | Acks::None => explained(
            format!("The {who} sends a segment that acknowledges nothing new"),
            &["3.10.7.4"],
        ),
    }
}

#[cfg(test)]
mod tests;
