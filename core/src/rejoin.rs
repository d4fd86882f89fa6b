//! What a consumer-group member does about being out of its group: wait, start afresh, or
//! declare the pod unfit.
//!
//! librdkafka rejoins the group on its own after a broker outage or a session timeout; this is
//! the safety net for a member that stays out although the brokers answer (seen with a broker
//! whose group coordinator kept a dead leader after a freeze, so no join ever completed).
//! Two bounds, both from `[kafka]`:
//!
//! - a member out of its group for `rejoin_timeout` while the brokers answer is restarted: its
//!   consumer is closed (it leaves the group) and a fresh one joins;
//! - a member out for `out_of_group_liveness` in total, restarts included, while the brokers
//!   answer, makes `/healthz` fail, so the orchestrator replaces the pod.
//!
//! While no broker answers, neither happens: every member of every pod is out then, and
//! restarting them (or the pods) would only delay the rejoin once the brokers are back. So both
//! bounds count the time out of the group *while the brokers answer*: from the later of falling
//! out and the last time the brokers were found silent. A member back from an outage gets the
//! whole `rejoin_timeout` to rejoin on its own.
//!
//! Pure: the durations out of the group are measured by the caller, as is whether the brokers
//! answered.

use eda_config::KafkaConfig;
use std::time::Duration;

/// The two bounds of a member out of its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejoinPolicy {
    /// Out this long (this member) while the brokers answer: restart it.
    pub rejoin_timeout: Duration,
    /// Out this long (restarts included) while the brokers answer: fail liveness.
    pub liveness_bound: Duration,
}

/// What to do once the brokers were asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RejoinVerdict {
    /// Close this member's consumer and let the supervisor start a fresh one.
    pub restart: bool,
    /// Fail liveness, reporting this time out of the group (`None`: liveness holds).
    pub unhealthy: Option<Duration>,
}

impl RejoinPolicy {
    /// The bounds `kafka.rejoin_timeout_ms` and `kafka.out_of_group_liveness_ms`.
    pub fn new(kafka: &KafkaConfig) -> Self {
        Self {
            rejoin_timeout: kafka.rejoin_timeout(),
            liveness_bound: kafka.out_of_group_liveness(),
        }
    }

    /// Whether asking the brokers could change anything: this member (`member_out`) or the
    /// pod's members together (`total_out`) have been out of the group past a bound, counting
    /// from when they fell out (silent brokers included: while they stay silent, each tick asks
    /// again, so the time they answer is known). `None` means in the group.
    pub fn worth_asking(&self, member_out: Option<Duration>, total_out: Option<Duration>) -> bool {
        member_out.is_some_and(|out| out >= self.rejoin_timeout)
            || total_out.is_some_and(|out| out >= self.liveness_bound)
    }

    /// The verdict for a member out of its group for `member_out` (`total_out` restarts
    /// included) while the brokers answered, given whether they answered just now.
    pub fn verdict(
        &self,
        member_out: Option<Duration>,
        total_out: Option<Duration>,
        brokers_answer: bool,
    ) -> RejoinVerdict {
        if !brokers_answer {
            return RejoinVerdict::default();
        }
        RejoinVerdict {
            restart: member_out.is_some_and(|out| out >= self.rejoin_timeout),
            unhealthy: total_out.filter(|out| *out >= self.liveness_bound),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn policy() -> RejoinPolicy {
        RejoinPolicy {
            rejoin_timeout: 90 * S,
            liveness_bound: 300 * S,
        }
    }

    #[test]
    fn a_member_in_its_group_or_briefly_out_is_left_alone() {
        let p = policy();
        for (member, total) in [(None, None), (Some(89 * S), Some(299 * S))] {
            assert!(!p.worth_asking(member, total));
            assert_eq!(p.verdict(member, total, true), RejoinVerdict::default());
        }
    }

    #[test]
    fn a_member_out_past_the_rejoin_timeout_is_restarted_only_while_the_brokers_answer() {
        let p = policy();
        let (member, total) = (Some(90 * S), Some(90 * S));
        assert!(p.worth_asking(member, total));
        assert_eq!(
            p.verdict(member, total, true),
            RejoinVerdict {
                restart: true,
                unhealthy: None
            }
        );
        assert_eq!(p.verdict(member, total, false), RejoinVerdict::default());
    }

    #[test]
    fn restarts_do_not_reset_the_liveness_clock() {
        let p = policy();
        // A fresh member, 10 s old, of a pod whose members have been out for 5 minutes.
        let (member, total) = (Some(10 * S), Some(300 * S));
        assert!(p.worth_asking(member, total));
        assert_eq!(
            p.verdict(member, total, true),
            RejoinVerdict {
                restart: false,
                unhealthy: Some(300 * S)
            }
        );
        // A broker outage is every pod's: no pod is replaced for it.
        assert_eq!(p.verdict(member, total, false), RejoinVerdict::default());
    }

    #[test]
    fn the_bounds_come_from_the_configuration() {
        let kafka = KafkaConfig {
            rejoin_timeout_ms: 15_000,
            out_of_group_liveness_ms: 40_000,
            ..KafkaConfig::default()
        };
        assert_eq!(
            RejoinPolicy::new(&kafka),
            RejoinPolicy {
                rejoin_timeout: 15 * S,
                liveness_bound: 40 * S
            }
        );
    }
}
