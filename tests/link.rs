//! The AF_PACKET link as the client uses it, as root in a network
//! namespace of the test thread's own (only its `lo`).

mod common;

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use synack::net::link::{Link, PnetLink, READ_TIMEOUT};

fn in_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        let ok = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .expect("ip");
        assert!(ok.success(), "ip link set lo up");
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// A deadline closer than a millisecond is kept to within a fraction of
/// one: the client's timers (retransmission, TIME-WAIT, the end of the
/// quiet window) are not rounded up to `poll()`'s whole milliseconds, as
/// they were through pnet's receiver.
#[test]
fn recv_keeps_a_deadline_shorter_than_a_millisecond() {
    require_root!();
    let best = in_netns(|| {
        let mut link = PnetLink::open("lo").expect("an AF_PACKET link on lo");
        (0..5)
            .map(|_| {
                let start = Instant::now();
                let got = link.recv(start + Duration::from_micros(200)).expect("recv");
                assert!(got.is_none(), "nothing is sent on this lo");
                start.elapsed()
            })
            .min()
            .unwrap()
    });
    assert!(best >= Duration::from_micros(200), "{best:?}");
    assert!(best < READ_TIMEOUT * 3 / 4, "{best:?}");
}

/// A frame sent on the link is read back by the same link's socket
/// (on `lo` every frame is received as well as sent), after the send.
#[test]
fn a_frame_sent_on_lo_comes_back_to_the_link() {
    require_root!();
    let back = in_netns(|| {
        let mut link = PnetLink::open("lo").expect("an AF_PACKET link on lo");
        // An Ethernet frame of an unused EtherType (IEEE 802 local
        // experimental, 0x88B5) between all-zero MACs.
        let mut frame = vec![0u8; 60];
        frame[12..14].copy_from_slice(&[0x88, 0xb5]);
        frame[14..19].copy_from_slice(b"synak");
        link.send(&frame).expect("send");
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut back = None;
        for _ in 0..1000 {
            match link.recv(deadline).expect("recv") {
                Some(got) if got.get(14..19) == Some(b"synak".as_slice()) => {
                    back = Some(got);
                    break;
                }
                _ if Instant::now() >= deadline => break,
                _ => {}
            }
        }
        back
    });
    let back = back.expect("the frame came back within 1 s");
    assert_eq!(back.len(), 60);
}
