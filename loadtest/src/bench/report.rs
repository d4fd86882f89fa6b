//! What a run measured, turned into figures: the sustained rate over the steady part, CPU and
//! memory per message, latency quantiles, the table printed at the end, the plot of throughput
//! and p99 latency over time (SVG), and the report file beside it.

use super::metrics::Settled;
use super::process::ProcStats;
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// One scrape of the daemon, about once a second.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Seconds since the daemon was started.
    pub t: f64,
    /// Its read-to-settled histogram for the run's topic.
    pub settled: Settled,
    /// Its CPU time and memory.
    pub proc: ProcStats,
    /// The sink's CPU time (it shares the machine with the daemon).
    pub sink_cpu_secs: f64,
}

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// `backlog` or `fixed rate`.
    pub mode: String,
    /// Messages the run pushed through.
    pub messages: u64,
    /// Messages per second over the steady part (see [`steady_rate`]).
    pub sustained: f64,
    /// Cores the daemon kept busy over the steady part (its CPU seconds per second): well under
    /// two on this machine means it waited (on the sink, the broker, or other people's work on
    /// the same cores), not that it ran out of CPU.
    pub daemon_cores: f64,
    /// The daemon's CPU (user + system) per message, in microseconds.
    pub cpu_us_per_msg: f64,
    /// The daemon's peak resident memory (`VmHWM`), in MB.
    pub peak_rss_mb: f64,
    /// The daemon's median resident memory (`VmRSS`) while traffic was offered, in MB (the
    /// fixed-rate run).
    pub steady_rss_mb: Option<f64>,
    /// Read-to-settled quantiles (p50, p99, p999) in milliseconds, over the whole run.
    pub latency_ms: [Option<f64>; 3],
    /// Seconds from the daemon's start until the last message settled.
    pub seconds: f64,
    /// Table differences from the history's last images (0: exact).
    pub table_mismatches: usize,
    /// Event ids seen of those owed.
    pub events_seen: usize,
    /// Event ids owed (one per distinct change).
    pub events_owed: usize,
    /// Events put in all, repeats included (primary bus, and the secondary's envelopes).
    pub events_total: u64,
}

/// The steady rate: messages per second between the moments 10 % and 90 % of `total` had
/// settled, each found by linear interpolation between the scrapes around it. Start-up, the
/// group join and the tail of the drain are outside it.
pub fn steady_rate(samples: &[Sample], total: u64) -> Option<f64> {
    let at = |share: f64| {
        let target = share * total as f64;
        samples.windows(2).find_map(|w| {
            let (a, b) = (&w[0], &w[1]);
            let (ca, cb) = (a.settled.count as f64, b.settled.count as f64);
            (ca <= target && cb >= target && cb > ca)
                .then(|| a.t + (b.t - a.t) * (target - ca) / (cb - ca))
        })
    };
    let (t10, t90) = (at(0.1)?, at(0.9)?);
    (t90 > t10).then(|| 0.8 * total as f64 / (t90 - t10))
}

/// The median `VmRSS` of the samples taken between `from` and `to` seconds, in MB.
pub fn median_rss_mb(samples: &[Sample], from: f64, to: f64) -> Option<f64> {
    let mut rss: Vec<u64> = samples
        .iter()
        .filter(|s| s.t >= from && s.t <= to)
        .map(|s| s.proc.rss_kb)
        .collect();
    rss.sort_unstable();
    rss.get(rss.len() / 2).map(|kb| *kb as f64 / 1024.0)
}

/// The samples as CSV, one line per scrape: seconds, messages settled, the daemon's CPU
/// seconds, RSS and peak RSS in kB, the sink's CPU seconds, and the interval's p99 in ms.
pub fn csv(samples: &[Sample]) -> String {
    let mut out = String::from(
        "t_secs,settled,daemon_cpu_secs,daemon_rss_kb,daemon_hwm_kb,sink_cpu_secs,p99_ms\n",
    );
    let mut previous: Option<&Sample> = None;
    for sample in samples {
        let p99 = previous
            .and_then(|p| sample.settled.since(&p.settled).quantile(0.99))
            .map_or_else(String::new, |s| format!("{:.3}", s * 1000.0));
        let _ = writeln!(
            out,
            "{:.2},{},{:.2},{},{},{:.2},{p99}",
            sample.t,
            sample.settled.count,
            sample.proc.cpu_secs,
            sample.proc.rss_kb,
            sample.proc.hwm_kb,
            sample.sink_cpu_secs
        );
        previous = Some(sample);
    }
    out
}

/// The daemon's CPU seconds per second between the moments 10 % and 90 % of `total` settled
/// (the whole run when there is no such window).
pub fn steady_cores(samples: &[Sample], total: u64) -> f64 {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            let share = s.settled.count as f64 / total.max(1) as f64;
            (0.1..=0.9).contains(&share)
        })
        .collect();
    let (first, last) = match (inside.first(), inside.last()) {
        (Some(a), Some(b)) if b.t > a.t => (*a, *b),
        _ => match (samples.first(), samples.last()) {
            (Some(a), Some(b)) if b.t > a.t => (a, b),
            _ => return 0.0,
        },
    };
    (last.proc.cpu_secs - first.proc.cpu_secs) / (last.t - first.t)
}

/// The one-minute load average of the machine now.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

/// Per scrape interval: (seconds, messages per second, p99 in ms when any settled).
pub fn series(samples: &[Sample]) -> Vec<(f64, f64, Option<f64>)> {
    samples
        .windows(2)
        .map(|w| {
            let window = w[1].settled.since(&w[0].settled);
            let rate = window.count as f64 / (w[1].t - w[0].t).max(1e-6);
            (w[1].t, rate, window.quantile(0.99).map(|s| s * 1000.0))
        })
        .collect()
}

/// Draws throughput (top) and p99 latency (bottom) over time into an SVG at `path`.
pub fn plot(path: &Path, title: &str, samples: &[Sample]) -> anyhow::Result<()> {
    let points = series(samples);
    let t_max = points.last().map_or(1.0, |p| p.0).max(1.0);
    let rate_max = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let p99_max = points.iter().filter_map(|p| p.2).fold(1.0, f64::max) * 1.1;
    let root = SVGBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(plot_error)?;
    let (top, bottom) = root.split_vertically(300);

    let mut rate = ChartBuilder::on(&top)
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..rate_max)
        .map_err(plot_error)?;
    rate.configure_mesh()
        .x_desc("seconds since the daemon started")
        .y_desc("settled msg/s")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(plot_error)?;
    rate.draw_series(LineSeries::new(points.iter().map(|p| (p.0, p.1)), &BLUE))
        .map_err(plot_error)?;

    let mut latency = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..p99_max)
        .map_err(plot_error)?;
    latency
        .configure_mesh()
        .x_desc("seconds since the daemon started")
        .y_desc("p99 read-to-settled, ms")
        .y_label_formatter(&|v| format!("{v:.1}"))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(plot_error)?;
    latency
        .draw_series(LineSeries::new(
            points.iter().filter_map(|p| Some((p.0, p.2?))),
            &RED,
        ))
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(())
}

fn plot_error(err: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing the plot: {err}")
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"))
}

/// The final table, in Markdown (it reads as a table in a terminal too).
pub fn table(runs: &[RunSummary], raw: Option<f64>) -> String {
    let mut out = String::new();
    out.push_str(
        "| run | messages | sustained msg/s | daemon cores | CPU µs/msg | peak RSS MB | p50 ms | p99 ms | p999 ms | table | events seen/owed (put) |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
    for run in runs {
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.2} | {:.1} | {:.1} | {} | {} | {} | {} | {}/{} ({}) |",
            run.mode,
            run.messages,
            run.sustained,
            run.daemon_cores,
            run.cpu_us_per_msg,
            run.peak_rss_mb,
            ms(run.latency_ms[0]),
            ms(run.latency_ms[1]),
            ms(run.latency_ms[2]),
            if run.table_mismatches == 0 {
                "exact".to_string()
            } else {
                format!("{} differences", run.table_mismatches)
            },
            run.events_seen,
            run.events_owed,
            run.events_total,
        );
    }
    if let Some(raw) = raw {
        let _ = writeln!(
            out,
            "| raw rdkafka consume (same topic, nothing else) | {} | {raw:.0} | | | | | | | | |",
            runs.first().map_or(0, |r| r.messages)
        );
    }
    out
}

/// The machine, as a reader of the report needs it: cores and CPU model.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_string();
    format!("nproc {cores}, {model}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, count: u64) -> Sample {
        Sample {
            t,
            settled: Settled {
                count,
                buckets: vec![(0.001, count / 2), (0.01, count), (f64::INFINITY, count)],
            },
            proc: ProcStats::default(),
            sink_cpu_secs: 0.0,
        }
    }

    #[test]
    fn the_steady_rate_is_taken_between_ten_and_ninety_percent() {
        // A slow start (the group join), then 1,000 msg/s; the scrapes around 10 % and 90 %
        // (400 and 3,600) are interpolated.
        let samples = [
            sample(0.0, 0),
            sample(1.0, 0),
            sample(2.0, 0),
            sample(3.0, 1_000),
            sample(4.0, 2_000),
            sample(5.0, 3_000),
            sample(6.0, 4_000),
        ];
        let rate = steady_rate(&samples, 4_000).unwrap();
        assert!((rate - 1_000.0).abs() < 1.0, "{rate}");
        assert_eq!(steady_rate(&samples[..3], 4_000), None);
        let points = series(&samples);
        assert_eq!(points[3].1, 1_000.0);
        assert!(points[0].2.is_none(), "no p99 where nothing settled");
    }

    #[test]
    fn the_plot_is_an_svg_with_both_panels() {
        let dir = std::env::temp_dir().join(format!("eda-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.svg");
        let samples: Vec<Sample> = (0..10u32)
            .map(|i| sample(f64::from(i), u64::from(i) * 100))
            .collect();
        plot(&path, "test run", &samples).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..50]);
        assert!(svg.contains("settled msg/s") && svg.contains("p99 read-to-settled"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
