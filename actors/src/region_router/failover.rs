//! Where home traffic goes: home, owed (with a detour copy to the peer; also the part the
//! fail-back ramp holds back), or into the bounded buffer and, past its limits, the DLQ. Every
//! change of where it goes is logged once with its reason.

use super::*;

impl RegionRouterState {
    pub(super) fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Splits home traffic between home (what the ramp and the breaker admit) and the owed
    /// queue.
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
        if !refused.is_empty() && matches!(state, State::Open | State::ForcedOpen) {
            self.drain.region_failed();
        }
        let reason = if !refused.is_empty() {
            let reason = format!("the {} breaker is {state}", self.region);
            // Buffering says more (the owed queue fails too) until a write goes through again.
            if self.mode != Mode::Buffering {
                self.switch(Mode::Failover, &format!("home breaker is {state}"));
            }
            reason
        } else {
            let reason = format!(
                "the fail-back ramp admits {:.0} % to {}",
                fraction * 100.0,
                self.region
            );
            if ramped {
                self.switch(Mode::Ramp, &reason);
            }
            reason
        };
        away.extend(refused);
        if !calls.is_empty() {
            self.call(myself, calls, Origin::Home);
        }
        if !away.is_empty() {
            self.owe(myself, away, &reason);
        }
    }

    /// Sends copies of owed home traffic to the peer's bus, once per event: a detour for
    /// consumers in the other region while this one cannot take them.
    pub(super) fn send_detour(&mut self, items: &mut [InFlight]) {
        let copies: Vec<RoutedEvent> = items
            .iter_mut()
            .filter(|item| !item.detoured)
            .map(|item| {
                item.detoured = true;
                item.event.clone()
            })
            .collect();
        if copies.is_empty() {
            return;
        }
        self.failed_over += copies.len() as u64;
        let Some(peer) = &self.peer else {
            return;
        };
        if peer.cast(RegionRouterMsg::Detour(copies)).is_err() {
            tracing::debug!(region = %self.region, "The peer router is not running; no detour.");
        }
    }

    /// Puts the peer's detour copies on this region's bus, as far as the breaker lets them.
    pub(super) fn take_detour(
        &mut self,
        myself: &ActorRef<RegionRouterMsg>,
        events: Vec<RoutedEvent>,
    ) {
        let items = events.into_iter().map(InFlight::detour).collect();
        let (calls, refused) = self.acquire(items);
        if !refused.is_empty() {
            tracing::debug!(
                region = %self.region,
                count = refused.len(),
                "Detour copies refused by the breaker; their events stay owed to their own region."
            );
        }
        if !calls.is_empty() {
            self.call(myself, calls, Origin::Detour);
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
            self.dead_letter(
                overflow,
                ErrorClass::CircuitOpen,
                "failover buffer full: neither the region nor its owed queue took the event",
            );
        }
    }

    /// Polls the breaker, lets a forcing lapse without word from the prober, expires old
    /// buffered events to the DLQ, gives the rest another try, and drains the owed queue.
    pub(super) fn tick(&mut self, myself: &ActorRef<RegionRouterMsg>) {
        self.breaker.poll();
        if self.breaker.state() == State::ForcedOpen
            && self.last_health.elapsed() > self.health_lease
        {
            tracing::warn!(
                region = %self.region,
                silent_ms = self.last_health.elapsed().as_millis() as u64,
                "No word from the health prober that forced the breaker open; the forcing lapses into half-open trials."
            );
            self.breaker.health_recovered();
        }
        let expired = self.buffer.expired(self.now());
        if !expired.is_empty() {
            self.dead_letter(
                expired,
                ErrorClass::CircuitOpen,
                "neither the region nor its owed queue took the event within routing.failover_max_wait_ms",
            );
        }
        let home_refuses = matches!(self.breaker.state(), State::Open | State::ForcedOpen);
        if !self.buffer.is_empty() && (self.drain.may_write() || !home_refuses) {
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
        self.sample_owed(myself);
        self.drain_owed(myself);
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

    /// Sends home events to the DLQ as `route` letters carrying their owed record (which a
    /// redrive delivers to this region); each settles once the DLQ writer has it. Detour copies
    /// are not dead-lettered: their events are owed to their own region already.
    pub(super) fn dead_letter(&mut self, events: Vec<InFlight>, class: ErrorClass, reason: &str) {
        let events: Vec<InFlight> = events.into_iter().filter(|i| !i.is_detour()).collect();
        if events.is_empty() {
            return;
        }
        self.dead_lettered += events.len() as u64;
        tracing::warn!(region = %self.region, count = events.len(), reason, "Cross-region events dead-lettered.");
        let now = Utc::now();
        let breaker = self.breaker.state().as_str();
        let letters = events
            .iter()
            .map(|item| {
                // The owed record when the event packs; a payload too large to pack is kept
                // as it came (it cannot cross regions, so nothing will replay it there).
                let payload = self
                    .owed_record(item, reason, now)
                    .unwrap_or_else(|_| item.event.payload.to_vec());
                let mut letter = DeadLetterEvent::new(
                    uuid::Uuid::new_v4().to_string(),
                    &payload,
                    class,
                    reason,
                    Stage::Route,
                    item.event.source.clone(),
                    now,
                )
                .with_breaker(breaker, self.region.clone());
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
                    item.settle();
                }
            }
        });
    }
}
