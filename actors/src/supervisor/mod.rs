//! Supervision: ractor links children to their parent but never restarts them, so every
//! supervising actor of eda embeds [`Children`], which does.
//!
//! [`Children`] is the building block: it spawns [`ChildSpec`]s with `spawn_linked`, matches
//! each `SupervisionEvent` to a child by actor id, asks the [`RestartPolicy`] what to do, and
//! either schedules a respawn after the backoff (a timer sends the parent a [`RestartDue`]
//! message, so no handler ever sleeps) or returns [`SupervisorError::Escalated`], which the
//! parent returns from its handler so that *its* parent sees `ActorFailed`. Every restart is an
//! [`ActorRestarted`] event: a warn log line and `eda_actor_restarts_total{actor=kind}`.
//!
//! [`Supervisor`] is a ready-made actor around [`Children`] with a fixed set of children: the
//! root of the tree. Actors with their own messages and dynamic children (the consumer group,
//! one partition consumer per assigned partition) embed [`Children`] in their state instead:
//!
//! ```ignore
//! enum ConsumerGroupMsg { Restart(RestartDue), Assigned(Vec<i32>), /* ... */ }
//!
//! // pre_start: build the children, start the static ones.
//! let mut children =
//!     Children::new(ActorKind::ConsumerGroup, &config, metrics, ConsumerGroupMsg::Restart);
//! children.add(&myself.get_cell(), applier_spec).await?;
//! // handle: a restart timer fired.
//! ConsumerGroupMsg::Restart(due) => state.children.restart_due(&myself.get_cell(), due).await?,
//! // handle: a partition was assigned / revoked.
//! children.add(&myself.get_cell(), partition_spec.depends_on("applier").transient()).await?;
//! children.remove("partition-3", "revoked");
//! // handle_supervisor_evt: every child event.
//! state.children.handle_event(&myself.get_cell(), event).await?;
//! ```
//!
//! # Dependencies and restart order
//!
//! A child may depend on children declared (added) before it; declaration order is therefore a
//! valid start order, and the rule is:
//!
//! 1. children start in declaration order, each once everything it depends on is running, and
//!    its spawn closure receives the *current* cells of its dependencies ([`SpawnContext`]);
//! 2. when a child fails, every child that depends on it, directly or not, is stopped at once
//!    (each logged and counted as a restart with the failed dependency as reason; these forced
//!    restarts do not use up the dependants' own restart budget);
//! 3. the failed child is respawned after its backoff, then its dependants, in declaration
//!    order, each once its old instance has stopped — so a dependant never runs against a dead
//!    dependency, and never outlives the instance it was wired to (an applier restarted under a
//!    partition consumer takes the consumer down with it, and the consumer restarts from its last
//!    committed offset instead of running ahead of work that was lost).
//!
//! A [`RestartMode::Transient`] child that stops cleanly is removed rather than restarted, and
//! so are its dependants; [`Children::remove`] does the same on purpose (a revoked partition).
//! [`Children::stop_all`] stops children in reverse declaration order, dependants first.
//!
//! # Layout
//!
//! - `spec`: [`ChildSpec`] and the [`SpawnContext`] its spawn closure receives.
//! - `children`: [`Children`], the state machine of each child and the restart logic.
//! - this module: the [`Supervisor`] actor.
//!
//! [`RestartPolicy`]: eda_core::restart::RestartPolicy
//! [`ActorRestarted`]: crate::telemetry::ActorRestarted

mod children;
mod spec;

pub use children::{Children, RestartDue, SupervisorError};
pub use spec::{ChildSpec, RestartMode, SpawnContext, SpawnFuture};

use crate::telemetry::{ActorKind, Liveness, Metrics};
use eda_config::SupervisionConfig;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// A supervisor with a fixed list of children: the root of the tree (and any static subtree).
#[derive(Debug, Clone, Copy, Default)]
pub struct Supervisor;

/// How to build a [`Supervisor`].
pub struct SupervisorArgs {
    /// The supervisor's own kind (logs; its parent counts its restarts under this label).
    pub kind: ActorKind,
    /// The restart policy.
    pub config: SupervisionConfig,
    /// Children in start order; dependencies must come first.
    pub children: Vec<ChildSpec>,
    /// Where restarts are counted.
    pub metrics: Arc<Metrics>,
    /// For the root: the liveness `/healthz` reads, and how often to beat it.
    pub liveness: Option<(Arc<Liveness>, Duration)>,
    /// How long each child gets to stop when the supervisor stops.
    pub stop_timeout: Duration,
}

/// Messages a [`Supervisor`] handles.
#[derive(Debug)]
pub enum SupervisorMsg {
    /// A restart timer fired.
    RestartDue(RestartDue),
    /// Time to beat the liveness (root only); sent by the supervisor's own interval timer.
    Heartbeat,
    /// Asks for the running instance of a child (operators, tests, late wiring).
    GetChild(String, RpcReplyPort<Option<ActorCell>>),
}

/// A [`Supervisor`]'s mutable state.
#[derive(Debug)]
pub struct SupervisorState {
    /// The children and their restart bookkeeping.
    children: Children<SupervisorMsg>,
    /// The liveness to beat, if this is the root.
    liveness: Option<Arc<Liveness>>,
    /// The heartbeat timer, aborted on stop.
    heartbeat: Option<JoinHandle<()>>,
    /// Per-child stop timeout on shutdown.
    stop_timeout: Duration,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut children = Children::new(
            args.kind,
            &args.config,
            args.metrics,
            SupervisorMsg::RestartDue,
        );
        let cell = myself.get_cell();
        for spec in args.children {
            children.add(&cell, spec).await?;
        }
        let (liveness, heartbeat) = match args.liveness {
            Some((liveness, every)) => {
                liveness.beat();
                let timer = myself.send_interval(every, || SupervisorMsg::Heartbeat);
                (Some(liveness), Some(timer))
            }
            None => (None, None),
        };
        Ok(SupervisorState {
            children,
            liveness,
            heartbeat,
            stop_timeout: args.stop_timeout,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMsg::RestartDue(due) => {
                let result = state.children.restart_due(&myself.get_cell(), due).await;
                state.fail_if(result)?;
            }
            SupervisorMsg::Heartbeat => {
                if let Some(liveness) = &state.liveness {
                    liveness.beat();
                }
            }
            SupervisorMsg::GetChild(name, reply) => {
                // The asker may have given up waiting; nothing to do then.
                let _ = reply.send(state.children.get(&name).cloned());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let result = state.children.handle_event(&myself.get_cell(), event).await;
        state.fail_if(result)?;
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.stop_liveness();
        let timeout = state.stop_timeout;
        state
            .children
            .stop_all("supervisor stopping", timeout)
            .await;
        Ok(())
    }
}

impl SupervisorState {
    /// Passes an escalation through, first marking the tree dead for `/healthz` (a failing
    /// actor gets no `post_stop`).
    fn fail_if(&mut self, result: Result<(), SupervisorError>) -> Result<(), SupervisorError> {
        if result.is_err() {
            self.stop_liveness();
        }
        result
    }

    fn stop_liveness(&mut self) {
        if let Some(timer) = self.heartbeat.take() {
            timer.abort();
        }
        if let Some(liveness) = &self.liveness {
            liveness.mark_stopped();
        }
    }
}
