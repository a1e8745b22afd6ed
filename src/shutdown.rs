//! The run's shutdown signal, handed down to every task (mini-redis style).
//!
//! Triggered by Ctrl-C, SIGTERM, an abort condition or the end of the run. Async tasks await
//! [`Shutdown::wait`]; the load scheduler's OS thread polls [`Shutdown::is_triggered`] between
//! its (short) sleeps. Triggering is idempotent and never blocks.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct Shutdown {
    flag: AtomicBool,
    notify: Notify,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_triggered(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Resolves once triggered (immediately if it already was).
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_triggered() {
                return;
            }
            notified.await;
        }
    }
}
