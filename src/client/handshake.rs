//! What the SYN and the SYN-ACK agreed, in words: one line per option
//! (MSS, window scale, SACK, timestamps, the windows), saying what each
//! side offered and what follows for the rest of the connection.
//!
//! Pure: the client's configuration, the server's SYN-ACK options and the
//! state machine's [`Negotiated`] in, text out.

use crate::tcp::{self, Negotiated};
use crate::wire::TcpOptions;

/// The narration of a completed handshake: MSS, window scale, SACK,
/// timestamps, windows (RFC 9293 §3.7.1, RFC 7323, RFC 2018).
pub fn explain(
    ours: &tcp::Config,
    theirs: &TcpOptions,
    their_window: u16,
    agreed: &Negotiated,
) -> Vec<String> {
    vec![
        mss(ours, theirs, agreed),
        window_scale(ours, theirs, agreed),
        sack(ours, theirs, agreed),
        timestamps(ours, theirs, agreed),
        windows(ours, their_window, agreed),
    ]
}

fn mss(ours: &tcp::Config, theirs: &TcpOptions, agreed: &Negotiated) -> String {
    let server = match theirs.mss {
        Some(mss) => format!("MSS: the server announced {mss}"),
        None => format!(
            "MSS: the server announced none, so {} is assumed (RFC 9293 §3.7.1)",
            tcp::DEFAULT_PEER_MSS
        ),
    };
    let ts = if agreed.timestamps {
        format!(
            ", {} of data beside the {}-byte timestamps option",
            usize::from(ours.mss).saturating_sub(tcp::TIMESTAMPS_OPTION_LEN),
            tcp::TIMESTAMPS_OPTION_LEN
        )
    } else {
        String::new()
    };
    format!(
        "{server}, ours {}: the server sends us at most {} bytes per segment{ts}; \
         synack sends at most {} bytes of data per segment",
        ours.mss, ours.mss, agreed.send_mss
    )
}

fn window_scale(ours: &tcp::Config, theirs: &TcpOptions, agreed: &Negotiated) -> String {
    match (agreed.wscale, ours.wscale, theirs.wscale) {
        (Some((our_shift, their_shift)), _, _) => format!(
            "window scale: both sides offered it (ours {our_shift}, the server's {their_shift}): \
             from now on our window fields are shifted left by {our_shift} (×{}) and the \
             server's by {their_shift} (×{}); the SYNs' own windows are never scaled",
            1u32 << our_shift,
            1u32 << their_shift
        ),
        (None, None, _) => "window scale: we did not offer it, so it is off (a server may \
             offer it only in answer to ours): window fields are plain bytes, at most 65535"
            .to_string(),
        (None, Some(_), _) => "window scale: the server did not offer it, so it is off: \
             window fields are plain bytes, at most 65535"
            .to_string(),
    }
}

fn sack(ours: &tcp::Config, theirs: &TcpOptions, agreed: &Negotiated) -> String {
    if agreed.sack {
        return "SACK permitted by both: a receiver may report the blocks it holds beyond a \
                hole (RFC 2018); synack itself never sends SACK blocks"
            .to_string();
    }
    let who = match (ours.sack_permitted, theirs.sack_permitted) {
        (false, _) => "we did not offer it",
        (true, _) => "the server did not offer it",
    };
    format!("SACK: {who}, so it is off: only cumulative ACKs")
}

fn timestamps(ours: &tcp::Config, theirs: &TcpOptions, agreed: &Negotiated) -> String {
    match (agreed.timestamps, theirs.timestamps) {
        (true, Some((val, ecr))) => format!(
            "timestamps: both offered them; the server echoes our TSval {ecr} and sends its \
             own TSval {val}: every segment now carries TSval/TSecr ({} bytes), for RTT \
             samples and PAWS (RFC 7323)",
            tcp::TIMESTAMPS_OPTION_LEN
        ),
        _ if !ours.timestamps => {
            "timestamps: we did not offer them, so no segment carries them".to_string()
        }
        _ => "timestamps: the server did not offer them, so no segment carries them".to_string(),
    }
}

fn windows(ours: &tcp::Config, their_window: u16, agreed: &Negotiated) -> String {
    let ours_field = ours.window.min(u32::from(u16::MAX));
    let scaled = match agreed.wscale {
        Some((shift, _)) => {
            let field = (ours.window >> shift).min(u32::from(u16::MAX));
            format!(
                ", later segments {field} × {} = {} bytes",
                1u32 << shift,
                field << shift
            )
        }
        None => String::new(),
    };
    format!(
        "windows: ours {} bytes: the SYN says {ours_field}{scaled}; the server's SYN-ACK says \
         {their_window} bytes",
        ours.window
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tcp::Connection;
    use crate::wire::{Flags, SegmentRepr, SeqNumber};
    use std::time::Instant;

    /// Runs a handshake against a SYN-ACK carrying `theirs`, returns what
    /// was agreed and the narration.
    fn handshake(ours: tcp::Config, theirs: TcpOptions) -> (Negotiated, Vec<String>) {
        let now = Instant::now();
        let mut conn = Connection::new(ours.clone(), now);
        conn.connect(now).unwrap();
        let syn_ack = SegmentRepr {
            src_port: 8080,
            dst_port: 40000,
            seq: SeqNumber(5000),
            ack: ours.iss + 1,
            flags: Flags::SYN_ACK,
            window: 65160,
            options: theirs,
            payload: Vec::new(),
        };
        conn.on_segment(now, &syn_ack);
        let agreed = conn.negotiated().expect("agreed");
        let lines = explain(&ours, &theirs, 65160, &agreed);
        (agreed, lines)
    }

    fn linux_syn_ack() -> TcpOptions {
        TcpOptions {
            mss: Some(1460),
            sack_permitted: true,
            timestamps: Some((4242, 17)),
            wscale: Some(10),
            ..TcpOptions::default()
        }
    }

    #[test]
    fn everything_offered_and_answered() {
        let mut ours = tcp::Config::new(40000, 8080, SeqNumber(1000));
        ours.mss = 100;
        let (agreed, lines) = handshake(ours, linux_syn_ack());
        assert_eq!(agreed.wscale, Some((7, 10)));
        assert!(agreed.sack && agreed.timestamps);
        assert_eq!(agreed.send_mss, 88);
        assert!(
            lines[0].contains("the server announced 1460, ours 100")
                && lines[0].contains("at most 100 bytes per segment, 88 of data"),
            "{}",
            lines[0]
        );
        assert!(lines[1].contains("both sides offered it (ours 7, the server's 10)"));
        assert!(lines[1].contains("×1024"));
        assert!(lines[2].starts_with("SACK permitted by both"));
        assert!(lines[3].contains("echoes our TSval 17"), "{}", lines[3]);
        assert!(
            lines[4].contains("the SYN says 64240, later segments 501 × 128 = 64128 bytes"),
            "{}",
            lines[4]
        );
    }

    #[test]
    fn what_we_do_not_offer_is_off_whatever_the_server_says() {
        let mut ours = tcp::Config::new(40000, 8080, SeqNumber(1000));
        ours.wscale = None;
        ours.sack_permitted = false;
        ours.timestamps = false;
        let (agreed, lines) = handshake(ours, linux_syn_ack());
        assert_eq!(agreed.wscale, None);
        assert!(!agreed.sack && !agreed.timestamps);
        assert_eq!(agreed.send_mss, 1460);
        assert!(lines[1].contains("we did not offer it"));
        assert!(lines[2].contains("we did not offer it"));
        assert!(lines[3].contains("we did not offer them"));
    }

    #[test]
    fn what_the_server_does_not_answer_is_off() {
        let ours = tcp::Config::new(40000, 8080, SeqNumber(1000));
        let (agreed, lines) = handshake(ours, TcpOptions::default());
        assert_eq!(agreed.peer_mss, 536);
        assert_eq!(agreed.send_mss, 536);
        assert_eq!(agreed.wscale, None);
        assert!(!agreed.sack && !agreed.timestamps);
        assert!(lines[0].contains("536 is assumed"));
        assert!(lines[1].contains("the server did not offer it"));
        assert!(lines[2].contains("the server did not offer it"));
        assert!(lines[3].contains("the server did not offer them"));
    }
}
