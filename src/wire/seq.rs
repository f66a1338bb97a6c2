//! Sequence numbers: 32-bit counters that wrap (RFC 9293 §3.4).
//!
//! Pure: no I/O. Comparisons use wrapping arithmetic, so `0x0000_0005` is
//! *after* `0xffff_fff0`, as TCP requires.

use std::cmp::Ordering;
use std::fmt;
use std::ops::{Add, Sub};

/// A TCP sequence (or acknowledgment) number.
///
/// Ordering follows RFC 9293 §3.4: `a < b` when `b - a`, taken modulo 2³²,
/// is less than 2³¹. Two numbers exactly 2³¹ apart are incomparable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// The distance from `base` to `self`, modulo 2³² (the "relative"
    /// sequence number Wireshark shows when `base` is the ISN).
    pub fn relative_to(self, base: SeqNumber) -> u32 {
        self.0.wrapping_sub(base.0)
    }

    /// The larger of two sequence numbers under wrapping comparison.
    pub fn max(self, other: SeqNumber) -> SeqNumber {
        if self >= other {
            self
        } else {
            other
        }
    }
}

impl PartialOrd for SeqNumber {
    fn partial_cmp(&self, other: &SeqNumber) -> Option<Ordering> {
        // Work through the arithmetic: the signed difference tells which
        // side of the 2³¹ half-circle `other` is on.
        let diff = self.0.wrapping_sub(other.0) as i32;
        if diff == i32::MIN {
            None
        } else {
            Some(diff.cmp(&0))
        }
    }
}

impl Add<usize> for SeqNumber {
    type Output = SeqNumber;

    /// # Panics
    /// When `rhs` does not fit a sequence space step (≥ 2³¹), which no
    /// segment can carry.
    fn add(self, rhs: usize) -> SeqNumber {
        let step = u32::try_from(rhs)
            .ok()
            .filter(|step| *step < 1 << 31)
            .expect("a segment advances the sequence space by less than 2^31");
        SeqNumber(self.0.wrapping_add(step))
    }
}

impl Sub for SeqNumber {
    type Output = i64;

    /// The signed distance `self - rhs` under wrapping arithmetic.
    fn sub(self, rhs: SeqNumber) -> i64 {
        i64::from(self.0.wrapping_sub(rhs.0) as i32)
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn compares_across_the_wrap() {
        let before = SeqNumber(0xffff_fff0);
        let after = before + 0x20;
        assert_eq!(after, SeqNumber(0x10));
        assert!(before < after);
        assert!(after > before);
        assert_eq!(after - before, 0x20);
        assert_eq!(before - after, -0x20);
        assert_eq!(after.relative_to(before), 0x20);
        assert_eq!(before.max(after), after);
    }

    #[test]
    fn half_circle_apart_is_incomparable() {
        let a = SeqNumber(0);
        let b = SeqNumber(1 << 31);
        assert_eq!(a.partial_cmp(&b), None);
    }

    proptest! {
        #[test]
        fn adding_moves_forward(base: u32, step in 1usize..(1 << 31)) {
            let a = SeqNumber(base);
            prop_assert!(a < a + step);
            prop_assert_eq!((a + step) - a, step as i64);
        }
    }
}
