//! One sync at a time per record: two messages about the same referral (a webhook and a
//! sweep, say) wait for each other instead of racing to create the same opportunity.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

#[derive(Default, Clone)]
pub struct KeyedLocks {
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// Held while a record's sync runs; dropping it lets the next one in.
pub struct KeyGuard {
    key: String,
    owner: KeyedLocks,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyedLocks {
    pub async fn lock(&self, key: &str) -> KeyGuard {
        let lock = self
            .locks
            .lock()
            .expect("keyed lock map poisoned")
            .entry(key.to_string())
            .or_default()
            .clone();
        let guard = lock.lock_owned().await;
        KeyGuard {
            key: key.to_string(),
            owner: self.clone(),
            guard: Some(guard),
        }
    }

    /// Records with a lock entry (held or awaited).
    pub fn len(&self) -> usize {
        self.locks.lock().expect("keyed lock map poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for KeyGuard {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut map = self.owner.locks.lock().expect("keyed lock map poisoned");
        // Only the map still holds it: nobody is waiting, forget the key.
        if map
            .get(&self.key)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn same_key_waits_other_keys_do_not_and_entries_are_forgotten() {
        let locks = KeyedLocks::default();
        let a = locks.lock("r1").await;
        // Another key goes straight through.
        let b = tokio::time::timeout(Duration::from_millis(100), locks.lock("r2"))
            .await
            .expect("a different key is not blocked");
        // The same key waits until the first guard is dropped.
        let waiting = tokio::spawn({
            let locks = locks.clone();
            async move { locks.lock("r1").await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        drop(a);
        let again = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("released")
            .unwrap();
        drop(again);
        drop(b);
        assert!(locks.is_empty());
    }
}
