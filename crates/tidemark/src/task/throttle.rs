//! Throttles (`[full] source_qps`, `rows_per_second`, `mb_per_second`), shared by all
//! copy pipelines. A virtual clock: each caller books the time its work costs at the
//! configured rate and sleeps until its booking starts.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Throttle {
    rows_per_second: u64,
    bytes_per_second: f64,
    queries_per_second: u64,
    next: Mutex<Instant>,
    next_query: Mutex<Instant>,
}

impl Throttle {
    pub fn new(rows_per_second: u64, mb_per_second: f64, queries_per_second: u64) -> Throttle {
        Throttle {
            rows_per_second,
            bytes_per_second: mb_per_second * 1e6,
            queries_per_second,
            next: Mutex::new(Instant::now()),
            next_query: Mutex::new(Instant::now()),
        }
    }

    fn book(clock: &Mutex<Instant>, cost: Duration) {
        if cost.is_zero() {
            return;
        }
        let start = {
            let mut next = clock.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            // At most one second of unused budget carries over (a short burst).
            let start = (*next).max(now - Duration::from_secs(1).min(now.elapsed()));
            *next = start + cost;
            start
        };
        let now = Instant::now();
        if start > now {
            std::thread::sleep(start - now);
        }
    }

    /// Waits until `rows` rows of `bytes` bytes may be sent.
    pub fn rows(&self, rows: u64, bytes: u64) {
        let mut cost = 0.0f64;
        if self.rows_per_second > 0 {
            cost = cost.max(rows as f64 / self.rows_per_second as f64);
        }
        if self.bytes_per_second > 0.0 {
            cost = cost.max(bytes as f64 / self.bytes_per_second);
        }
        Self::book(&self.next, Duration::from_secs_f64(cost));
    }

    /// Waits until one more query may be sent to the source.
    pub fn query(&self) {
        if self.queries_per_second > 0 {
            Self::book(
                &self.next_query,
                Duration::from_secs_f64(1.0 / self.queries_per_second as f64),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_paced_at_the_rate() {
        // 1000 rows/s: 300 single-row bookings cannot all start within 0.25 s.
        let t = Throttle::new(1000, 0.0, 0);
        let started = Instant::now();
        for _ in 0..300 {
            t.rows(1, 0);
        }
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
        // Unlimited: no waiting at all.
        let t = Throttle::new(0, 0.0, 0);
        let started = Instant::now();
        for _ in 0..100_000 {
            t.rows(1, 1 << 20);
        }
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
