//! The one mutex of the node's synchronous state, and [`block_in_place`] for long work on
//! the async threads.
//!
//! A poisoned lock means a thread panicked while it held the lock: a bug. It is never read
//! as "empty" or "nothing held". [`Mutex::lock`] logs it once, at `error`, naming what the
//! lock guards, and goes on with the data as the panicking thread left it: every structure
//! guarded here is kept consistent between statements (a set, a map, a counter), so the
//! worst a panic leaves is an update not made, which the next sync or scan makes again.

use std::sync::atomic::{AtomicBool, Ordering};

/// A `std::sync::Mutex` that names what it guards and survives poisoning loudly.
#[derive(Debug)]
pub struct Mutex<T> {
    inner: std::sync::Mutex<T>,
    what: &'static str,
    reported: AtomicBool,
}

/// The guard [`Mutex::lock`] returns.
pub type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    /// A mutex over `value`; `what` names it in the log if it is ever poisoned.
    pub const fn new(what: &'static str, value: T) -> Self {
        Self {
            inner: std::sync::Mutex::new(value),
            what,
            reported: AtomicBool::new(false),
        }
    }

    /// Locks it. A poisoned lock is reported (once) and recovered, never treated as empty.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.inner.lock().unwrap_or_else(|poisoned| {
            if !self.reported.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    lock = self.what,
                    "a thread panicked while holding this lock (a bug): going on with its data as it was left"
                );
            }
            poisoned.into_inner()
        })
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Self::new(std::any::type_name::<T>(), T::default())
    }
}

/// Runs `work`, which keeps its thread busy for a while (an index transaction of thousands
/// of rows), without holding up the tasks queued behind it on this runtime thread: on the
/// multi-threaded runtime they move to another thread meanwhile (`block_in_place`). A
/// connection's driver waiting behind such work otherwise stops that connection for as long
/// as it lasts, and the peer's transfers with it. Elsewhere (a current-thread runtime, as
/// in tests, or no runtime) it simply runs.
pub fn block_in_place<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_keeps_its_data() {
        let m = std::sync::Arc::new(Mutex::new("test set", vec![1, 2, 3]));
        let poisoner = m.clone();
        let panicked = std::thread::spawn(move || {
            let mut guard = poisoner.lock();
            guard.push(4);
            panic!("a bug while holding the lock");
        })
        .join();
        assert!(panicked.is_err());
        assert!(m.inner.is_poisoned());
        assert_eq!(*m.lock(), vec![1, 2, 3, 4], "poisoning is not emptiness");
        assert!(m.reported.load(Ordering::Relaxed));
    }
}
