//! A small cache of certificate lookups: verified certificates for an hour, failures for a
//! few seconds, each map capped, and one fetch in flight per key. No lock is held across a
//! fetch, so a slow certificate host delays only the deliveries that need that very URL.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct CacheLimits {
    pub good_ttl: Duration,
    pub good_cap: usize,
    pub bad_ttl: Duration,
    pub bad_cap: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            good_ttl: Duration::from_secs(3600),
            good_cap: 8,
            bad_ttl: Duration::from_secs(30),
            bad_cap: 64,
        }
    }
}

type Slot<V, E> = Arc<OnceCell<Result<V, E>>>;

struct Maps<K, V, E> {
    good: HashMap<K, (Instant, V)>,
    bad: HashMap<K, (Instant, E)>,
    in_flight: HashMap<K, Slot<V, E>>,
}

pub struct LookupCache<K, V, E> {
    limits: CacheLimits,
    maps: Mutex<Maps<K, V, E>>,
}

impl<K, V, E> LookupCache<K, V, E>
where
    K: Eq + Hash + Clone,
    V: Clone,
    E: Clone,
{
    pub fn new(limits: CacheLimits) -> Self {
        LookupCache {
            limits,
            maps: Mutex::new(Maps {
                good: HashMap::new(),
                bad: HashMap::new(),
                in_flight: HashMap::new(),
            }),
        }
    }

    fn maps(&self) -> std::sync::MutexGuard<'_, Maps<K, V, E>> {
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached answer for `key`, or `fetch`'s, shared with every concurrent caller.
    pub async fn get_or_fetch<F, Fut>(&self, key: &K, fetch: F) -> Result<V, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let slot = {
            let mut maps = self.maps();
            let now = Instant::now();
            if let Some((at, v)) = maps.good.get(key) {
                if now < *at + self.limits.good_ttl {
                    return Ok(v.clone());
                }
            }
            if let Some((at, e)) = maps.bad.get(key) {
                if now < *at + self.limits.bad_ttl {
                    return Err(e.clone());
                }
            }
            // Slots nobody waits on any more (their callers went away) are dropped.
            if maps.in_flight.len() >= 64 {
                maps.in_flight.retain(|_, s| Arc::strong_count(s) > 1);
            }
            maps.in_flight
                .entry(key.clone())
                .or_insert_with(|| Arc::new(OnceCell::new()))
                .clone()
        };
        // If the caller fetching is dropped mid-way, the next waiter fetches instead.
        let result = slot.get_or_init(fetch).await.clone();
        let mut maps = self.maps();
        if maps
            .in_flight
            .get(key)
            .is_some_and(|s| Arc::ptr_eq(s, &slot))
        {
            maps.in_flight.remove(key);
            let now = Instant::now();
            match &result {
                Ok(v) => {
                    maps.bad.remove(key);
                    insert_capped(
                        &mut maps.good,
                        key.clone(),
                        (now, v.clone()),
                        self.limits.good_cap,
                        self.limits.good_ttl,
                    );
                }
                Err(e) => insert_capped(
                    &mut maps.bad,
                    key.clone(),
                    (now, e.clone()),
                    self.limits.bad_cap,
                    self.limits.bad_ttl,
                ),
            }
        }
        result
    }

    /// Entries held now (good, bad, in flight), for tests of the bounds.
    pub fn sizes(&self) -> (usize, usize, usize) {
        let maps = self.maps();
        (maps.good.len(), maps.bad.len(), maps.in_flight.len())
    }
}

/// Inserts, first dropping expired entries and then the oldest when the map is full.
fn insert_capped<K: Eq + Hash + Clone, T>(
    map: &mut HashMap<K, (Instant, T)>,
    key: K,
    value: (Instant, T),
    cap: usize,
    ttl: Duration,
) {
    if !map.contains_key(&key) && map.len() >= cap {
        let now = value.0;
        map.retain(|_, (at, _)| now < *at + ttl);
        while map.len() >= cap.max(1) {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
    }
    map.insert(key, value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn cache() -> LookupCache<u32, u32, String> {
        LookupCache::new(CacheLimits {
            good_ttl: Duration::from_secs(60),
            good_cap: 2,
            bad_ttl: Duration::from_secs(5),
            bad_cap: 3,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_remembered_briefly_and_both_maps_are_capped() {
        let c = cache();
        let calls = AtomicUsize::new(0);
        let fail = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<u32, _>("404".to_string())
        };
        assert!(c.get_or_fetch(&1, fail).await.is_err());
        assert!(c.get_or_fetch(&1, fail).await.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "the failure was remembered"
        );
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(c.get_or_fetch(&1, fail).await.is_err());
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "and forgotten after its TTL"
        );
        for k in 10..100 {
            let _ = c.get_or_fetch(&k, fail).await;
            let _ = c.get_or_fetch(&(k + 1000), || async { Ok(k) }).await;
        }
        let (good, bad, in_flight) = c.sizes();
        assert!(
            good <= 2 && bad <= 3 && in_flight == 0,
            "{good} {bad} {in_flight}"
        );
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_fetch_and_a_dropped_fetch_is_retried() {
        let c = Arc::new(cache());
        let calls = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let (c, calls, gate) = (c.clone(), calls.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                c.get_or_fetch(&7, || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    gate.notified().await;
                    Ok::<_, String>(70)
                })
                .await
            }));
        }
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // Another key is answered while the first one's fetch hangs.
        assert_eq!(c.get_or_fetch(&8, || async { Ok(80) }).await, Ok(80));
        gate.notify_one();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(70));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let hung = tokio::spawn({
            let c = c.clone();
            async move {
                c.get_or_fetch(&9, std::future::pending::<Result<u32, String>>)
                    .await
            }
        });
        tokio::task::yield_now().await;
        hung.abort();
        let _ = hung.await;
        assert_eq!(c.get_or_fetch(&9, || async { Ok(90) }).await, Ok(90));
    }
}
