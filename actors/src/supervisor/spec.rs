//! [`ChildSpec`]: how a supervisor (re)starts one child, and what the child depends on.

use crate::telemetry::ActorKind;
use ractor::{ActorCell, ActorRef, Message, SpawnErr};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The future a [`ChildSpec`]'s spawn closure returns: the new child's cell.
pub type SpawnFuture = Pin<Box<dyn Future<Output = Result<ActorCell, SpawnErr>> + Send>>;

/// What a spawn closure gets: the supervisor to link to, and the running dependencies.
#[derive(Debug, Clone)]
pub struct SpawnContext {
    /// The supervisor's cell; pass it to `spawn_linked`.
    pub(super) supervisor: ActorCell,
    /// The current cells of the child's dependencies, by name.
    pub(super) dependencies: Vec<(String, ActorCell)>,
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
    pub(super) name: String,
    /// The metric label of its restarts.
    pub(super) kind: ActorKind,
    /// Whether a clean stop is restarted.
    pub(super) mode: RestartMode,
    /// Names of children (declared earlier) it must run after and restart with.
    pub(super) depends_on: Vec<String>,
    /// Spawns a fresh instance linked to the context's supervisor.
    pub(super) spawn: Arc<dyn Fn(SpawnContext) -> SpawnFuture + Send + Sync>,
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
