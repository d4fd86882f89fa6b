//! Looking at a topic, as `kcat -C` would: each partition's offsets, then its messages with their
//! key and headers. Debian's kcat is built on librdkafka 2.0.2, which the local broker (tansu)
//! does not answer ("ApiVersionRequest failed: Read underflow"); this reader uses the project's
//! own librdkafka, which does.
//!
//! It reads with an assignment, not a group: nothing is committed, no group is joined, and the
//! daemon's offsets are untouched.

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::time::{Duration, Instant};

/// What to read (also the `eda-loadtest peek` arguments).
#[derive(Debug, Clone, clap::Args)]
pub struct PeekSpec {
    /// Broker list.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Topic.
    #[arg(long, default_value = "qlik.cdc")]
    pub topic: String,
    /// Only this partition (default: all).
    #[arg(long)]
    pub partition: Option<i32>,
    /// First offset shown in each partition (default: the beginning). A negative value shows that
    /// many messages back from each partition's end (the end as read, not as the broker says).
    #[arg(long, allow_hyphen_values = true)]
    pub offset: Option<i64>,
    /// Stop after this many messages in all.
    #[arg(long, default_value_t = 20)]
    pub count: usize,
    /// Characters of each value shown; the rest is elided, with the value's size.
    #[arg(long, default_value_t = 300)]
    pub max_value_chars: usize,
    /// Stop when no message came for this long (the end of what is there).
    #[arg(skip = Duration::from_secs(3))]
    pub idle: Duration,
}

/// Prints the partitions' offsets, then up to `spec.count` messages, to `out`. Returns how many
/// messages were shown. Reads each partition from its beginning until no message came for
/// `spec.idle`, so what it shows never depends on the broker's (possibly stale) end offsets.
pub fn peek(spec: &PeekSpec, out: &mut impl Write) -> anyhow::Result<usize> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &spec.brokers)
        // Required by librdkafka even without joining a group; never used to commit.
        .set("group.id", "eda-peek")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(&spec.topic), timeout)?;
    let Some(topic) = metadata.topics().iter().find(|t| t.name() == spec.topic) else {
        anyhow::bail!("topic {} not found", spec.topic);
    };
    if let Some(err) = topic.error() {
        anyhow::bail!("topic {}: {err:?}", spec.topic);
    }
    let mut partitions: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
    partitions.sort_unstable();
    if let Some(only) = spec.partition {
        anyhow::ensure!(
            partitions.contains(&only),
            "topic {} has no partition {only} (it has {partitions:?})",
            spec.topic
        );
        partitions.retain(|&p| p == only);
    }

    let mut assignment = TopicPartitionList::new();
    for &partition in &partitions {
        let (low, high) = consumer.fetch_watermarks(&spec.topic, partition, timeout)?;
        writeln!(
            out,
            "# {} partition {partition}: offsets {low}..{high} (the broker's answer; the end may lag)",
            spec.topic
        )?;
        // Always from the beginning: the local broker's answer for a partition's end has been
        // seen below the real end, and a fetch from an offset past that answer comes back empty,
        // so the start offset is applied here, to what is read, not asked of the broker.
        assignment.add_partition_offset(&spec.topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;

    // A negative offset keeps the last messages of each partition until the reading ends.
    let tail = spec
        .offset
        .filter(|o| *o < 0)
        .map(|o| o.unsigned_abs() as usize);
    let from = spec.offset.filter(|o| *o >= 0).unwrap_or(0);
    let mut kept: BTreeMap<i32, VecDeque<String>> = BTreeMap::new();
    let mut shown = 0;
    let mut last = Instant::now();
    while (tail.is_some() || shown < spec.count) && last.elapsed() < spec.idle {
        let Some(result) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = result?;
        last = Instant::now();
        if message.offset() < from {
            continue;
        }
        let line = render(&message, spec.max_value_chars);
        match tail {
            Some(n) => {
                let lines = kept.entry(message.partition()).or_default();
                lines.push_back(line);
                if lines.len() > n {
                    lines.pop_front();
                }
            }
            None => {
                writeln!(out, "{line}")?;
                shown += 1;
            }
        }
    }
    for line in kept.into_values().flatten().take(spec.count) {
        writeln!(out, "{line}")?;
        shown += 1;
    }
    Ok(shown)
}

/// One message as a line: `partition:offset`, the key, the headers, and the value (cut).
fn render(message: &BorrowedMessage<'_>, max_value_chars: usize) -> String {
    let mut line = format!("{}:{}", message.partition(), message.offset());
    if let Some(key) = message.key() {
        line.push_str(" key=");
        line.push_str(&String::from_utf8_lossy(key));
    }
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            let value = header
                .value
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            line.push_str(&format!(" {}={value}", header.key));
        }
    }
    match message.payload() {
        None => line.push_str(" (tombstone)"),
        Some(value) => {
            let text = String::from_utf8_lossy(value);
            let cut: String = text.chars().take(max_value_chars).collect();
            line.push(' ');
            line.push_str(&cut);
            if cut.len() < text.len() {
                line.push_str(&format!("... ({} bytes)", value.len()));
            }
        }
    }
    line
}
