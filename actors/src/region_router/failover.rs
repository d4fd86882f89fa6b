//! Where home traffic goes: home, to the peer (failover, and part of it while the fail-back
//! ramp runs), or into the bounded buffer and, past its limits, the DLQ. Every change of where it
//! goes is logged once with its reason.

use super::*;

impl RegionRouterState {
    pub(super) fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Splits home traffic between home (what the ramp and the breaker admit) and the peer.
    pub(super) fn dispatch_home(
        &mut self,
        myself: &ActorRef<RegionRouterMsg>,
        items: Vec<InFlight>,
    ) {
        let fraction = self.breaker.admit_fraction();
        let (home, mut away): (Vec<InFlight>, Vec<InFlight>) = if fraction >= 1.0 {
            (items, Vec::new())
        } else {
            let rng = &mut self.rng;
            items
                .into_iter()
                .partition(|_| goes_home(fraction, rng.f64()))
        };
        let ramped = !away.is_empty();
        let (calls, refused) = self.acquire(home);
        let state = self.breaker.state();
        if !refused.is_empty() {
            self.switch(Mode::Failover, &format!("home breaker is {state}"));
        } else if ramped {
            self.switch(
                Mode::Ramp,
                &format!("fail-back ramp admits {:.0} % home", fraction * 100.0),
            );
        }
        away.extend(refused);
        if !calls.is_empty() {
            self.call(myself, calls, Origin::Home, Vec::new());
        }
        if !away.is_empty() {
            self.send_to_peer(myself, away);
        }
    }

    /// Sends home traffic to the peer; what it cannot take comes back as `Returned`.
    pub(super) fn send_to_peer(
        &mut self,
        myself: &ActorRef<RegionRouterMsg>,
        events: Vec<InFlight>,
    ) {
        let Some(peer) = self.peer.clone() else {
            self.switch(Mode::Buffering, "no peer region router");
            self.buffer_all(events);
            return;
        };
        self.failed_over += events.len() as u64;
        let (tx, rx) = oneshot::channel();
        match peer.cast(RegionRouterMsg::Failover { events, reply: tx }) {
            Ok(()) => {
                let myself = myself.clone();
                tokio::spawn(async move {
                    // A peer that dies with them loses no ack: the events' acks never settle, so
                    // their source replays them.
                    if let Ok(back) = rx.await {
                        let _ = myself.cast(RegionRouterMsg::Returned(back));
                    }
                });
            }
            Err(MessagingErr::SendErr(RegionRouterMsg::Failover { events, .. })) => {
                self.switch(Mode::Buffering, "the peer region router is not running");
                self.buffer_all(events);
            }
            Err(_) => {}
        }
    }

    /// Buffers events; what does not fit goes to the DLQ.
    pub(super) fn buffer_all(&mut self, events: Vec<InFlight>) {
        let now = self.now();
        let mut overflow = Vec::new();
        for mut item in events {
            let since = *item.since.get_or_insert(now);
            if let Err(item) = self.buffer.push(since, item) {
                overflow.push(item);
            }
        }
        if !overflow.is_empty() {
            self.dead_letter(overflow, "failover buffer full: no region took the event");
        }
    }

    /// Expires old buffered events to the DLQ and gives the rest another try.
    pub(super) fn tick(&mut self, myself: &ActorRef<RegionRouterMsg>) {
        self.breaker.poll();
        let expired = self.buffer.expired(self.now());
        if !expired.is_empty() {
            self.dead_letter(
                expired,
                "no region took the event within routing.failover_max_wait_ms",
            );
        }
        if !self.buffer.is_empty() {
            let retry: Vec<InFlight> = self
                .buffer
                .take_all()
                .into_iter()
                .map(|(_, item)| item)
                .collect();
            self.dispatch_home(myself, retry);
        } else if self.mode == Mode::Ramp
            && self.breaker.state() == State::Closed
            && self.breaker.admit_fraction() >= 1.0
        {
            self.switch(Mode::Home, "the fail-back ramp is over");
        }
    }

    /// Logs a change of where home traffic goes, once per change.
    pub(super) fn switch(&mut self, to: Mode, reason: &str) {
        if self.mode == to {
            return;
        }
        let from = self.mode;
        self.mode = to;
        match to {
            Mode::Home | Mode::Ramp => tracing::info!(
                region = %self.region,
                from = from.as_str(),
                to = to.as_str(),
                reason,
                "Routing switched."
            ),
            Mode::Failover | Mode::Buffering => tracing::warn!(
                region = %self.region,
                from = from.as_str(),
                to = to.as_str(),
                reason,
                "Routing switched."
            ),
        }
    }

    /// Sends events to the DLQ; each settles once the DLQ writer has them.
    pub(super) fn dead_letter(&mut self, events: Vec<InFlight>, reason: &str) {
        if events.is_empty() {
            return;
        }
        self.dead_lettered += events.len() as u64;
        tracing::warn!(region = %self.region, count = events.len(), reason, "Cross-region events dead-lettered.");
        let now = Utc::now();
        let letters = events
            .iter()
            .map(|item| {
                let mut letter = DeadLetterEvent::new(
                    uuid::Uuid::new_v4().to_string(),
                    &item.event.payload,
                    ErrorClass::CircuitOpen,
                    reason,
                    Stage::Route,
                    item.event.source.clone(),
                    now,
                );
                if let Some(id) = &item.event.correlation_id {
                    letter = letter.with_correlation_id(id.clone());
                }
                letter
            })
            .collect();
        // A DLQ writer that is down leaves the acks unsettled, so the source replays.
        let Some(written) = send_letters(&self.dlq, letters) else {
            return;
        };
        tokio::spawn(async move {
            if written.await.is_ok() {
                for item in events {
                    item.settlement.one_done();
                }
            }
        });
    }
}
