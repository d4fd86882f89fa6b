//! Starting routers: the one place that turns the configuration into a running
//! [`RegionRouter`], wires it to its peer and its owed queue, and loads the zstd dictionary. The daemon starts each
//! router as a supervised child of its tree ([`crate::pipeline`]); processes without that tree
//! (the Lambda shims) start the pair with [`RegionRouters::spawn`]. Both go through
//! [`spawn_router`], so a router behaves the same in either shape of eda.

use super::{RegionRouter, RegionRouterArgs, RegionRouterMsg};
use crate::aws::{EventBridgeClient, RegionClients, SqsOwedQueue};
use crate::dlq_writer::DlqWriterMsg;
use crate::ports::{EventPublisher, OwedQueue};
use crate::telemetry::Metrics;
use eda_config::{Config, HealthConfig, RegionConfig, RoutingConfig};
use eda_core::envelope::Dictionary;
use ractor::{Actor, ActorCell, ActorRef, SpawnErr};
use std::sync::Arc;
use std::time::Duration;

/// Why routers could not start.
#[derive(Debug, thiserror::Error)]
pub enum RouterStartError {
    /// The zstd dictionary at `routing.dictionary_path` could not be read or loaded.
    #[error("routing.dictionary_path: {0}")]
    Dictionary(String),
    /// A router's `pre_start` failed (its envelope packer refused the settings).
    #[error("a region router did not start: {0}")]
    Spawn(#[from] SpawnErr),
}

/// Reads the dictionary `routing.dictionary_path` names, once per process (every router of the
/// process gets a clone); `None` when the path is unset.
pub fn load_dictionary(routing: &RoutingConfig) -> Result<Option<Dictionary>, RouterStartError> {
    let Some(path) = &routing.dictionary_path else {
        return Ok(None);
    };
    std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| Dictionary::from_bytes(bytes).map_err(|e| e.to_string()))
        .map(Some)
        .map_err(RouterStartError::Dictionary)
}

/// The actors and shared pieces a router is started with, beyond its configuration.
#[derive(Clone)]
pub struct RouterWiring {
    /// Where events go that neither the region nor its owed queue takes.
    pub dlq: ActorRef<DlqWriterMsg>,
    /// The other region's router when it already runs: the new router sends it detour copies,
    /// and it is told about the new router so that it does the same back.
    pub peer: Option<ActorRef<RegionRouterMsg>>,
    /// The dictionary from [`load_dictionary`].
    pub dictionary: Option<Dictionary>,
    /// Counters and gauges.
    pub metrics: Arc<Metrics>,
}

/// Starts the router that delivers to `region` the events produced in `home` (the region whose
/// name every envelope carries as its source), publishing through `publisher` and keeping what
/// `region` cannot take in `owed` (see [`owed_queue`]), linked to `supervisor` when there is one;
/// then introduces it to its peer, so the two send each other detour copies.
pub async fn spawn_router(
    config: &Config,
    home: &str,
    region: &RegionConfig,
    publisher: Arc<dyn EventPublisher>,
    owed: Arc<dyn OwedQueue>,
    wiring: RouterWiring,
    supervisor: Option<ActorCell>,
) -> Result<ActorRef<RegionRouterMsg>, SpawnErr> {
    let peer = wiring.peer.clone();
    let args = RegionRouterArgs {
        region: region.name.clone(),
        source_region: home.to_string(),
        publisher,
        breaker: config.breaker.clone(),
        routing: config.routing.clone(),
        dictionary: wiring.dictionary,
        owed,
        dlq: wiring.dlq,
        peer: wiring.peer,
        health_lease: health_lease(&config.health),
        metrics: wiring.metrics,
    };
    let (router, _) = match supervisor {
        Some(supervisor) => Actor::spawn_linked(None, RegionRouter, args, supervisor).await?,
        None => Actor::spawn(None, RegionRouter, args).await?,
    };
    if let Some(peer) = peer {
        let _ = peer.cast(RegionRouterMsg::SetPeer(router.clone()));
    }
    Ok(router)
}

/// The owed queue of events meant for `region`: the other region's `owed_queue_url`, reached
/// through `other_clients`, the other region's clients (the queue must be reachable while
/// `region` is down).
pub fn owed_queue(
    config: &Config,
    region: &RegionConfig,
    other_clients: &RegionClients,
) -> Arc<dyn OwedQueue> {
    let holder = config.regions.other(&region.name);
    Arc::new(SqsOwedQueue::new(
        other_clients.sqs.clone(),
        holder.owed_queue_url.clone(),
    ))
}

/// How long a breaker the health prober forced open stays forced without another word from it:
/// three rounds (each at most an interval plus a call timeout apart). The prober repeats the
/// forcing every round, so only a prober that stopped lets it lapse.
pub fn health_lease(health: &HealthConfig) -> Duration {
    (health.interval() + health.call_timeout()) * 3
}

/// A region's bus as a router publishes to it.
pub fn region_publisher(region: &RegionConfig, clients: &RegionClients) -> Arc<dyn EventPublisher> {
    Arc::new(EventBridgeClient::new(
        clients.lean_eventbridge.clone(),
        region.event_bus.clone(),
        region.name.clone(),
    ))
}

/// Both routers of a process that runs outside the daemon's tree (a Lambda execution
/// environment): the home region's and the other region's, each the other's peer, as the
/// daemon's `router-primary` and `router-secondary` are. They are not supervised: they live as
/// long as the process, and a router that stopped makes every later route fail, so the event
/// source retries elsewhere. Each drains its region's owed queue while it lives, as the
/// daemon's do.
#[derive(Debug, Clone)]
pub struct RegionRouters {
    /// The router of the region events are produced in; it takes the other's failover.
    pub home: ActorRef<RegionRouterMsg>,
    /// The router of the region events are replicated to: where replicated events are sent.
    pub away: ActorRef<RegionRouterMsg>,
}

impl RegionRouters {
    /// Builds both regions' clients, loads the dictionary and starts the home router, then the
    /// other region's with the home one as its peer (the daemon's start order).
    pub async fn spawn(
        config: &Config,
        home: &RegionConfig,
        dlq: ActorRef<DlqWriterMsg>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, RouterStartError> {
        let away = config.regions.other(&home.name);
        let dictionary = load_dictionary(&config.routing)?;
        let mut wiring = RouterWiring {
            dlq,
            peer: None,
            dictionary,
            metrics,
        };
        let home_router = spawn_in(config, home, home, wiring.clone()).await?;
        wiring.peer = Some(home_router.clone());
        let away_router = spawn_in(config, home, away, wiring).await?;
        Ok(Self {
            home: home_router,
            away: away_router,
        })
    }

    /// Stops both routers; what still waits in their buffers gets one more try at the owed
    /// queue, and what that does not take stays unacknowledged.
    pub fn stop(&self) {
        self.away.stop(None);
        self.home.stop(None);
    }
}

/// Starts `region`'s router, unsupervised, with clients of its own (and the other region's, for
/// its owed queue).
async fn spawn_in(
    config: &Config,
    home: &RegionConfig,
    region: &RegionConfig,
    wiring: RouterWiring,
) -> Result<ActorRef<RegionRouterMsg>, SpawnErr> {
    let clients = RegionClients::new(region, &config.aws)
        .await
        .timed(&wiring.metrics);
    let other = RegionClients::new(config.regions.other(&region.name), &config.aws).await;
    let publisher = region_publisher(region, &clients);
    let owed = owed_queue(config, region, &other);
    spawn_router(config, &home.name, region, publisher, owed, wiring, None).await
}
