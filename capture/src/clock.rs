//! The device's wall clock, kept monotonic within a recording.
//!
//! The system clock can be stepped (NTP, a user changing the time) in the middle of a
//! recording. Reading it once at the start and adding a monotonic [`Instant`] offset gives
//! times that never go backwards within one recording, which is what the chain promises; the
//! clock's absolute error is the device's, and the verifier weighs it as such.

use std::time::Instant;

/// Wall-clock time anchored at the start of a recording.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WallClock {
    start_utc_us: i64,
    start: Instant,
}

impl WallClock {
    pub(crate) fn start() -> Self {
        let start = Instant::now();
        // Format's one reading of the wall clock (a clock set before 1970 is negative).
        let start_utc_us = custody_format::time::now_us();
        WallClock { start_utc_us, start }
    }

    /// Microseconds since the Unix epoch at the start of the recording.
    pub(crate) fn start_utc_us(&self) -> i64 {
        self.start_utc_us
    }

    /// Microseconds since the Unix epoch now, never earlier than a previous call.
    pub(crate) fn now_utc_us(&self) -> i64 {
        let offset = i64::try_from(self.start.elapsed().as_micros()).unwrap_or(i64::MAX);
        self.start_utc_us.saturating_add(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_goes_backwards() {
        let clock = WallClock::start();
        let mut last = clock.start_utc_us();
        for _ in 0..1000 {
            let now = clock.now_utc_us();
            assert!(now >= last);
            last = now;
        }
    }
}
