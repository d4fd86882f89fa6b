//! The metrics reference: every family `/metrics` exposes, with its type, labels and meaning,
//! read from the registry itself so it cannot drift from the code.
//!
//! [`populated`] builds a registry in which every [`InternalEvent`] has been emitted once, so every
//! family has a series and its label names show in the encoding; [`families`] parses an
//! OpenMetrics text back into one [`Family`] per metric; [`markdown`] renders the reference in
//! `docs/metrics.md` from both, plus the values each bounded label can take. A test fails when
//! that file differs (run `UPDATE_DOCS=1 cargo test -p eda-actors --lib reference` to refresh),
//! and another when a family has no series in [`populated`], so a new metric cannot ship without
//! its row. The dashboards and alerts under `deploy/` are checked against that table by
//! `deploy/check.sh`.

use super::events::*;
use super::labels::{
    ActorKind, ApplyStage, AwsCall, BreakerState, CdcOperation, DlqSource, DynamoDbOperation,
    DynamoDbOutcome, ErrorClass, HealthStatus, LambdaFunction, OversizeKind, Service,
};
use super::metrics::Metrics;
use super::names::{label, outcome};
use std::time::Duration;

/// One metric family as exposed on `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// The family name (`eda_kafka_messages_consumed`, `eda_lambda_duration_seconds`).
    pub name: String,
    /// `counter`, `gauge` or `histogram`.
    pub kind: String,
    /// Label names of the family's first series, in order, without a histogram's `le`.
    pub labels: Vec<String>,
    /// The `# HELP` text.
    pub help: String,
    /// Whether any series of the family was present in the text.
    pub has_series: bool,
}

impl Family {
    /// The name a PromQL query uses: counters gain `_total`; a histogram is queried through
    /// `_bucket`, `_sum` and `_count` and is named here by its family name.
    pub fn query_name(&self) -> String {
        if self.kind == "counter" {
            format!("{}_total", self.name)
        } else {
            self.name.clone()
        }
    }
}

/// A registry with one of every event emitted once, so that every family has a series.
pub fn populated() -> Metrics {
    let m = Metrics::new();
    MessagesConsumed {
        topic: "orders",
        count: 5,
    }
    .emit(&m);
    TraceHeadersMalformed {
        topic: "orders",
        partition: 3,
        offset: 42,
        count: 1,
        reason: "traceparent version \"01\" is not 00",
    }
    .emit(&m);
    ConsumerLag {
        topic: "orders",
        partition: 3,
        lag: 42,
    }
    .emit(&m);
    OldestUnsettled {
        topic: "orders",
        partition: 3,
        age: Duration::from_millis(1_500),
    }
    .emit(&m);
    ApplyStagePassed {
        stage: ApplyStage::Write,
        elapsed: Duration::from_millis(3),
        messages: 2,
    }
    .emit(&m);
    AwsCallTimed {
        region: "us-east-1",
        operation: AwsCall::BatchExecuteStatement,
        elapsed: Duration::from_millis(3),
    }
    .emit(&m);
    DlqUnsendable.emit(&m);
    RedriveRefused {
        letter_id: "dl-1",
        age_secs: 700_000,
        tombstone_ttl_secs: 604_800,
    }
    .emit(&m);
    for first in [true, false] {
        PartitionHeld {
            topic: "orders",
            partition: 3,
            class: ErrorClass::Connect,
            first,
        }
        .emit(&m);
    }
    MessagesProcessed {
        topic: "orders",
        elapsed: &[Duration::from_micros(300)],
        since_produced: &[Duration::from_millis(4)],
    }
    .emit(&m);
    PartitionsAssigned {
        partitions: &[("orders", 0), ("orders", 3)],
    }
    .emit(&m);
    GroupMemberStuck {
        out_for: Duration::from_secs(95),
        rejoin_timeout: Duration::from_secs(90),
    }
    .emit(&m);
    CdcEventsApplied {
        operation: CdcOperation::Refresh,
        count: 2,
    }
    .emit(&m);
    EventsRepublished { count: 3 }.emit(&m);
    OversizeChanges {
        kind: OversizeKind::EventByReference,
        count: 1,
    }
    .emit(&m);
    DynamoDbCall {
        operation: DynamoDbOperation::BatchExecuteStatement,
        outcome: DynamoDbOutcome::Success,
    }
    .emit(&m);
    DynamoDbCall {
        operation: DynamoDbOperation::PutItem,
        outcome: DynamoDbOutcome::ConditionFailed,
    }
    .emit(&m);
    DynamoDbCall {
        operation: DynamoDbOperation::PutItem,
        outcome: DynamoDbOutcome::Failed(ErrorClass::Throttled),
    }
    .emit(&m);
    EventBridgePublished {
        bus: "eda",
        region: "us-west-2",
        count: 10,
    }
    .emit(&m);
    EventBridgeFailed {
        bus: "eda",
        region: "us-west-2",
        count: 1,
        class: ErrorClass::Server,
    }
    .emit(&m);
    BreakerTransitioned {
        region: "us-east-1",
        from: BreakerState::Closed,
        to: BreakerState::HalfOpen,
    }
    .emit(&m);
    BreakerCallFailed {
        region: "us-east-1",
    }
    .emit(&m);
    BreakerCallsRejected {
        region: "us-east-1",
        count: 4,
    }
    .emit(&m);
    CrossRegionDelivered {
        source_region: "us-west-2",
        target_region: "us-east-1",
        count: 1,
        latency: Duration::from_millis(40),
    }
    .emit(&m);
    EventsOwed {
        region: "us-east-1",
        count: 7,
    }
    .emit(&m);
    OwedEventsRecovered {
        region: "us-east-1",
        count: 5,
    }
    .emit(&m);
    OwedEventsWaiting {
        region: "us-east-1",
        count: 2,
    }
    .emit(&m);
    DeadLettered {
        source: DlqSource::Kafka,
        class: ErrorClass::Decode,
        count: 1,
    }
    .emit(&m);
    ActorRestarted {
        kind: ActorKind::CdcApplier,
        name: "applier-0",
        reason: "panicked",
        attempt: 1,
        backoff: Duration::from_millis(100),
    }
    .emit(&m);
    HealthProbed {
        region: "us-west-2",
        service: Service::Sqs,
        status: HealthStatus::Degraded,
        latency: Duration::from_millis(600),
    }
    .emit(&m);
    LambdaInvoked {
        function: LambdaFunction::Authorizer,
        elapsed: Duration::from_micros(700),
        failed: true,
    }
    .emit(&m);
    m
}

/// The families of an OpenMetrics (or Prometheus text) exposition, in the order they appear.
pub fn families(text: &str) -> Vec<Family> {
    let mut out: Vec<Family> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push(Family {
                name: name.to_string(),
                kind: String::new(),
                labels: Vec::new(),
                help: help.to_string(),
                has_series: false,
            });
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let (Some(family), Some((_, kind))) = (out.last_mut(), rest.split_once(' ')) {
                family.kind = kind.to_string();
            }
        } else if line.starts_with('#') || line.is_empty() {
            continue;
        } else if let Some(family) = out.last_mut() {
            if !family.has_series {
                family.has_series = true;
                family.labels = label_names(line);
            }
        }
    }
    out
}

/// The same series in the Prometheus text format (0.0.4), for tools that read only that format,
/// such as `promtool check metrics`: a counter family is named with its `_total` suffix there,
/// and `# UNIT` and `# EOF` do not exist. Prometheus performs the same mapping when it ingests
/// OpenMetrics, so a text that passes promtool after this passes the scrape.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Label names of one sample line (`name{a="x",b="y"} 1`), without `le`.
fn label_names(sample: &str) -> Vec<String> {
    let Some(start) = sample.find('{') else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut rest = &sample[start + 1..];
    while let Some((name, after)) = rest.split_once("=\"") {
        let name = name.trim_start_matches(',');
        if name != "le" {
            names.push(name.to_string());
        }
        // Skip the quoted value, honouring backslash escapes.
        let mut escaped = false;
        let mut end = after.len();
        for (i, c) in after.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => {
                    end = i;
                    break;
                }
                _ => escaped = false,
            }
        }
        rest = &after[(end + 1).min(after.len())..];
        if rest.starts_with('}') {
            break;
        }
    }
    names
}

/// Values of a bounded label, joined for a table cell.
fn values(all: impl IntoIterator<Item = &'static str>) -> String {
    all.into_iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The body of `docs/metrics.md`'s reference: one row per family, then the label values.
pub fn markdown() -> String {
    let text = populated()
        .encode()
        .expect("encoding a registry into a String cannot fail");
    let mut out = String::from("| metric | type | labels | meaning |\n|---|---|---|---|\n");
    for family in families(&text) {
        let labels = family
            .labels
            .iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let kind = if family.kind == "histogram" {
            "histogram (`_bucket`, `_sum`, `_count`)".to_string()
        } else {
            family.kind.clone()
        };
        out.push_str(&format!(
            "| `{}` | {kind} | {labels} | {} |\n",
            family.query_name(),
            family.help
        ));
    }
    let configured = |key: &str| format!("configured: `{key}`");
    let code = |name: &str| format!("`{name}`");
    let rows: [(String, String); 18] = [
        (code(label::TOPIC), configured("kafka.topics")),
        (
            code(label::PARTITION),
            "a partition number of the topic".into(),
        ),
        (
            format!("{} of `eda_cdc_events_total`", code(label::OPERATION)),
            values(CdcOperation::ALL.iter().map(|v| v.as_str())),
        ),
        (
            code(label::KIND),
            values(OversizeKind::ALL.iter().map(|v| v.as_str())),
        ),
        (
            format!("{} of `eda_dynamodb_*`", code(label::OPERATION)),
            values(DynamoDbOperation::ALL.iter().map(|v| v.as_str())),
        ),
        (
            format!(
                "{} of `eda_aws_call_duration_seconds`",
                code(label::OPERATION)
            ),
            values(AwsCall::ALL.iter().map(|v| v.as_str())),
        ),
        (
            code(label::STAGE),
            values(ApplyStage::ALL.iter().map(|v| v.as_str())),
        ),
        (
            code(label::OUTCOME),
            values([
                outcome::SUCCESS,
                outcome::CONDITION_FAILED,
                outcome::THROTTLED,
                outcome::ERROR,
            ]),
        ),
        (
            code(label::ERROR_CLASS),
            values(ErrorClass::ALL.iter().map(|v| v.as_str())),
        ),
        (code(label::BUS), configured("regions.*.event_bus")),
        (code(label::REGION), configured("regions.*.name")),
        (code(label::SOURCE_REGION), configured("regions.*.name")),
        (code(label::TARGET_REGION), configured("regions.*.name")),
        (
            code(label::STATE),
            values(BreakerState::ALL.iter().map(|v| v.as_str())),
        ),
        (
            code(label::SOURCE),
            values(DlqSource::ALL.iter().map(|v| v.as_str())),
        ),
        (
            code(label::ACTOR),
            values(ActorKind::ALL.iter().map(|v| v.as_str())),
        ),
        (
            code(label::SERVICE),
            values(Service::ALL.iter().map(|v| v.as_str())),
        ),
        (
            code(label::FUNCTION),
            values(LambdaFunction::ALL.iter().map(|v| v.as_str())),
        ),
    ];
    out.push_str("\n| label | values |\n|---|---|\n");
    for (name, vals) in rows {
        out.push_str(&format!("| {name} | {vals} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new family without an event in [`populated`] would have no labels in the reference.
    #[test]
    fn every_family_has_a_series_in_the_populated_registry() {
        let text = populated().encode().unwrap();
        let all = families(&text);
        assert_eq!(all.len(), 37, "{all:#?}");
        for family in &all {
            assert!(
                family.has_series,
                "emit an event for {} in populated()",
                family.name
            );
            assert!(
                !family.kind.is_empty() && !family.help.is_empty(),
                "{family:?}"
            );
        }
    }

    #[test]
    fn families_read_names_types_and_labels() {
        let text = populated().encode().unwrap();
        let all = families(&text);
        let lag = all
            .iter()
            .find(|f| f.name == "eda_kafka_consumer_lag_messages")
            .unwrap();
        assert_eq!(lag.kind, "gauge");
        assert_eq!(lag.labels, ["topic", "partition"]);
        let duration = all
            .iter()
            .find(|f| f.name == "eda_kafka_processing_duration_seconds")
            .unwrap();
        assert_eq!(duration.kind, "histogram");
        assert_eq!(duration.labels, ["topic"]);
        let consumed = all
            .iter()
            .find(|f| f.name == "eda_kafka_messages_consumed")
            .unwrap();
        assert_eq!(consumed.query_name(), "eda_kafka_messages_consumed_total");
        assert_eq!(label_names(r#"x{a="q\"u,o=te",b="2"} 1"#), ["a", "b"]);
    }

    #[test]
    fn prometheus_text_names_counters_with_their_suffix() {
        let open = "# HELP eda_x Xs.\n# TYPE eda_x counter\neda_x_total 1\n\
                    # HELP eda_t_seconds T.\n# TYPE eda_t_seconds histogram\n# UNIT eda_t_seconds seconds\n\
                    eda_t_seconds_count 0\n# EOF\n";
        assert_eq!(
            to_prometheus_text(open),
            "# HELP eda_x_total Xs.\n# TYPE eda_x_total counter\neda_x_total 1\n\
             # HELP eda_t_seconds T.\n# TYPE eda_t_seconds histogram\neda_t_seconds_count 0\n"
        );
    }

    /// The exposition passes Prometheus' own linter (`promtool check metrics`, from the Debian
    /// `prometheus` package that deploy/local/install.sh installs), which reads the Prometheus
    /// text format only.
    #[test]
    fn exposition_passes_promtool_check_metrics() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let text = to_prometheus_text(&populated().encode().unwrap());
        let mut child = Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool on PATH: run deploy/local/install.sh");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics failed:\n{}{}\n{text}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `docs/metrics.md` holds the generated reference, byte for byte.
    #[test]
    fn metrics_doc_is_current() {
        eda_config::reference::sync_doc_section(
            "docs/metrics.md",
            "metrics-reference",
            &markdown(),
            "cargo test -p eda-actors --lib reference",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }
}
