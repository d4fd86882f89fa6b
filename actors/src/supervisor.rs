//! Supervision: ractor links children to their parent but never restarts them, so every
//! supervising actor of eda embeds [`Children`], which does.
//!
//! [`Children`] is the building block: it spawns [`ChildSpec`]s with `spawn_linked`, matches each
//! `SupervisionEvent` to a child by actor id, asks the [`RestartPolicy`] what to do, and either
//! schedules a respawn after the backoff (a timer sends the parent a [`RestartDue`] message, so
//! no handler ever sleeps) or returns [`SupervisorError::Escalated`], which the parent returns
//! from its handler so that *its* parent sees `ActorFailed`. Every restart is an
//! [`ActorRestarted`] event: a warn log line and `eda_actor_restarts_total{actor=kind}`.
//!
//! [`Supervisor`] is a ready-made actor around [`Children`] with a fixed set of children: the
//! root of the tree. Actors with their own messages and dynamic children (the consumer group,
//! one partition consumer per assigned partition) embed [`Children`] in their state instead:
//!
//! ```ignore
//! enum ConsumerGroupMsg { Restart(RestartDue), Assigned(Vec<i32>), /* … */ }
//! // pre_start:
//! let mut children = Children::new(ActorKind::ConsumerGroup, &cfg, metrics, ConsumerGroupMsg::Restart);
//! children.add(&myself.get_cell(), spec).await?;
//! // handle:            ConsumerGroupMsg::Restart(due) => state.children.restart_due(&myself.get_cell(), due).await?,
//! // handle_supervisor_evt:                                state.children.handle_event(&myself.get_cell(), evt).await?,
//! // on revoke:         state.children.remove("partition-3", "revoked");
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

use crate::core::restart::{RestartDecision, RestartPolicy};
use crate::telemetry::{
    ActorKind, ActorRestarted, InternalEvent, Liveness, Metrics, SupervisorEscalated,
};
use eda_config::SupervisionConfig;
use ractor::{
    Actor, ActorCell, ActorProcessingErr, ActorRef, Message, RpcReplyPort, SpawnErr,
    SupervisionEvent,
};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The future a [`ChildSpec`]'s spawn closure returns: the new child's cell.
pub type SpawnFuture = Pin<Box<dyn Future<Output = Result<ActorCell, SpawnErr>> + Send>>;

/// What a spawn closure gets: the supervisor to link to, and the running dependencies.
#[derive(Debug, Clone)]
pub struct SpawnContext {
    /// The supervisor's cell; pass it to `spawn_linked`.
    supervisor: ActorCell,
    /// The current cells of the child's dependencies, by name.
    dependencies: Vec<(String, ActorCell)>,
}

impl SpawnContext {
    /// The supervisor the child must be linked to.
    pub fn supervisor(&self) -> ActorCell {
        self.supervisor.clone()
    }

    /// The current instance of the dependency `name` (fresh after a restart).
    pub fn dependency(&self, name: &str) -> Option<ActorCell> {
        self.dependencies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, cell)| cell.clone())
    }

    /// [`dependency`](Self::dependency) as a typed reference; the caller vouches for `M`.
    pub fn dependency_ref<M: Message>(&self, name: &str) -> Option<ActorRef<M>> {
        self.dependency(name).map(ActorRef::from)
    }
}

/// Whether a child that stops cleanly is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartMode {
    /// Always restarted: a long-lived actor stopping on its own is a fault.
    Permanent,
    /// Restarted only when it fails; a clean stop (a drained, revoked partition) removes it.
    Transient,
}

/// How to (re)start one child, and what it depends on.
#[derive(Clone)]
pub struct ChildSpec {
    /// Unique within the supervisor; used in logs and to declare dependencies.
    name: String,
    /// The metric label of its restarts.
    kind: ActorKind,
    /// Whether a clean stop is restarted.
    mode: RestartMode,
    /// Names of children (declared earlier) it must run after and restart with.
    depends_on: Vec<String>,
    /// Spawns a fresh instance linked to the context's supervisor.
    spawn: Arc<dyn Fn(SpawnContext) -> SpawnFuture + Send + Sync>,
}

impl ChildSpec {
    /// A permanent child with no dependencies. `spawn` must link the new actor to
    /// `ctx.supervisor()` (`Actor::spawn_linked`) and return its cell.
    pub fn new<F, Fut>(name: impl Into<String>, kind: ActorKind, spawn: F) -> Self
    where
        F: Fn(SpawnContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<ActorCell, SpawnErr>> + Send + 'static,
    {
        Self {
            name: name.into(),
            kind,
            mode: RestartMode::Permanent,
            depends_on: Vec::new(),
            spawn: Arc::new(move |ctx| Box::pin(spawn(ctx))),
        }
    }

    /// Declares that this child runs after, and restarts with, the child `name`.
    pub fn depends_on(mut self, name: impl Into<String>) -> Self {
        self.depends_on.push(name.into());
        self
    }

    /// Makes the child [`RestartMode::Transient`].
    pub fn transient(mut self) -> Self {
        self.mode = RestartMode::Transient;
        self
    }

    /// The child's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's kind.
    pub fn kind(&self) -> ActorKind {
        self.kind
    }
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("mode", &self.mode)
            .field("depends_on", &self.depends_on)
            .finish_non_exhaustive()
    }
}

/// The timer message asking the parent to respawn a child once its backoff elapsed; the parent
/// passes it back to [`Children::restart_due`]. Stale ones (the child was removed or failed
/// again meanwhile) are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartDue {
    /// The child to respawn.
    child: String,
    /// Which failure this timer answers.
    generation: u64,
}

/// Why a supervisor could not keep its children running.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// A child failed more than `max_restarts` times inside the window: the supervisor must fail
    /// so its parent decides.
    #[error("child {child} failed after {restarts} restarts within {window:?}; escalating")]
    Escalated {
        /// The child that failed too often.
        child: String,
        /// Its restarts inside the window.
        restarts: u32,
        /// The window.
        window: Duration,
    },
    /// A child could not be started when it was added.
    #[error("child {child} could not be started: {source}")]
    SpawnFailed {
        /// The child.
        child: String,
        /// ractor's reason.
        #[source]
        source: SpawnErr,
    },
    /// A child named a dependency that is not declared before it.
    #[error("child {child} depends on {dependency}, which is not declared before it")]
    UnknownDependency {
        /// The child.
        child: String,
        /// The missing dependency.
        dependency: String,
    },
    /// Two children share a name.
    #[error("a child named {0} already exists")]
    DuplicateChild(String),
}

/// Where one child is in its life cycle.
#[derive(Debug)]
enum SlotState {
    /// Running as this instance.
    Running(ActorCell),
    /// Asked to stop because a dependency is restarting; respawned once it has stopped.
    Stopping(ActorCell),
    /// Not running; spawned once `backoff_done` and every dependency is running.
    Waiting {
        /// Which failure's timer this slot waits for.
        generation: u64,
        /// Whether the backoff elapsed (always true for a forced or first start).
        backoff_done: bool,
    },
}

/// One child and its state.
#[derive(Debug)]
struct Slot {
    spec: ChildSpec,
    state: SlotState,
}

impl Slot {
    fn cell(&self) -> Option<&ActorCell> {
        match &self.state {
            SlotState::Running(cell) | SlotState::Stopping(cell) => Some(cell),
            SlotState::Waiting { .. } => None,
        }
    }

    fn running(&self) -> Option<&ActorCell> {
        match &self.state {
            SlotState::Running(cell) => Some(cell),
            _ => None,
        }
    }
}

/// The children of one supervising actor, and the logic that keeps them running.
///
/// `M` is the parent's message type; `restart_message` wraps a [`RestartDue`] in it.
pub struct Children<M> {
    /// The parent's kind, for the escalation log.
    kind: ActorKind,
    /// Children in declaration order (a valid start order).
    slots: Vec<Slot>,
    /// Restart history and backoff per child name.
    policy: RestartPolicy<String>,
    /// Jitter source.
    rng: fastrand::Rng,
    /// Where restarts are counted.
    metrics: Arc<Metrics>,
    /// Source of [`RestartDue::generation`]s.
    next_generation: u64,
    /// Wraps a restart timer in the parent's message type.
    restart_message: fn(RestartDue) -> M,
}

impl<M: Message> Children<M> {
    /// An empty set of children supervised by an actor of `kind` under `config`.
    pub fn new(
        kind: ActorKind,
        config: &SupervisionConfig,
        metrics: Arc<Metrics>,
        restart_message: fn(RestartDue) -> M,
    ) -> Self {
        Self {
            kind,
            slots: Vec::new(),
            policy: RestartPolicy::new(config),
            rng: fastrand::Rng::new(),
            metrics,
            next_generation: 1,
            restart_message,
        }
    }

    /// Replaces the restart policy (another jitter, or a seeded one in tests).
    pub fn with_policy(mut self, policy: RestartPolicy<String>, rng: fastrand::Rng) -> Self {
        self.policy = policy;
        self.rng = rng;
        self
    }

    /// Adds a child and starts it now if its dependencies run. Fails if the name is taken, a
    /// dependency is not declared yet, or the first spawn fails (start-up errors are not
    /// retried: they are configuration or environment problems the operator must see).
    pub async fn add(
        &mut self,
        myself: &ActorCell,
        spec: ChildSpec,
    ) -> Result<(), SupervisorError> {
        if self.index_of(&spec.name).is_some() {
            return Err(SupervisorError::DuplicateChild(spec.name));
        }
        if let Some(missing) = spec
            .depends_on
            .iter()
            .find(|dep| self.index_of(dep).is_none())
        {
            return Err(SupervisorError::UnknownDependency {
                child: spec.name.clone(),
                dependency: missing.clone(),
            });
        }
        let generation = self.generation();
        self.slots.push(Slot {
            spec,
            state: SlotState::Waiting {
                generation,
                backoff_done: true,
            },
        });
        let index = self.slots.len() - 1;
        if let Some(ctx) = self.context_if_ready(myself, index) {
            let slot = &mut self.slots[index];
            match (slot.spec.spawn)(ctx).await {
                Ok(cell) => slot.state = SlotState::Running(cell),
                Err(source) => {
                    let child = slot.spec.name.clone();
                    self.slots.pop();
                    return Err(SupervisorError::SpawnFailed { child, source });
                }
            }
        }
        Ok(())
    }

    /// Stops and forgets the child `name` and every child depending on it; their exits are not
    /// restarted. Returns whether the child existed.
    pub fn remove(&mut self, name: &str, reason: &str) -> bool {
        let Some(index) = self.index_of(name) else {
            return false;
        };
        let mut doomed = self.dependants_of(index);
        doomed.push(index);
        doomed.sort_unstable();
        for &i in doomed.iter().rev() {
            let slot = self.slots.remove(i);
            if let Some(cell) = slot.cell() {
                cell.stop(Some(reason.to_owned()));
            }
            self.policy.forget(&slot.spec.name);
        }
        true
    }

    /// The running instance of child `name`.
    pub fn get(&self, name: &str) -> Option<&ActorCell> {
        self.index_of(name).and_then(|i| self.slots[i].running())
    }

    /// Every running child, in declaration order.
    pub fn running(&self) -> impl Iterator<Item = (&str, &ActorCell)> {
        self.slots
            .iter()
            .filter_map(|slot| slot.running().map(|cell| (slot.spec.name.as_str(), cell)))
    }

    /// Children declared, running or not.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether no child is declared.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Reacts to a supervision event of the parent. Events of actors that are not (or no
    /// longer) children are ignored. An `Err` must be returned from the parent's handler.
    pub async fn handle_event(
        &mut self,
        myself: &ActorCell,
        event: SupervisionEvent,
    ) -> Result<(), SupervisorError> {
        let (who, reason, failed) = match &event {
            SupervisionEvent::ActorFailed(who, err) => (who, format!("failed: {err}"), true),
            SupervisionEvent::ActorTerminated(who, _, reason) => {
                let reason = reason.as_deref().unwrap_or("no reason given");
                (who, format!("stopped: {reason}"), false)
            }
            _ => return Ok(()),
        };
        let id = who.get_id();
        let Some(index) = self
            .slots
            .iter()
            .position(|slot| slot.cell().is_some_and(|cell| cell.get_id() == id))
        else {
            return Ok(());
        };
        match &self.slots[index].state {
            SlotState::Stopping(_) => {
                let generation = self.generation();
                self.slots[index].state = SlotState::Waiting {
                    generation,
                    backoff_done: true,
                };
            }
            _ if !failed && self.slots[index].spec.mode == RestartMode::Transient => {
                let name = self.slots[index].spec.name.clone();
                tracing::debug!(child = name, "Transient child stopped; not restarting it.");
                self.remove(&name, &format!("transient dependency {name} stopped"));
                return Ok(());
            }
            _ => self.on_failure(myself, index, &reason)?,
        }
        self.reconcile(myself).await
    }

    /// Handles a [`RestartDue`] the parent received: spawns the child (and any dependants
    /// waiting for it) if the timer is still current.
    pub async fn restart_due(
        &mut self,
        myself: &ActorCell,
        due: RestartDue,
    ) -> Result<(), SupervisorError> {
        let Some(index) = self.index_of(&due.child) else {
            return Ok(());
        };
        if let SlotState::Waiting {
            generation,
            backoff_done,
        } = &mut self.slots[index].state
        {
            if *generation == due.generation {
                *backoff_done = true;
            }
        }
        self.reconcile(myself).await
    }

    /// Stops every child, dependants first, waiting up to `timeout` for each; for the parent's
    /// `post_stop`, so a shutdown drains in the reverse of the start order.
    pub async fn stop_all(&mut self, reason: &str, timeout: Duration) {
        while let Some(slot) = self.slots.pop() {
            if let Some(cell) = slot.cell() {
                if let Err(err) = cell
                    .stop_and_wait(Some(reason.to_owned()), Some(timeout))
                    .await
                {
                    tracing::warn!(
                        child = slot.spec.name,
                        error = %err,
                        "Child did not stop in time."
                    );
                }
            }
        }
    }

    /// Records a failure of `index`: escalates, or schedules its respawn and stops its
    /// dependants.
    fn on_failure(
        &mut self,
        myself: &ActorCell,
        index: usize,
        reason: &str,
    ) -> Result<(), SupervisorError> {
        let name = self.slots[index].spec.name.clone();
        let kind = self.slots[index].spec.kind;
        match self.policy.on_failure(&name, Instant::now(), &mut self.rng) {
            RestartDecision::Escalate { restarts, window } => {
                SupervisorEscalated {
                    kind: self.kind,
                    child: &name,
                    restarts,
                    window,
                }
                .emit(&self.metrics);
                Err(SupervisorError::Escalated {
                    child: name,
                    restarts,
                    window,
                })
            }
            RestartDecision::Restart { after, attempt } => {
                ActorRestarted {
                    kind,
                    name: &name,
                    reason,
                    attempt,
                    backoff: after,
                }
                .emit(&self.metrics);
                let generation = self.generation();
                self.slots[index].state = SlotState::Waiting {
                    generation,
                    backoff_done: false,
                };
                let wrap = self.restart_message;
                let due = RestartDue {
                    child: name.clone(),
                    generation,
                };
                drop(ractor::time::send_after(after, myself.clone(), move || {
                    wrap(due)
                }));
                let forced = format!("dependency {name} is restarting");
                for dependant in self.dependants_of(index) {
                    let slot = &mut self.slots[dependant];
                    if let SlotState::Running(cell) = &slot.state {
                        let cell = cell.clone();
                        ActorRestarted {
                            kind: slot.spec.kind,
                            name: &slot.spec.name,
                            reason: &forced,
                            attempt: 0,
                            backoff: after,
                        }
                        .emit(&self.metrics);
                        cell.stop(Some(forced.clone()));
                        slot.state = SlotState::Stopping(cell);
                    }
                }
                Ok(())
            }
        }
    }

    /// Spawns, in declaration order, every waiting child whose backoff elapsed and whose
    /// dependencies run. A failed spawn counts as a failure of that child.
    async fn reconcile(&mut self, myself: &ActorCell) -> Result<(), SupervisorError> {
        for index in 0..self.slots.len() {
            let Some(ctx) = self.context_if_ready(myself, index) else {
                continue;
            };
            match (self.slots[index].spec.spawn)(ctx).await {
                Ok(cell) => {
                    tracing::debug!(child = self.slots[index].spec.name, "Child started again.");
                    self.slots[index].state = SlotState::Running(cell);
                }
                Err(err) => self.on_failure(myself, index, &format!("restart failed: {err}"))?,
            }
        }
        Ok(())
    }

    /// A spawn context for `index` if it is waiting, its backoff elapsed and every dependency
    /// runs.
    fn context_if_ready(&self, myself: &ActorCell, index: usize) -> Option<SpawnContext> {
        let slot = &self.slots[index];
        if !matches!(
            slot.state,
            SlotState::Waiting {
                backoff_done: true,
                ..
            }
        ) {
            return None;
        }
        let dependencies = slot
            .spec
            .depends_on
            .iter()
            .map(|dep| {
                let cell = self.index_of(dep).and_then(|i| self.slots[i].running())?;
                Some((dep.clone(), cell.clone()))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(SpawnContext {
            supervisor: myself.clone(),
            dependencies,
        })
    }

    /// Indices of every child depending on `index`, directly or not, in declaration order.
    fn dependants_of(&self, index: usize) -> Vec<usize> {
        let mut affected = vec![self.slots[index].spec.name.as_str()];
        let mut found = Vec::new();
        for (i, slot) in self.slots.iter().enumerate().skip(index + 1) {
            if slot
                .spec
                .depends_on
                .iter()
                .any(|dep| affected.contains(&dep.as_str()))
            {
                affected.push(&slot.spec.name);
                found.push(i);
            }
        }
        found
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.slots.iter().position(|slot| slot.spec.name == name)
    }

    fn generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }
}

impl<M> fmt::Debug for Children<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Children")
            .field("kind", &self.kind)
            .field("slots", &self.slots)
            .finish_non_exhaustive()
    }
}

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
