//! Reading the daemon's read-to-settled histogram (`eda_kafka_processing_duration_seconds`)
//! from its `/metrics` text, and the quantiles of it.

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
        let label = format!("topic=\"{topic}\"");
        let count_prefix = format!("{FAMILY}_count{{{label}}}");
        let bucket_prefix = format!("{FAMILY}_bucket{{");
        let mut settled = Settled::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix(&count_prefix) {
                settled.count = number(rest);
            } else if line.starts_with(&bucket_prefix) && line.contains(&label) {
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
                    let value = line.rsplit_once("} ").map_or("", |(_, v)| v);
                    settled.buckets.push((bound, number(value)));
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
