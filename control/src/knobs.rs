//! Typed control commands ("knobs") and the bounded lock-free queue that carries them to the
//! engine.
//!
//! The knob types are plain data from `camp-control-types` (re-exported here). The control
//! thread validates a [`Knob`] before queueing it, so the engine applies whatever it drains
//! without further checks. The engine calls [`KnobReceiver::drain`] once per loop iteration;
//! it pops from a `crossbeam::queue::ArrayQueue` and never blocks.

use std::sync::Arc;

use crossbeam::queue::ArrayQueue;

pub use camp_control_types::knobs::*;
pub use camp_control_types::modality::Modality;
pub use camp_control_types::scheduler::SchedulerKind;

/// Creates the control thread's sender and the engine's receiver.
pub fn channel() -> (KnobSender, KnobReceiver) {
    let q = Arc::new(ArrayQueue::new(KNOB_QUEUE_CAPACITY));
    (
        KnobSender {
            queue: Arc::clone(&q),
        },
        KnobReceiver { queue: q },
    )
}

/// The control thread's end. Cheap to clone.
#[derive(Clone, Debug)]
pub struct KnobSender {
    queue: Arc<ArrayQueue<Knob>>,
}

impl KnobSender {
    /// Queues a knob for the engine; never blocks.
    pub fn send(&self, knob: Knob) -> Result<(), KnobError> {
        self.queue.push(knob).map_err(|_| KnobError::QueueFull)
    }

    /// Whether the engine's queue is full right now.
    pub fn is_full(&self) -> bool {
        self.queue.is_full()
    }
}

/// The engine's end.
#[derive(Debug)]
pub struct KnobReceiver {
    queue: Arc<ArrayQueue<Knob>>,
}

impl KnobReceiver {
    /// Hands every queued knob to `apply`, oldest first; returns how many. Lock-free.
    ///
    /// At most [`KNOB_QUEUE_CAPACITY`] are taken per call, so a flooding sender cannot keep
    /// the engine's loop here.
    pub fn drain(&mut self, mut apply: impl FnMut(Knob)) -> usize {
        let mut n = 0;
        while n < KNOB_QUEUE_CAPACITY {
            let Some(k) = self.queue.pop() else { break };
            apply(k);
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_is_bounded_and_drains_in_order() {
        let (tx, mut rx) = channel();
        for i in 0..KNOB_QUEUE_CAPACITY {
            tx.send(Knob::SetCoupledCc { on: i % 2 == 0 }).unwrap();
        }
        assert_eq!(
            tx.send(Knob::SetCoupledCc { on: true }),
            Err(KnobError::QueueFull)
        );
        let mut got = Vec::new();
        assert_eq!(rx.drain(|k| got.push(k)), KNOB_QUEUE_CAPACITY);
        assert_eq!(got[0], Knob::SetCoupledCc { on: true });
        assert_eq!(got[1], Knob::SetCoupledCc { on: false });
        assert_eq!(rx.drain(|_| panic!("queue should be empty")), 0);
    }

    #[test]
    fn scheduler_knobs_name_the_protocol_schedulers() {
        use crate::convert::{ToPlain, ToProto};
        for k in camp_proto::config::SchedulerKind::ALL {
            let Ok(Knob::SetScheduler { kind }) = Knob::scheduler(k.name()) else {
                panic!("{} refused", k.name());
            };
            assert_eq!(kind.to_proto(), k);
            assert_eq!(kind, k.to_plain());
        }
    }
}
