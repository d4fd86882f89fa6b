//! Reading the daemon's histograms from its `/metrics` text, and their quantiles: read-to-settled
//! (`eda_kafka_processing_duration_seconds`), and where that time went: by stage
//! (`eda_apply_stage_duration_seconds`) and per AWS call (`eda_aws_call_duration_seconds`); and
//! produced-to-settled (`eda_kafka_end_to_end_duration_seconds`).

/// The histogram of one topic at one scrape: how many messages settled, and the cumulative
/// count at each bucket bound (seconds, ascending, `+Inf` last).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Settled {
    /// Messages settled so far (the histogram's count).
    pub count: u64,
    /// `(upper bound in seconds, cumulative count)`, ascending.
    pub buckets: Vec<(f64, u64)>,
}

const FAMILY: &str = "eda_kafka_processing_duration_seconds";

impl Settled {
    /// The histogram of `topic` in an OpenMetrics text; empty when the topic has none yet.
    pub fn parse(text: &str, topic: &str) -> Self {
        Self::histogram(text, FAMILY, &[&format!("topic=\"{topic}\"")])
    }

    /// The series of histogram `family` whose labels include each of `labels` (`name="value"`),
    /// summed; empty when there is none.
    pub fn histogram(text: &str, family: &str, labels: &[&str]) -> Self {
        let count_prefix = format!("{family}_count{{");
        let bucket_prefix = format!("{family}_bucket{{");
        let chosen = |line: &str| labels.iter().all(|l| line.contains(l));
        let mut settled = Settled::default();
        for line in text.lines() {
            if line.starts_with(&count_prefix) && chosen(line) {
                settled.count += number(line.rsplit_once("} ").map_or("", |(_, v)| v));
            } else if line.starts_with(&bucket_prefix) && chosen(line) {
                let bound = line
                    .split("le=\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .and_then(|le| {
                        if le == "+Inf" {
                            Some(f64::INFINITY)
                        } else {
                            le.parse().ok()
                        }
                    });
                if let Some(bound) = bound {
                    let value = number(line.rsplit_once("} ").map_or("", |(_, v)| v));
                    match settled.buckets.iter_mut().find(|(b, _)| *b == bound) {
                        Some((_, count)) => *count += value,
                        None => settled.buckets.push((bound, value)),
                    }
                }
            }
        }
        settled.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        settled
    }

    /// What settled between `earlier` and `self`.
    pub fn since(&self, earlier: &Settled) -> Settled {
        let before = |bound: f64| {
            earlier
                .buckets
                .iter()
                .find(|(b, _)| *b == bound)
                .map_or(0, |(_, c)| *c)
        };
        Settled {
            count: self.count.saturating_sub(earlier.count),
            buckets: self
                .buckets
                .iter()
                .map(|(bound, count)| (*bound, count.saturating_sub(before(*bound))))
                .collect(),
        }
    }

    /// Quantile `q` (0..1) in seconds, interpolated linearly inside its bucket as Prometheus'
    /// `histogram_quantile` does (the last finite bound when it falls in `+Inf`); `None` when
    /// nothing settled.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut lower = (0.0, 0u64);
        for &(bound, count) in &self.buckets {
            if count as f64 >= rank {
                if bound.is_infinite() {
                    return Some(lower.0);
                }
                let inside = (count - lower.1) as f64;
                let share = if inside > 0.0 {
                    (rank - lower.1 as f64) / inside
                } else {
                    1.0
                };
                return Some(lower.0 + (bound - lower.0) * share.clamp(0.0, 1.0));
            }
            lower = (bound, count);
        }
        Some(lower.0)
    }
}

/// Where the daemon's read-to-settled time went, from one `/metrics` text: the p50 and p99 of
/// each stage of `eda_apply_stage_duration_seconds`, then of one exchange of each per-message
/// AWS call by region (`eda_aws_call_duration_seconds`), then produced-to-settled
/// (`eda_kafka_end_to_end_duration_seconds`: in the backlog run, the backlog's age).
pub fn stages(text: &str) -> String {
    let ms = |h: &Settled, q: f64| {
        h.quantile(q)
            .map_or_else(|| "-".to_string(), |s| format!("{:.1}", s * 1000.0))
    };
    let both = |h: &Settled| format!("{} / {}", ms(h, 0.5), ms(h, 0.99));
    let stages: Vec<String> = ["wait", "write", "deliver"]
        .iter()
        .map(|stage| {
            let h = Settled::histogram(
                text,
                "eda_apply_stage_duration_seconds",
                &[&format!("stage=\"{stage}\"")],
            );
            format!("{stage} {}", both(&h))
        })
        .collect();
    // Every (operation, region) pair with a series, in the order of the text.
    let mut pairs: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let Some(labels) = line.strip_prefix("eda_aws_call_duration_seconds_count{") else {
            continue;
        };
        let value = |name: &str| {
            labels
                .split(&format!("{name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("")
                .to_string()
        };
        let pair = (value("operation"), value("region"));
        if !pairs.contains(&pair) {
            pairs.push(pair);
        }
    }
    pairs.sort();
    let calls: Vec<String> = pairs
        .iter()
        .map(|(operation, region)| {
            let h = Settled::histogram(
                text,
                "eda_aws_call_duration_seconds",
                &[
                    &format!("operation=\"{operation}\""),
                    &format!("region=\"{region}\""),
                ],
            );
            format!("{operation} to {region} {} ({} calls)", both(&h), h.count)
        })
        .collect();
    let produced = Settled::histogram(text, "eda_kafka_end_to_end_duration_seconds", &[]);
    format!(
        "where the read-to-settled time went (p50 / p99 ms, per message): {}; one AWS call (p50 / p99 ms): {}; produced to settled (from each message's Kafka timestamp: the producer and the broker included; p50 / p99 / p999 ms): {} / {}",
        stages.join(", "),
        if calls.is_empty() {
            "none timed".to_string()
        } else {
            calls.join(", ")
        },
        both(&produced),
        ms(&produced, 0.999),
    )
}

fn number(text: &str) -> u64 {
    text.trim().parse::<f64>().map_or(0, |v| v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# TYPE eda_kafka_processing_duration_seconds histogram
eda_kafka_processing_duration_seconds_sum{topic=\"t\"} 1.0
eda_kafka_processing_duration_seconds_count{topic=\"t\"} 100
eda_kafka_processing_duration_seconds_bucket{le=\"0.001\",topic=\"t\"} 50
eda_kafka_processing_duration_seconds_bucket{le=\"0.002\",topic=\"t\"} 90
eda_kafka_processing_duration_seconds_bucket{le=\"0.004\",topic=\"t\"} 100
eda_kafka_processing_duration_seconds_bucket{le=\"+Inf\",topic=\"t\"} 100
eda_kafka_processing_duration_seconds_bucket{le=\"+Inf\",topic=\"other\"} 7
";

    #[test]
    fn quantiles_interpolate_inside_their_bucket() {
        let settled = Settled::parse(TEXT, "t");
        assert_eq!(settled.count, 100);
        assert_eq!(settled.buckets.len(), 4);
        assert_eq!(settled.quantile(0.5), Some(0.001));
        let p70 = settled.quantile(0.7).unwrap();
        assert!((p70 - 0.0015).abs() < 1e-9, "{p70}");
        let p99 = settled.quantile(0.99).unwrap();
        assert!((p99 - 0.0038).abs() < 1e-9, "{p99}");
        assert_eq!(Settled::default().quantile(0.5), None);
    }

    #[test]
    fn series_that_match_are_summed_and_the_stages_read_from_them() {
        let text = "\
eda_apply_stage_duration_seconds_count{stage=\"write\"} 4
eda_apply_stage_duration_seconds_bucket{le=\"0.001\",stage=\"write\"} 2
eda_apply_stage_duration_seconds_bucket{le=\"0.002\",stage=\"write\"} 4
eda_apply_stage_duration_seconds_bucket{le=\"+Inf\",stage=\"write\"} 4
eda_aws_call_duration_seconds_count{region=\"r1\",operation=\"put_events\"} 1
eda_aws_call_duration_seconds_bucket{le=\"0.004\",region=\"r1\",operation=\"put_events\"} 1
eda_aws_call_duration_seconds_bucket{le=\"+Inf\",region=\"r1\",operation=\"put_events\"} 1
eda_aws_call_duration_seconds_count{region=\"r2\",operation=\"put_events\"} 3
eda_aws_call_duration_seconds_bucket{le=\"0.004\",region=\"r2\",operation=\"put_events\"} 3
eda_aws_call_duration_seconds_bucket{le=\"+Inf\",region=\"r2\",operation=\"put_events\"} 3
eda_kafka_end_to_end_duration_seconds_count{topic=\"t\"} 2
eda_kafka_end_to_end_duration_seconds_bucket{le=\"0.01\",topic=\"t\"} 2
eda_kafka_end_to_end_duration_seconds_bucket{le=\"+Inf\",topic=\"t\"} 2
";
        let all = Settled::histogram(
            text,
            "eda_aws_call_duration_seconds",
            &["operation=\"put_events\""],
        );
        assert_eq!(all.count, 4);
        assert_eq!(all.buckets, vec![(0.004, 4), (f64::INFINITY, 4)]);
        let line = stages(text);
        assert!(
            line.contains("write 1.0 / 2.0")
                && line.contains("wait - / -")
                && line.contains("put_events to r1 2.0 / 4.0 (1 calls)")
                && line.contains("put_events to r2")
                && line.contains("p50 / p99 / p999 ms): 5.0 / 9.9 / 10.0"),
            "{line}"
        );
    }

    #[test]
    fn a_window_is_the_difference_of_two_scrapes() {
        let later = Settled::parse(TEXT, "t");
        let text = TEXT
            .replace("} 90", "} 40")
            .replace("} 50", "} 40")
            .replace("} 100", "} 40");
        let earlier = Settled::parse(&text, "t");
        let window = later.since(&earlier);
        assert_eq!(window.count, 60);
        assert_eq!(window.buckets[0], (0.001, 10));
        let median = window.quantile(0.5).unwrap();
        assert!((median - 0.0015).abs() < 1e-9, "{median}");
    }
}
