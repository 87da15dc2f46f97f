//! A worker's slots for steps under way, urgent steps first.
//!
//! The engine hands a worker more tasks than it runs at once (a task fetched before its
//! moment waits for it without a slot), so steps can queue here; a poll due now, or a
//! download, must not queue behind new jobs' starts, which only add work.

use tokio::sync::{Mutex, Semaphore, SemaphorePermit, watch};

/// `n` slots; urgent steps take them before the others.
#[derive(Debug)]
pub(crate) struct WorkSlots {
    slots: Semaphore,
    /// Urgent steps waiting for a slot; the others wait while any is.
    urgent_waiting: watch::Sender<usize>,
    /// The other steps queue here first, so they take slots in the order they came.
    others_in_turn: Mutex<()>,
}

/// An urgent step counted as waiting until dropped.
struct Waiting<'a>(&'a watch::Sender<usize>);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl WorkSlots {
    pub(crate) fn new(n: usize) -> Self {
        WorkSlots {
            slots: Semaphore::new(n.max(1)),
            urgent_waiting: watch::channel(0).0,
            others_in_turn: Mutex::new(()),
        }
    }

    /// A slot, held until the permit is dropped.
    pub(crate) async fn take(&self, urgent: bool) -> SemaphorePermit<'_> {
        if urgent {
            self.urgent_waiting.send_modify(|n| *n += 1);
            let _waiting = Waiting(&self.urgent_waiting);
            return self
                .slots
                .acquire()
                .await
                .expect("the slots are never closed");
        }
        let _turn = self.others_in_turn.lock().await;
        let mut urgent_waiting = self.urgent_waiting.subscribe();
        loop {
            let _ = urgent_waiting.wait_for(|n| *n == 0).await;
            let permit = self
                .slots
                .acquire()
                .await
                .expect("the slots are never closed");
            // An urgent step came while this one queued: it goes first.
            if *urgent_waiting.borrow() == 0 {
                return permit;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn urgent_steps_take_a_freed_slot_before_others_that_queued_first() {
        let slots = Arc::new(WorkSlots::new(1));
        let held = slots.take(false).await;
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for (name, urgent) in [("start 1", false), ("start 2", false), ("poll", true)] {
            let (slots, order) = (slots.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let _slot = slots.take(urgent).await;
                order.lock().unwrap().push(name);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        drop(held);
        for w in waiting {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["poll", "start 1", "start 2"]);
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_steps_than_slots_run_at_once() {
        let slots = Arc::new(WorkSlots::new(3));
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut steps = Vec::new();
        for i in 0..20 {
            let (slots, running, most) = (slots.clone(), running.clone(), most.clone());
            steps.push(tokio::spawn(async move {
                let _slot = slots.take(i % 3 == 0).await;
                let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }));
        }
        for s in steps {
            s.await.unwrap();
        }
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
