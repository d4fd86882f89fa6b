//! The calls to the region's bus: a breaker permit per `PutEvents` call of up to ten packed
//! envelopes, made in a task, and each outcome fed back to the breaker.

use super::*;

impl RegionRouterState {
    /// Asks the breaker for one permit per call-sized chunk; returns the permitted chunks and the
    /// events the breaker refused.
    pub(super) fn acquire(
        &mut self,
        events: Vec<InFlight>,
    ) -> (Vec<(Permit, Vec<InFlight>)>, Vec<InFlight>) {
        let mut calls = Vec::new();
        let mut refused = Vec::new();
        let mut rejected_calls = 0u64;
        let mut events = events.into_iter().peekable();
        while events.peek().is_some() {
            let chunk: Vec<InFlight> = events.by_ref().take(MAX_ENTRIES_PER_CALL).collect();
            match self.breaker.try_acquire() {
                Ok(permit) => calls.push((permit, chunk)),
                Err(_) => {
                    rejected_calls += 1;
                    refused.extend(chunk);
                }
            }
        }
        self.rejected(rejected_calls);
        (calls, refused)
    }

    /// Counts calls the breaker refused.
    pub(super) fn rejected(&self, calls: u64) {
        if calls > 0 {
            BreakerCallsRejected {
                region: &self.region,
                count: calls,
            }
            .emit(&self.metrics);
        }
    }

    /// Packs and publishes each permitted chunk in a task; the outcomes come back as
    /// `Attempted`.
    pub(super) fn call(
        &mut self,
        myself: &ActorRef<RegionRouterMsg>,
        calls: Vec<(Permit, Vec<InFlight>)>,
        origin: Origin,
    ) {
        let mut packed_calls = Vec::with_capacity(calls.len());
        let mut too_large = Vec::new();
        for (permit, events) in calls {
            let mut entries = Vec::with_capacity(events.len());
            let mut keep = Vec::with_capacity(events.len());
            for item in events {
                match self.pack(&item.event) {
                    Ok(entry) => {
                        entries.push(entry);
                        keep.push(item);
                    }
                    Err(reason) => too_large.push((item, reason)),
                }
            }
            packed_calls.push((permit, keep, entries));
        }
        for (item, reason) in too_large {
            self.dead_letter(vec![item], ErrorClass::TooLarge, &reason);
        }
        let publisher = self.publisher.clone();
        let timeout = self.call_timeout;
        let myself = myself.clone();
        tokio::spawn(async move {
            // The calls of one dispatch go at once, each answered in its own time: one after
            // the other, a batch of N events waited N/10 round trips for its last call (the
            // bound of `make bench-e2e`'s fixed-rate run, where each call takes 1 ms or more).
            let outcomes = futures_util::future::join_all(packed_calls.into_iter().map(
                |(permit, events, entries)| {
                    let publisher = publisher.as_ref();
                    async move {
                        let started = Instant::now();
                        let result = if entries.is_empty() {
                            Ok(Vec::new())
                        } else {
                            put_within(publisher, &entries, timeout).await
                        };
                        CallOutcome {
                            permit,
                            events,
                            duration: started.elapsed(),
                            result,
                        }
                    }
                },
            ))
            .await;
            // A router that stopped meanwhile drops the events unsettled: their source replays
            // them.
            let _ = myself.cast(RegionRouterMsg::Attempted {
                calls: outcomes,
                origin,
            });
        });
    }

    /// The EventBridge entry carrying one event's envelope to this region's bus.
    pub(super) fn pack(&mut self, event: &RoutedEvent) -> Result<EventBridgeEntry, String> {
        self.pack_envelope(event).map(|packed| packed.entry)
    }

    /// One event packed for this region: the envelope and the entry carrying it.
    pub(super) fn pack_envelope(&mut self, event: &RoutedEvent) -> Result<PackedEntry, String> {
        let meta = EnvelopeMeta {
            event_id: &event.event_id,
            source_region: &self.source_region,
            target_region: &self.region,
            event_type: &event.event_type,
            correlation_id: event.correlation_id.as_deref(),
            traceparent: event.traceparent.as_deref(),
            created_at: Utc::now(),
        };
        let target = EntryTarget {
            source: CROSS_REGION_SOURCE,
            event_bus_name: Some(self.publisher.bus()),
        };
        self.packer
            .pack_entry(&meta, &event.payload, &target, None)
            .map_err(|e| e.to_string())
    }

    /// Where this router's entries go.
    pub(super) fn target(&self) -> EntryTarget<'_> {
        EntryTarget {
            source: CROSS_REGION_SOURCE,
            event_bus_name: Some(self.publisher.bus()),
        }
    }

    /// Feeds each call's outcome to the breaker, settles what was delivered, dead-letters what
    /// the region refused on its merits, and returns what is worth another try, with the last
    /// error seen.
    pub(super) fn settle_calls(
        &mut self,
        calls: Vec<CallOutcome>,
    ) -> (Vec<InFlight>, Option<String>) {
        let mut undelivered = Vec::new();
        let mut last_error = None;
        let mut delivered = 0u64;
        let mut oldest: Option<DateTime<Utc>> = None;
        for call in calls {
            let CallOutcome {
                permit,
                events,
                duration,
                result,
            } = call;
            match result {
                Ok(results) if results.len() == events.len() => {
                    self.breaker.record_success(permit, duration);
                    for (item, result) in events.into_iter().zip(results) {
                        match result {
                            Ok(_) => {
                                delivered += 1;
                                oldest = Some(oldest.map_or(item.event.created_at, |o| {
                                    o.min(item.event.created_at)
                                }));
                                item.settle();
                            }
                            Err(err) if err.is_retryable() => {
                                last_error = Some(err.to_string());
                                undelivered.push(item);
                            }
                            Err(err) => self.dead_letter(vec![item], err.class, &err.to_string()),
                        }
                    }
                }
                Ok(_) => {
                    // An answer that does not match the request: another try.
                    self.call_failed(permit, duration);
                    last_error = Some("an answer that does not match the request".into());
                    undelivered.extend(events);
                }
                Err(err) => {
                    if err.is_retryable() {
                        self.call_failed(permit, duration);
                    } else {
                        // The region answered; the request itself was wrong.
                        self.breaker.record_success(permit, duration);
                    }
                    if err.is_retryable() {
                        last_error = Some(err.to_string());
                        undelivered.extend(events);
                    } else {
                        self.dead_letter(events, err.class, &err.to_string());
                    }
                }
            }
        }
        self.delivered_now(delivered, oldest);
        (undelivered, last_error)
    }

    /// Returns a failed call's permit to the breaker, counted.
    pub(super) fn call_failed(&mut self, permit: Permit, duration: Duration) {
        self.breaker.record_failure(permit, duration);
        BreakerCallFailed {
            region: &self.region,
        }
        .emit(&self.metrics);
    }

    /// Counts `count` events delivered to this region, the oldest produced at `oldest`.
    pub(super) fn delivered_now(&mut self, count: u64, oldest: Option<DateTime<Utc>>) {
        if count == 0 {
            return;
        }
        self.delivered += count;
        let latency = oldest
            .and_then(|o| (Utc::now() - o).to_std().ok())
            .unwrap_or_default();
        CrossRegionDelivered {
            source_region: &self.source_region,
            target_region: &self.region,
            count,
            latency,
        }
        .emit(&self.metrics);
    }
}

/// One `PutEvents` call, ended by `timeout` if the region does not answer.
pub(super) async fn put_within(
    publisher: &dyn EventPublisher,
    entries: &[EventBridgeEntry],
    timeout: Duration,
) -> Result<Vec<Result<String, SinkError>>, SinkError> {
    match tokio::time::timeout(timeout, publisher.put_events(entries)).await {
        Ok(result) => result,
        Err(_) => Err(SinkError {
            service: "eventbridge",
            operation: "PutEvents",
            class: ErrorClass::Timeout,
            message: format!("no answer within {} ms", timeout.as_millis()),
        }),
    }
}
