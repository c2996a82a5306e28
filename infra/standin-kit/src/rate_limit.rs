//! An optional request-rate limit, as both real services enforce one: a token bucket over
//! API requests, per service (one limiter per stand-in, whatever the route). A 429 announces
//! a `Retry-After` window, and every request inside that window is refused too (and counted:
//! a caller that shares one gate per service sends none). Off unless set; each stand-in
//! decides which paths are free and what its 429 body looks like.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// `per_second` tokens flow in, up to `burst` held.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

#[derive(Debug)]
struct Bucket {
    limit: RateLimit,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(limit: RateLimit, now: Instant) -> Bucket {
        Bucket {
            limit,
            tokens: f64::from(limit.burst.max(1)),
            at: now,
        }
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.limit.per_second;
        self.tokens = (self.tokens + refill).min(f64::from(self.limit.burst.max(1)));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64(
            (1.0 - self.tokens) / self.limit.per_second.max(f64::MIN_POSITIVE),
        ))
    }
}

#[derive(Debug, Default)]
pub struct Limiter {
    bucket: Mutex<Option<Bucket>>,
    throttled: Mutex<u64>,
    /// End of the `Retry-After` window last announced.
    window: Mutex<Option<Instant>>,
    /// Requests that arrived inside an announced window.
    in_window: Mutex<u64>,
}

impl Limiter {
    pub fn set(&self, limit: Option<RateLimit>) {
        *lock(&self.bucket) = limit.map(|l| Bucket::new(l, Instant::now()));
        *lock(&self.window) = None;
    }

    /// Requests that came while a `Retry-After` window announced earlier was still open
    /// (each was refused).
    pub fn ignored_retry_after(&self) -> u64 {
        *lock(&self.in_window)
    }

    /// Requests answered with a 429 by the limit so far.
    pub fn throttled(&self) -> u64 {
        *lock(&self.throttled)
    }

    /// Takes a token for one request, or says how long until one is there (and counts
    /// the refusal).
    pub fn take(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let mut bucket = lock(&self.bucket);
        let Some(b) = bucket.as_mut() else {
            return Ok(());
        };
        let mut window = lock(&self.window);
        if let Some(until) = *window {
            if now < until {
                *lock(&self.throttled) += 1;
                *lock(&self.in_window) += 1;
                return Err(until - now);
            }
        }
        let taken = b.take(now);
        if let Err(wait) = taken {
            *lock(&self.throttled) += 1;
            *window = Some(now + Duration::from_secs(retry_after_secs(wait)));
        }
        taken
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whole seconds, rounded up: the form both real services send in `Retry-After`.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(
            RateLimit {
                per_second: 10.0,
                burst: 2,
            },
            t0,
        );
        assert!(b.take(t0).is_ok());
        assert!(b.take(t0).is_ok());
        let wait = b.take(t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert_eq!(retry_after_secs(wait), 1);
        // 100 ms later one token has flowed in.
        let t1 = t0 + Duration::from_millis(100);
        assert!(b.take(t1).is_ok());
        assert!(b.take(t1).is_err());
        // Never more than the burst, however long it was idle.
        let t2 = t1 + Duration::from_secs(60);
        assert!(b.take(t2).is_ok() && b.take(t2).is_ok() && b.take(t2).is_err());
    }

    #[test]
    fn requests_inside_an_announced_window_are_refused_and_counted() {
        let l = Limiter::default();
        l.set(Some(RateLimit {
            per_second: 1000.0,
            burst: 1,
        }));
        assert!(l.take().is_ok());
        let wait = l.take().unwrap_err();
        assert!(wait <= Duration::from_millis(1));
        // The bucket refills within a millisecond, but the 429 announced a whole second.
        std::thread::sleep(Duration::from_millis(20));
        assert!(l.take().is_err());
        assert_eq!((l.throttled(), l.ignored_retry_after()), (2, 1));
    }
}
