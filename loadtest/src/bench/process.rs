//! The processes a benchmark runs: the sink and the daemon, each its own process, and what
//! `/proc` says about them.

use anyhow::Context as _;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What `/proc` says about a process at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcStats {
    /// User plus system CPU time, in seconds (`utime + stime` of `/proc/PID/stat`).
    pub cpu_secs: f64,
    /// Resident memory now (`VmRSS`), in kB.
    pub rss_kb: u64,
    /// The highest resident memory so far (`VmHWM`), in kB.
    pub hwm_kb: u64,
}

impl ProcStats {
    /// Reads `/proc/<pid>`; `None` once the process is gone.
    pub fn read(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces) in parentheses.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: f64 = fields
            .get(11..13)?
            .iter()
            .filter_map(|v| v.parse::<f64>().ok())
            .sum();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Some(Self {
            cpu_secs: ticks / clock_ticks() as f64,
            rss_kb: kb("VmRSS:"),
            hwm_kb: kb("VmHWM:"),
        })
    }
}

/// Clock ticks per second of `/proc/PID/stat` (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100)
}

/// Asks a child to stop (SIGTERM) and waits up to `grace` for it, then kills it.
async fn terminate(child: &mut Child, grace: Duration) -> anyhow::Result<std::process::ExitStatus> {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + grace;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            child.kill()?;
            return Ok(child.wait()?);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An `eda-loadtest sink` process; killed if dropped unstopped.
pub struct SinkProcess {
    child: Child,
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub url: String,
}

impl SinkProcess {
    /// Starts `eda-loadtest sink` (this very binary) with `args` and waits for its address.
    pub async fn start(args: &[String], log: &Path) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding eda-loadtest itself")?;
        let mut child = Command::new(exe)
            .arg("sink")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("starting the sink")?;
        let stdout = child.stdout.take().context("the sink's stdout")?;
        let read = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .map(|_| line)
        });
        let first = match tokio::time::timeout(Duration::from_secs(10), read).await {
            Ok(line) => line??,
            Err(_) => {
                let _ = child.kill();
                anyhow::bail!("the sink did not print its address within 10 s");
            }
        };
        let url = first
            .trim()
            .strip_prefix("listening on ")
            .context("the sink's first line names no address (it exited?)")?
            .to_string();
        Ok(Self { child, url })
    }

    /// `/proc`'s view of the sink now.
    pub fn stats(&self) -> Option<ProcStats> {
        ProcStats::read(self.child.id())
    }

    /// Stops the sink.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        terminate(&mut self.child, Duration::from_secs(5)).await?;
        Ok(())
    }
}

/// An `eda-daemon run` process; killed if dropped unstopped (a failed run leaves none behind).
pub struct DaemonProcess {
    child: Child,
    /// Its process id, for `/proc`.
    pub pid: u32,
    /// When it was started.
    pub started: Instant,
    /// Its log file.
    pub log: PathBuf,
}

impl DaemonProcess {
    /// Starts `daemon run --config config`, its log (stderr) into `log`.
    pub async fn start(daemon: &Path, config: &Path, log: &Path) -> anyhow::Result<Self> {
        let child = Command::new(daemon)
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .with_context(|| format!("starting {}", daemon.display()))?;
        let pid = child.id();
        Ok(Self {
            child,
            pid,
            started: Instant::now(),
            log: log.to_path_buf(),
        })
    }

    /// `/proc`'s view of the daemon now.
    pub fn stats(&self) -> Option<ProcStats> {
        ProcStats::read(self.pid)
    }

    /// Fails if the daemon has exited, naming its log.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            anyhow::bail!(
                "the daemon exited ({status}) during the run; see {}",
                self.log.display()
            );
        }
        Ok(())
    }

    /// SIGTERM, then waits for the drain (up to 30 s); returns how it exited.
    pub async fn stop(mut self) -> anyhow::Result<std::process::ExitStatus> {
        terminate(&mut self.child, Duration::from_secs(30)).await
    }
}

impl Drop for SinkProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let stats = ProcStats::read(std::process::id()).expect("/proc of self");
        assert!(
            stats.rss_kb > 0 && stats.hwm_kb >= stats.rss_kb,
            "{stats:?}"
        );
        assert!(stats.cpu_secs >= 0.0);
        assert_eq!(ProcStats::read(u32::MAX), None);
    }
}
