//! The one mutex of the node's synchronous state, and [`long_work`] for long index work on
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

/// Runs `work`, index work on `rows` rows, from an async thread. Past [`LONG_WORK_ROWS`]
/// (a transaction of a hundred milliseconds or more) the tasks queued behind it on this
/// thread move to another one meanwhile (`block_in_place`, on the multi-threaded runtime): a
/// connection's driver waiting behind such work otherwise stops that connection, and the
/// peer's transfers with it. Shorter work runs in place: moving the queue starts a thread,
/// and a thread that then allocates costs the process memory of its own.
pub fn long_work<R>(rows: usize, work: impl FnOnce() -> R) -> R {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if rows >= LONG_WORK_ROWS && multi_thread {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// Index work on this many rows or more counts as long ([`long_work`]).
pub const LONG_WORK_ROWS: usize = 1024;

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

    /// Whether a task spawned from the thread doing `rows` rows of work ran while it did.
    async fn ran_alongside(rows: usize) -> bool {
        let ran = std::sync::Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        // Queued on this thread: with one worker, nothing else would run it.
        let task = tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
        let seen = long_work(rows, || {
            let until = std::time::Instant::now() + std::time::Duration::from_millis(500);
            while !ran.load(Ordering::SeqCst) && std::time::Instant::now() < until {
                std::thread::yield_now();
            }
            ran.load(Ordering::SeqCst)
        });
        task.await.unwrap();
        seen
    }

    #[test]
    fn long_work_lets_the_threads_queued_tasks_run_and_short_work_runs_in_place() {
        let multi = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        assert!(
            multi
                .block_on(async { tokio::spawn(ran_alongside(LONG_WORK_ROWS)).await })
                .unwrap()
        );
        assert!(
            !multi
                .block_on(async { tokio::spawn(ran_alongside(10)).await })
                .unwrap()
        );
        // A current-thread runtime (tests) cannot hand its queue over: the work runs.
        let single = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(!single.block_on(ran_alongside(LONG_WORK_ROWS)));
    }
}
