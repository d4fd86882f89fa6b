//! [`Children`]: the restart logic a supervising actor embeds in its state.

use super::spec::{ChildSpec, RestartMode, SpawnContext};
use crate::telemetry::{ActorKind, ActorRestarted, InternalEvent, Metrics, SupervisorEscalated};
use eda_config::SupervisionConfig;
use eda_core::restart::{RestartDecision, RestartPolicy};
use ractor::{ActorCell, Message, SpawnErr, SupervisionEvent};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
