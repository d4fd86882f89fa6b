//! Events owed to the router's region: recording what the region could not take in its owed
//! queue (the acknowledgement settles once SQS has the record), and draining that queue onto the
//! region's bus whenever the breaker lets calls through again.
//!
//! The drain runs up to [`DRAIN_ROUNDS`] rounds at once, each one `ReceiveMessage` of up to ten
//! records, one `PutEvents` under a breaker permit (so the drain's calls are also the half-open
//! trials that close the breaker), and one `DeleteMessageBatch` of what EventBridge took. A round
//! that found records starts the next at once; one that found none stops the drain until the
//! router records events again or a depth sample finds some (another process's). It runs while
//! the breaker is half-open, or closed with no failed call to the region for
//! [`QUIET_BEFORE_DRAIN`]: a region that just failed a call is not fed its backlog before its
//! breaker has had the chance to open.

use super::calls::put_within;
use super::*;

/// Drain rounds in flight at once, per router.
const DRAIN_ROUNDS: usize = 4;

/// How often the owed queue's depth is sampled (the gauge, and whether to drain).
const SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// How long a closed breaker's region must go without a failed call before the drain runs.
const QUIET_BEFORE_DRAIN: Duration = Duration::from_secs(5);

/// The first wait before the owed queue is written again after it failed; it doubles per failure
/// up to [`OWED_RETRY_MAX`], so a struggling SQS is not called every tick.
const OWED_RETRY_FIRST: Duration = Duration::from_millis(250);

/// The longest wait between writes to a failing owed queue.
const OWED_RETRY_MAX: Duration = Duration::from_secs(5);

/// Records per SQS batch (SQS's limit).
const SQS_BATCH: usize = 10;

/// The router's view of its owed queue.
#[derive(Debug)]
pub(super) struct Drain {
    /// Rounds in flight.
    rounds: usize,
    /// Whether the queue may hold records: set when the router records some, when a sample
    /// finds some, and at start (a previous process may have left some); cleared when a read
    /// comes back empty.
    maybe_waiting: bool,
    /// Whether a depth sample is in flight.
    sampling: bool,
    /// When the last sample was taken.
    sampled_at: Option<Instant>,
    /// The last sample.
    waiting: Option<u64>,
    /// Events delivered since the recovery began (for its log lines); `None` when none runs.
    recovering: Option<u64>,
    /// When a call to the region last failed (or the open breaker refused one).
    failed_at: Option<Instant>,
    /// Writes to the owed queue that failed in a row.
    write_failures: u32,
    /// No write to the owed queue before this, after a failed one.
    write_again_at: Option<Instant>,
}

impl Drain {
    pub(super) fn new() -> Self {
        Self {
            rounds: 0,
            maybe_waiting: true,
            sampling: false,
            sampled_at: None,
            waiting: None,
            recovering: None,
            failed_at: None,
            write_failures: 0,
            write_again_at: None,
        }
    }

    /// Whether the owed queue may be written now (it is not backing off after a failure).
    pub(super) fn may_write(&self) -> bool {
        self.write_again_at.is_none_or(|at| Instant::now() >= at)
    }

    /// A write to the owed queue failed: back off before the next.
    fn write_failed(&mut self) {
        self.write_failures = self.write_failures.saturating_add(1);
        let wait = OWED_RETRY_FIRST
            .saturating_mul(1 << self.write_failures.min(8))
            .min(OWED_RETRY_MAX);
        self.write_again_at = Some(Instant::now() + wait);
    }

    /// A write to the owed queue went through.
    fn write_went_through(&mut self) {
        self.write_failures = 0;
        self.write_again_at = None;
    }

    /// A call to the region failed, or the open breaker refused one: hold the drain.
    pub(super) fn region_failed(&mut self) {
        self.failed_at = Some(Instant::now());
    }

    /// The region took events: the drain may run.
    pub(super) fn region_took(&mut self) {
        self.failed_at = None;
    }

    /// The owed queue's depth when last sampled.
    pub(super) fn waiting(&self) -> Option<u64> {
        self.waiting
    }
}

/// The outcome of writing owed records: the events and, per event, whether SQS has its record.
#[derive(Debug)]
pub struct OwedWrite {
    /// The events, in the order of `results`.
    items: Vec<InFlight>,
    /// One result per event.
    results: Vec<Result<(), SinkError>>,
}

/// What a drain round read from the owed queue.
#[derive(Debug)]
pub struct OwedRead(Result<Vec<ReceivedOwed>, SinkError>);

/// The outcome of a drain round's `PutEvents`.
#[derive(Debug)]
pub struct Redelivery {
    /// The call's permit.
    permit: Permit,
    /// How long the call took.
    duration: Duration,
    /// The records sent, with their receipt handles.
    owed: Vec<(OwedEvent, String)>,
    /// One result per record, or the call's error.
    result: Result<Vec<Result<String, SinkError>>, SinkError>,
}

/// Most bytes of an owed record's `reason`.
const MAX_REASON_BYTES: usize = 1024;

/// `text` cut to at most `max` bytes, on a character boundary.
fn capped(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

impl RegionRouterState {
    /// The owed record of one event, as the body SQS keeps.
    pub(super) fn owed_record(
        &mut self,
        item: &InFlight,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<u8>, String> {
        let packed = self.pack_envelope(&item.event)?;
        let owed = OwedEvent {
            target_region: self.region.clone(),
            // Capped, so the record of the largest whole event still fits one SQS message
            // (`eda_core::claim_check::WRAPPER_BYTES`); an SDK error can run to kilobytes.
            reason: capped(reason, MAX_REASON_BYTES),
            owed_at: now,
            source: item.event.source.clone(),
            envelope: packed.envelope,
        };
        owed.to_body(MAX_OWED_MESSAGE_BYTES)
            .map(String::into_bytes)
            .map_err(|e| e.to_string())
    }

    /// Records home events the region cannot take now in its owed queue, and sends their detour
    /// copies to the peer. The outcome comes back as `Recorded`.
    pub(super) fn owe(
        &mut self,
        myself: &ActorRef<RegionRouterMsg>,
        mut items: Vec<InFlight>,
        reason: &str,
    ) {
        self.send_detour(&mut items);
        if !self.drain.may_write() {
            // The owed queue failed a moment ago: wait in the buffer, tried again after the
            // backoff.
            self.buffer_all(items);
            return;
        }
        let now = Utc::now();
        let mut bodies = Vec::with_capacity(items.len());
        let mut kept = Vec::with_capacity(items.len());
        for item in items {
            match self.owed_record(&item, reason, now) {
                Ok(body) => {
                    bodies.push(String::from_utf8(body).unwrap_or_default());
                    kept.push(item);
                }
                Err(why) => self.dead_letter(vec![item], ErrorClass::TooLarge, &why),
            }
        }
        if kept.is_empty() {
            return;
        }
        let owed = self.owed.clone();
        let timeout = self.call_timeout;
        let myself = myself.clone();
        tokio::spawn(async move {
            let results = send_owed(owed.as_ref(), &bodies, timeout).await;
            // A router that stopped meanwhile drops the events unsettled: their source replays
            // them (what SQS took is delivered too: the same event ids).
            let _ = myself.cast(RegionRouterMsg::Recorded(OwedWrite {
                items: kept,
                results,
            }));
        });
    }

    /// Settles what the owed queue took; buffers what it may take later; dead-letters what it
    /// refused on its merits.
    pub(super) fn recorded(&mut self, write: OwedWrite) {
        let mut owed = 0u64;
        let mut retry = Vec::new();
        let mut last_error = None;
        for (item, result) in write.items.into_iter().zip(write.results) {
            match result {
                Ok(()) => {
                    owed += 1;
                    item.settle();
                }
                Err(err) if err.is_retryable() => {
                    last_error = Some(err.to_string());
                    retry.push(item);
                }
                Err(err) => self.dead_letter(
                    vec![item],
                    err.class,
                    &format!("the owed queue refused the event: {err}"),
                ),
            }
        }
        if retry.is_empty() {
            self.drain.write_went_through();
            if self.mode == Mode::Buffering {
                self.switch(Mode::Failover, "the owed queue takes events again");
            }
        } else {
            self.drain.write_failed();
        }
        if owed > 0 {
            self.owed_recorded += owed;
            self.drain.maybe_waiting = true;
            EventsOwed {
                region: &self.region,
                count: owed,
            }
            .emit(&self.metrics);
        }
        if !retry.is_empty() {
            self.switch(
                Mode::Buffering,
                &format!(
                    "the owed queue did not take the events either: {}",
                    last_error.unwrap_or_default()
                ),
            );
            self.buffer_all(retry);
        }
    }

    /// A stopping router's last try: records `items` in the owed queue off the actor and settles
    /// what SQS took; the rest stays unacknowledged, so its source replays it.
    pub(super) fn record_detached(&mut self, items: Vec<InFlight>) {
        if items.is_empty() {
            return;
        }
        let now = Utc::now();
        let mut bodies = Vec::with_capacity(items.len());
        let mut kept = Vec::with_capacity(items.len());
        for item in items {
            if let Ok(body) = self.owed_record(&item, "the region router stopped", now) {
                bodies.push(String::from_utf8(body).unwrap_or_default());
                kept.push(item);
            }
        }
        let owed = self.owed.clone();
        let timeout = self.call_timeout;
        tokio::spawn(async move {
            let results = send_owed(owed.as_ref(), &bodies, timeout).await;
            for (item, result) in kept.into_iter().zip(results) {
                if result.is_ok() {
                    item.settle();
                }
            }
        });
    }

    /// Starts drain rounds while the breaker lets calls through and the queue may hold records.
    pub(super) fn drain_owed(&mut self, myself: &ActorRef<RegionRouterMsg>) {
        let admits = match self.breaker.state() {
            State::HalfOpen => true,
            State::Closed | State::Disabled => self
                .drain
                .failed_at
                .is_none_or(|at| at.elapsed() >= QUIET_BEFORE_DRAIN),
            State::Open | State::ForcedOpen => false,
        };
        if !admits {
            return;
        }
        // A half-open breaker hands out few permits: one round at a time then.
        let rounds = if self.breaker.state() == State::HalfOpen {
            1
        } else {
            DRAIN_ROUNDS
        };
        // Hidden from other readers while this round delivers: longer than a call can take.
        let visibility = i32::try_from((self.call_timeout * 3).as_secs().max(2)).unwrap_or(30);
        while self.drain.maybe_waiting && self.drain.rounds < rounds {
            self.drain.rounds += 1;
            let owed = self.owed.clone();
            let myself = myself.clone();
            let timeout = self.call_timeout;
            tokio::spawn(async move {
                let read =
                    match tokio::time::timeout(timeout, owed.receive(SQS_BATCH as i32, visibility))
                        .await
                    {
                        Ok(read) => read,
                        Err(_) => Err(sqs_timeout("ReceiveMessage", timeout)),
                    };
                let _ = myself.cast(RegionRouterMsg::OwedRead(OwedRead(read)));
            });
        }
    }

    /// Puts what a round read on the region's bus, under one permit.
    pub(super) fn owed_read(&mut self, myself: &ActorRef<RegionRouterMsg>, read: OwedRead) {
        let messages = match read.0 {
            Ok(messages) => messages,
            Err(err) => {
                self.drain.rounds -= 1;
                tracing::debug!(region = %self.region, error = %err, "Owed queue not read.");
                return;
            }
        };
        if messages.is_empty() {
            self.drain.rounds -= 1;
            self.drain.maybe_waiting = false;
            if self.drain.rounds == 0 {
                if let Some(delivered) = self.drain.recovering.take() {
                    tracing::info!(
                        region = %self.region,
                        delivered,
                        "Owed events delivered; none left in the owed queue."
                    );
                }
            }
            return;
        }
        let mut owed = Vec::with_capacity(messages.len());
        let mut entries = Vec::with_capacity(messages.len());
        for message in messages {
            let entry = OwedEvent::from_body(message.body.as_bytes())
                .map_err(|e| e.to_string())
                .and_then(|record| {
                    if record.target_region != self.region {
                        return Err(format!(
                            "owed to {}, read by the router of {}",
                            record.target_region, self.region
                        ));
                    }
                    let entry = record.entry(&self.target()).map_err(|e| e.to_string())?;
                    Ok((record, entry))
                });
            match entry {
                Ok((record, entry)) => {
                    owed.push((record, message.receipt_handle));
                    entries.push(entry);
                }
                Err(why) => self.stray(message, &why),
            }
        }
        if owed.is_empty() {
            self.drain.rounds -= 1;
            self.drain_owed(myself);
            return;
        }
        let permit = match self.breaker.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                // The records reappear after the read's visibility timeout.
                self.drain.rounds -= 1;
                self.rejected(1);
                return;
            }
        };
        if self.drain.recovering.is_none() {
            tracing::info!(region = %self.region, "Delivering the events owed to the region.");
            self.drain.recovering = Some(0);
        }
        let publisher = self.publisher.clone();
        let queue = self.owed.clone();
        let timeout = self.call_timeout;
        let myself = myself.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = put_within(publisher.as_ref(), &entries, timeout).await;
            let duration = started.elapsed();
            if let Ok(results) = &result {
                let delivered: Vec<String> = owed
                    .iter()
                    .zip(results)
                    .filter(|(_, r)| r.is_ok())
                    .map(|((_, handle), _)| handle.clone())
                    .collect();
                if let Err(err) = queue.delete_batch(&delivered).await {
                    // They reappear and are delivered again: duplicates with the same ids.
                    tracing::warn!(error = %err, "Delivered owed events not deleted from the owed queue.");
                }
            }
            let _ = myself.cast(RegionRouterMsg::Redelivered(Redelivery {
                permit,
                duration,
                owed,
                result,
            }));
        });
    }

    /// Feeds a drain round's call to the breaker, counts what it delivered, dead-letters what
    /// the region refused on its merits, and goes on draining.
    pub(super) fn redelivered(&mut self, myself: &ActorRef<RegionRouterMsg>, round: Redelivery) {
        self.drain.rounds -= 1;
        let Redelivery {
            permit,
            duration,
            owed,
            result,
        } = round;
        let mut delivered = 0u64;
        let mut oldest: Option<DateTime<Utc>> = None;
        let mut refused = Vec::new();
        match result {
            Ok(results) if results.len() == owed.len() => {
                self.breaker.record_success(permit, duration);
                for ((record, handle), result) in owed.into_iter().zip(results) {
                    match result {
                        Ok(_) => {
                            delivered += 1;
                            let at = record.envelope.created_at;
                            oldest = Some(oldest.map_or(at, |o| o.min(at)));
                        }
                        // Left in the queue: it reappears for another round.
                        Err(err) if err.is_retryable() => {}
                        Err(err) => refused.push((record, handle, err)),
                    }
                }
            }
            Ok(_) => {
                self.drain.region_failed();
                self.call_failed(permit, duration);
            }
            Err(err) if err.is_retryable() => {
                self.drain.region_failed();
                self.call_failed(permit, duration);
            }
            Err(err) => {
                self.breaker.record_success(permit, duration);
                refused.extend(owed.into_iter().map(|(r, h)| (r, h, err.clone())));
            }
        }
        for (record, handle, err) in refused {
            self.dead_letter_owed(record, handle, err.class, &err.to_string());
        }
        if delivered > 0 {
            self.drain.region_took();
            if self.breaker.state() == State::Closed {
                let to = if self.breaker.admit_fraction() >= 1.0 {
                    Mode::Home
                } else {
                    Mode::Ramp
                };
                self.switch(to, "the region takes its owed events again");
            }
            self.recovered += delivered;
            if let Some(count) = &mut self.drain.recovering {
                *count += delivered;
            }
            OwedEventsRecovered {
                region: &self.region,
                count: delivered,
            }
            .emit(&self.metrics);
            self.delivered_now(delivered, oldest);
            // There may be more: the next round starts at once.
            self.drain.maybe_waiting = true;
        }
        self.drain_owed(myself);
    }

    /// Samples the owed queue's depth every [`SAMPLE_EVERY`].
    pub(super) fn sample_owed(&mut self, myself: &ActorRef<RegionRouterMsg>) {
        let due = self
            .drain
            .sampled_at
            .is_none_or(|at| at.elapsed() >= SAMPLE_EVERY);
        if self.drain.sampling || !due {
            return;
        }
        self.drain.sampling = true;
        self.drain.sampled_at = Some(Instant::now());
        let owed = self.owed.clone();
        let myself = myself.clone();
        let timeout = self.call_timeout;
        tokio::spawn(async move {
            let depth = match tokio::time::timeout(timeout, owed.depth()).await {
                Ok(depth) => depth,
                Err(_) => Err(sqs_timeout("GetQueueAttributes", timeout)),
            };
            let _ = myself.cast(RegionRouterMsg::OwedDepth(depth));
        });
    }

    /// Takes a depth sample: the gauge, and whether there is anything to drain.
    pub(super) fn owed_depth(&mut self, depth: Result<u64, SinkError>) {
        self.drain.sampling = false;
        match depth {
            Ok(waiting) => {
                self.drain.waiting = Some(waiting);
                if waiting > 0 {
                    self.drain.maybe_waiting = true;
                }
                OwedEventsWaiting {
                    region: &self.region,
                    count: waiting,
                }
                .emit(&self.metrics);
            }
            Err(err) => {
                tracing::debug!(region = %self.region, error = %err, "Owed queue depth not read.")
            }
        }
    }

    /// An owed record the region refused on its merits: a `route` dead letter, removed from the
    /// owed queue once the DLQ has it.
    fn dead_letter_owed(
        &mut self,
        record: OwedEvent,
        handle: String,
        class: ErrorClass,
        why: &str,
    ) {
        let body = serde_json::to_vec(&record).unwrap_or_default();
        let mut letter = DeadLetterEvent::new(
            uuid::Uuid::new_v4().to_string(),
            &body,
            class,
            &format!("{} refused an owed event: {why}", self.region),
            Stage::Route,
            record.source.clone(),
            Utc::now(),
        )
        .with_breaker(self.breaker.state().as_str(), self.region.clone());
        if let Some(id) = &record.envelope.correlation_id {
            letter = letter.with_correlation_id(id.clone());
        }
        self.dead_lettered += 1;
        tracing::warn!(region = %self.region, event_id = %record.envelope.event_id, reason = why, "Owed event dead-lettered.");
        self.letter_then_delete(letter, handle);
    }

    /// A message in the owed queue that is no owed record of this region (damaged, or owed to
    /// another region through a misconfigured queue): a `route` dead letter with its body, so
    /// `dlq redrive` delivers what it can to its own target.
    fn stray(&mut self, message: ReceivedOwed, why: &str) {
        tracing::warn!(region = %self.region, reason = why, "Stray message in the owed queue; dead-lettered.");
        let letter = DeadLetterEvent::new(
            uuid::Uuid::new_v4().to_string(),
            message.body.as_bytes(),
            ErrorClass::Internal,
            &format!("not an owed event of {}: {why}", self.region),
            Stage::Route,
            DeadLetterSource::EventBridge {
                event_id: String::new(),
            },
            Utc::now(),
        );
        self.dead_lettered += 1;
        self.letter_then_delete(letter, message.receipt_handle);
    }

    /// Writes `letter` to the DLQ, then deletes the owed message it came from; if the DLQ does
    /// not take it, the message stays in the owed queue.
    fn letter_then_delete(&self, letter: DeadLetterEvent, handle: String) {
        let Some(written) = send_letters(&self.dlq, vec![letter]) else {
            return;
        };
        let owed = self.owed.clone();
        tokio::spawn(async move {
            if written.await.is_ok() {
                let _ = owed.delete_batch(std::slice::from_ref(&handle)).await;
            }
        });
    }
}

/// Sends owed records in batches of ten, each call ended by `timeout`; one result per body.
async fn send_owed(
    owed: &dyn OwedQueue,
    bodies: &[String],
    timeout: Duration,
) -> Vec<Result<(), SinkError>> {
    let mut results = Vec::with_capacity(bodies.len());
    for chunk in bodies.chunks(SQS_BATCH) {
        match tokio::time::timeout(timeout, owed.send_batch(chunk)).await {
            Ok(Ok(sent)) if sent.len() == chunk.len() => results.extend(sent),
            Ok(Ok(_)) => results.extend(chunk.iter().map(|_| {
                Err(SinkError {
                    service: "sqs",
                    operation: "SendMessageBatch",
                    class: ErrorClass::Server,
                    message: "an answer that does not match the request".into(),
                })
            })),
            Ok(Err(err)) => results.extend(chunk.iter().map(|_| Err(err.clone()))),
            Err(_) => results.extend(
                chunk
                    .iter()
                    .map(|_| Err(sqs_timeout("SendMessageBatch", timeout))),
            ),
        }
    }
    results
}

fn sqs_timeout(operation: &'static str, timeout: Duration) -> SinkError {
    SinkError {
        service: "sqs",
        operation,
        class: ErrorClass::Timeout,
        message: format!("no answer within {} ms", timeout.as_millis()),
    }
}
