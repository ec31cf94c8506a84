//! The outgoing verdict queue: at most one pending verdict per backend,
//! latest wins. It is bounded by the number of backends however slow etcd
//! is, and pushing never waits, so the engine's owner task never does.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;

use tokio::sync::Notify;

/// Pending values by key, taken in the order their keys first became pending.
#[derive(Debug)]
pub struct Outbox<K, V> {
    pending: Mutex<Pending<K, V>>,
    ready: Notify,
}

#[derive(Debug)]
struct Pending<K, V> {
    order: VecDeque<K>,
    latest: HashMap<K, V>,
}

impl<K: Eq + Hash + Clone, V> Default for Outbox<K, V> {
    fn default() -> Self {
        Outbox {
            pending: Mutex::new(Pending {
                order: VecDeque::new(),
                latest: HashMap::new(),
            }),
            ready: Notify::new(),
        }
    }
}

impl<K: Eq + Hash + Clone, V> Outbox<K, V> {
    /// Queues `value` for `key`, replacing a value still pending for it (which
    /// keeps its place in line: a backend that changes often is not starved).
    pub fn push(&self, key: K, value: V) {
        {
            let mut p = self.lock();
            if p.latest.insert(key.clone(), value).is_none() {
                p.order.push_back(key);
            }
        }
        // Stores a permit when nobody waits, so a push between `take` and
        // `notified` in `next` is not lost.
        self.ready.notify_one();
    }

    /// The oldest pending key with its latest value, if any.
    pub fn take(&self) -> Option<(K, V)> {
        let mut p = self.lock();
        while let Some(key) = p.order.pop_front() {
            if let Some(value) = p.latest.remove(&key) {
                return Some((key, value));
            }
        }
        None
    }

    /// Waits for the next pending value.
    pub async fn next(&self) -> (K, V) {
        loop {
            if let Some(kv) = self.take() {
                return kv;
            }
            self.ready.notified().await;
        }
    }

    /// How many keys have a value pending.
    pub fn len(&self) -> usize {
        self.lock().latest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending<K, V>> {
        // A panic while holding this lock leaves only whole entries behind
        // (each method changes the queue in one step), so the data is usable.
        self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_per_key_latest_wins_in_first_pending_order() {
        let outbox = Outbox::default();
        // (pushes, what `take` then yields until empty)
        type Case = (&'static [(&'static str, u32)], &'static [(&'static str, u32)]);
        let cases: &[Case] = &[
            (&[], &[]),
            (&[("a", 1)], &[("a", 1)]),
            (&[("a", 1), ("a", 2), ("a", 3)], &[("a", 3)]),
            (&[("a", 1), ("b", 1), ("a", 2)], &[("a", 2), ("b", 1)]),
            (&[("b", 1), ("a", 1), ("b", 2), ("c", 1), ("a", 2)], &[("b", 2), ("a", 2), ("c", 1)]),
        ];
        for (pushes, want) in cases {
            for (k, v) in *pushes {
                outbox.push(*k, *v);
            }
            let mut got = Vec::new();
            while let Some(kv) = outbox.take() {
                got.push(kv);
            }
            assert_eq!(&got, want, "{pushes:?}");
            assert!(outbox.is_empty());
        }
    }

    #[test]
    fn a_burst_is_bounded_by_the_keys() {
        let outbox = Outbox::default();
        for round in 0..10_000u32 {
            outbox.push(round % 100, round);
        }
        assert_eq!(outbox.len(), 100);
        assert_eq!(outbox.take(), Some((0, 9_900)));
    }

    #[tokio::test(start_paused = true)]
    async fn next_wakes_on_a_push_made_while_it_waits() {
        let outbox = std::sync::Arc::new(Outbox::default());
        let waiting = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.next().await }
        });
        tokio::task::yield_now().await;
        outbox.push("a", 1);
        assert_eq!(waiting.await.unwrap(), ("a", 1));
    }
}
