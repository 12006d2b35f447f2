//! What the task is retrying right now, for `tidemark status`.
//!
//! Every retry loop (reconnecting to either end, the binlog connection, the RocketMQ
//! producer) holds a [`Retry`] while it waits for its endpoint to answer again; the
//! task's status reporter writes the oldest one into the state store, so an operator
//! sees "retrying since …" instead of a task that looks healthy while it waits.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// One retry in progress: what is retried and since when (RFC 3339, UTC).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Retrying {
    pub since: String,
    pub what: String,
}

static NEXT: AtomicU64 = AtomicU64::new(0);
static OPEN: Mutex<BTreeMap<u64, Retrying>> = Mutex::new(BTreeMap::new());

fn open() -> std::sync::MutexGuard<'static, BTreeMap<u64, Retrying>> {
    OPEN.lock().unwrap_or_else(|e| e.into_inner())
}

/// A retry in progress; it ends when dropped.
#[must_use = "the retry ends when this is dropped"]
pub struct Retry(u64);

/// Records that `what` (e.g. "reconnecting to the destination root@db:3306") is being
/// retried from now on.
pub fn begin(what: impl Into<String>) -> Retry {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    open().insert(
        id,
        Retrying {
            since: crate::state::now_rfc3339(),
            what: what.into(),
        },
    );
    Retry(id)
}

impl Drop for Retry {
    fn drop(&mut self) {
        open().remove(&self.0);
    }
}

/// The retry in progress the longest, if any.
pub fn oldest() -> Option<Retrying> {
    open().values().next().cloned()
}

/// The state store key `status` reads.
pub const KEY: &str = "retrying";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_open_retry_is_reported() {
        let first = begin("reconnecting to the destination");
        let second = begin("reconnecting to the source");
        assert_eq!(oldest().unwrap().what, "reconnecting to the destination");
        drop(first);
        assert_eq!(oldest().unwrap().what, "reconnecting to the source");
        drop(second);
        assert_eq!(oldest(), None);
    }
}
