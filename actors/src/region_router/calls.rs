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
        if rejected_calls > 0 {
            BreakerCallsRejected {
                region: &self.region,
                count: rejected_calls,
            }
            .emit(&self.metrics);
        }
        (calls, refused)
    }

    /// Packs and publishes each permitted chunk in a task; the outcomes come back as
    /// `Attempted`. `refused` rides along, undelivered, so a failover reply stays one message.
    pub(super) fn call(
        &mut self,
        myself: &ActorRef<RegionRouterMsg>,
        calls: Vec<(Permit, Vec<InFlight>)>,
        origin: Origin,
        refused: Vec<InFlight>,
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
            self.dead_letter(vec![item], &reason);
        }
        let publisher = self.publisher.clone();
        let timeout = self.call_timeout;
        let myself = myself.clone();
        tokio::spawn(async move {
            let mut outcomes = Vec::with_capacity(packed_calls.len());
            for (permit, events, entries) in packed_calls {
                let started = Instant::now();
                let result = if entries.is_empty() {
                    Ok(Vec::new())
                } else {
                    match tokio::time::timeout(timeout, publisher.put_events(&entries)).await {
                        Ok(result) => result,
                        Err(_) => Err(SinkError {
                            service: "eventbridge",
                            operation: "PutEvents",
                            class: ErrorClass::Timeout,
                            message: format!("no answer within {} ms", timeout.as_millis()),
                        }),
                    }
                };
                outcomes.push(CallOutcome {
                    permit: MaybePermit::Permit(permit),
                    events,
                    duration: started.elapsed(),
                    result,
                });
            }
            if !refused.is_empty() {
                outcomes.push(CallOutcome {
                    permit: MaybePermit::Refused,
                    events: refused,
                    duration: Duration::ZERO,
                    result: Ok(Vec::new()),
                });
            }
            if let Err(MessagingErr::SendErr(RegionRouterMsg::Attempted { calls, origin })) = myself
                .cast(RegionRouterMsg::Attempted {
                    calls: outcomes,
                    origin,
                })
            {
                // The router stopped meanwhile: hand the events back rather than lose them.
                let events: Vec<InFlight> = calls.into_iter().flat_map(|c| c.events).collect();
                if let Origin::Peer(reply) = origin {
                    let _ = reply.send(events);
                }
            }
        });
    }

    /// The EventBridge entry carrying one event's envelope to this region's bus.
    pub(super) fn pack(&mut self, event: &RoutedEvent) -> Result<EventBridgeEntry, String> {
        let meta = EnvelopeMeta {
            event_id: &event.event_id,
            source_region: &self.source_region,
            target_region: &self.region,
            event_type: &event.event_type,
            correlation_id: event.correlation_id.as_deref(),
            created_at: Utc::now(),
        };
        let target = EntryTarget {
            source: CROSS_REGION_SOURCE,
            event_bus_name: Some(self.publisher.bus()),
        };
        self.packer
            .pack_entry(&meta, &event.payload, &target, None)
            .map(|packed| packed.entry)
            .map_err(|e| e.to_string())
    }

    /// Feeds each call's outcome to the breaker, settles what was delivered, dead-letters what
    /// the region refused on its merits, and returns what is worth another region's try.
    pub(super) fn settle_calls(&mut self, calls: Vec<CallOutcome>) -> Vec<InFlight> {
        let mut undelivered = Vec::new();
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
                    if let Some(permit) = permit.into_permit() {
                        self.breaker.record_success(permit, duration);
                    }
                    for (item, result) in events.into_iter().zip(results) {
                        match result {
                            Ok(_) => {
                                delivered += 1;
                                oldest = Some(oldest.map_or(item.event.created_at, |o| {
                                    o.min(item.event.created_at)
                                }));
                                item.settlement.one_done();
                            }
                            Err(err) if err.is_retryable() => undelivered.push(item),
                            Err(err) => self.dead_letter(vec![item], &err.to_string()),
                        }
                    }
                }
                Ok(_) => {
                    // Refused by the breaker (no call was made), or an answer that does not
                    // match the request: another region's try.
                    if let Some(permit) = permit.into_permit() {
                        self.breaker.record_failure(permit, duration);
                        BreakerCallFailed {
                            region: &self.region,
                        }
                        .emit(&self.metrics);
                    }
                    undelivered.extend(events);
                }
                Err(err) => {
                    if let Some(permit) = permit.into_permit() {
                        if err.is_retryable() {
                            self.breaker.record_failure(permit, duration);
                            BreakerCallFailed {
                                region: &self.region,
                            }
                            .emit(&self.metrics);
                        } else {
                            // The region answered; the request itself was wrong.
                            self.breaker.record_success(permit, duration);
                        }
                    }
                    if err.is_retryable() {
                        undelivered.extend(events);
                    } else {
                        self.dead_letter(events, &err.to_string());
                    }
                }
            }
        }
        if delivered > 0 {
            self.delivered += delivered;
            let latency = oldest
                .and_then(|o| (Utc::now() - o).to_std().ok())
                .unwrap_or_default();
            CrossRegionDelivered {
                source_region: &self.source_region,
                target_region: &self.region,
                count: delivered,
                latency,
            }
            .emit(&self.metrics);
        }
        undelivered
    }
}

/// A permit, or none for events the breaker refused before any call.
#[derive(Debug)]
pub enum MaybePermit {
    /// The call's permit.
    Permit(Permit),
    /// No call was made.
    Refused,
}

impl MaybePermit {
    pub(super) fn into_permit(self) -> Option<Permit> {
        match self {
            MaybePermit::Permit(p) => Some(p),
            MaybePermit::Refused => None,
        }
    }
}
