//! Login rate limiting: after `FREE_ATTEMPTS` failures for the same key (a
//! user name, or a client address) within the window, further attempts wait
//! an exponentially growing delay. Success clears the key. Bounded memory.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const FREE_ATTEMPTS: u32 = 5;
const WINDOW: Duration = Duration::from_secs(15 * 60);
const MAX_DELAY: Duration = Duration::from_secs(300);
const MAX_KEYS: usize = 50_000;

#[derive(Debug, Default)]
pub struct LoginLimiter {
    map: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginLimiter {
    pub fn new() -> Self {
        Self::default()
    }

    /// How long `key` must still wait before its next attempt.
    pub fn wait(&self, key: &str) -> Option<Duration> {
        let map = self.map.lock().ok()?;
        let (failures, last) = *map.get(key)?;
        if failures < FREE_ATTEMPTS || last.elapsed() > WINDOW {
            return None;
        }
        let delay = Duration::from_secs(1u64 << (failures - FREE_ATTEMPTS).min(8)).min(MAX_DELAY);
        delay.checked_sub(last.elapsed())
    }

    pub fn failed(&self, key: &str) {
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= MAX_KEYS {
                map.retain(|_, (_, t)| t.elapsed() <= WINDOW);
            }
            let e = map.entry(key.to_string()).or_insert((0, Instant::now()));
            if e.1.elapsed() > WINDOW {
                e.0 = 0;
            }
            e.0 += 1;
            e.1 = Instant::now();
        }
    }

    pub fn succeeded(&self, key: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_free_attempts_slow_down() {
        let l = LoginLimiter::new();
        for _ in 0..FREE_ATTEMPTS - 1 {
            l.failed("ana");
        }
        assert!(l.wait("ana").is_none());
        l.failed("ana");
        let w1 = l.wait("ana").unwrap();
        l.failed("ana");
        l.failed("ana");
        let w3 = l.wait("ana").unwrap();
        assert!(w3 > w1, "{w1:?} then {w3:?}");
        assert!(l.wait("bob").is_none());
        l.succeeded("ana");
        assert!(l.wait("ana").is_none());
    }
}
