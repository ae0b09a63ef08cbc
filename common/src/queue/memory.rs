//! An in-process [`JobQueue`] with the same delivery semantics as the
//! RabbitMQ one: unsettled deliveries come back, a delivery limit sends
//! messages to a dead-letter list.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::{DeadLetter, DeadLetterReason, Delivery, JobQueue, QueueDepth, QueueError, Settle};
use crate::job::JobMessage;

#[derive(Debug, Default)]
struct State {
    /// Bodies with the number of times each was delivered so far.
    ready: VecDeque<(Vec<u8>, u32)>,
    in_flight: u64,
    dead: VecDeque<(Vec<u8>, DeadLetterReason)>,
}

#[derive(Debug)]
struct Shared {
    delivery_limit: u32,
    state: Mutex<State>,
    notify: Notify,
}

impl Shared {
    /// Puts a delivery back, or dead-letters it once it used up its deliveries.
    fn requeue(&self, body: Vec<u8>, delivered: u32) {
        let mut state = self.state.lock();
        state.in_flight -= 1;
        if delivered >= self.delivery_limit {
            tracing::warn!(delivered, "delivery limit reached, dead-lettering");
            state
                .dead
                .push_back((body, DeadLetterReason::DeliveryLimit));
        } else {
            state.ready.push_back((body, delivered));
            drop(state);
            self.notify.notify_one();
        }
    }
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct MemoryQueue {
    shared: Arc<Shared>,
}

impl MemoryQueue {
    pub fn new(delivery_limit: u32) -> Self {
        Self {
            shared: Arc::new(Shared {
                delivery_limit: delivery_limit.max(1),
                state: Mutex::new(State::default()),
                notify: Notify::new(),
            }),
        }
    }

    /// Bodies in the dead-letter queue.
    pub fn dead_letters(&self) -> Vec<Vec<u8>> {
        let state = self.shared.state.lock();
        state.dead.iter().map(|(body, _)| body.clone()).collect()
    }

    /// Publishes raw bytes, as a buggy or hostile publisher could.
    pub fn publish_raw(&self, body: Vec<u8>) {
        self.shared.state.lock().ready.push_back((body, 0));
        self.shared.notify.notify_one();
    }
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn publish(&self, job: &JobMessage) -> Result<(), QueueError> {
        self.publish_raw(job.encode());
        Ok(())
    }

    async fn next_delivery(&self) -> Result<Delivery, QueueError> {
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            // Register interest before looking, so a publish in between is not missed.
            notified.as_mut().enable();
            {
                let mut state = self.shared.state.lock();
                if let Some((body, delivered)) = state.ready.pop_front() {
                    state.in_flight += 1;
                    let count = delivered + 1;
                    let settle = MemorySettle {
                        shared: self.shared.clone(),
                        body: Some(body.clone()),
                        delivered: count,
                    };
                    return Ok(Delivery::new(body, count, Box::new(settle)));
                }
            }
            notified.await;
        }
    }

    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let state = self.shared.state.lock();
        Ok(QueueDepth {
            ready: state.ready.len() as u64,
            in_flight: state.in_flight,
            dead_lettered: state.dead.len() as u64,
        })
    }

    async fn next_dead_letter(&self) -> Result<Option<DeadLetter>, QueueError> {
        let Some((body, reason)) = self.shared.state.lock().dead.pop_front() else {
            return Ok(None);
        };
        let settle = DeadSettle {
            shared: self.shared.clone(),
            letter: Some((body.clone(), reason.clone())),
        };
        Ok(Some(DeadLetter {
            delivery: Delivery::new(body, 1, Box::new(settle)),
            reason,
        }))
    }
}

/// Settles one delivery. Dropped unsettled, it requeues like a closed channel.
#[derive(Debug)]
struct MemorySettle {
    shared: Arc<Shared>,
    body: Option<Vec<u8>>,
    delivered: u32,
}

#[async_trait]
impl Settle for MemorySettle {
    async fn ack(mut self: Box<Self>) -> Result<(), QueueError> {
        self.body = None;
        self.shared.state.lock().in_flight -= 1;
        Ok(())
    }

    async fn retry(mut self: Box<Self>) -> Result<(), QueueError> {
        if let Some(body) = self.body.take() {
            self.shared.requeue(body, self.delivered);
        }
        Ok(())
    }

    async fn dead_letter(mut self: Box<Self>) -> Result<(), QueueError> {
        if let Some(body) = self.body.take() {
            let mut state = self.shared.state.lock();
            state.in_flight -= 1;
            state.dead.push_back((body, DeadLetterReason::Rejected));
        }
        Ok(())
    }
}

/// Settles a message taken from the dead-letter list: `ack` drops it, any
/// other end puts it back at the front.
#[derive(Debug)]
struct DeadSettle {
    shared: Arc<Shared>,
    letter: Option<(Vec<u8>, DeadLetterReason)>,
}

impl DeadSettle {
    fn put_back(&mut self) {
        if let Some(letter) = self.letter.take() {
            self.shared.state.lock().dead.push_front(letter);
        }
    }
}

#[async_trait]
impl Settle for DeadSettle {
    async fn ack(mut self: Box<Self>) -> Result<(), QueueError> {
        self.letter = None;
        Ok(())
    }

    async fn retry(mut self: Box<Self>) -> Result<(), QueueError> {
        self.put_back();
        Ok(())
    }

    async fn dead_letter(mut self: Box<Self>) -> Result<(), QueueError> {
        self.put_back();
        Ok(())
    }
}

impl Drop for DeadSettle {
    fn drop(&mut self) {
        self.put_back();
    }
}

impl Drop for MemorySettle {
    fn drop(&mut self) {
        if let Some(body) = self.body.take() {
            self.shared.requeue(body, self.delivered);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn contract_suite() {
        super::super::testsuite::run(|limit| async move { MemoryQueue::new(limit) }).await;
    }
}
