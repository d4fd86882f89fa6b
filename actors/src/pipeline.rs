//! The daemon's supervision tree, assembled from the configuration:
//!
//! ```text
//! root (Supervisor)
//! ├── dlq-writer              DlqWriter            SQS dead-letter queue
//! ├── router-primary          RegionRouter         (depends on dlq-writer)
//! ├── router-secondary        RegionRouter         (depends on dlq-writer, router-primary)
//! ├── prober-primary          HealthProber         (depends on router-primary)
//! ├── prober-secondary        HealthProber         (depends on router-secondary)
//! ├── publisher               EventBridgePublisher (depends on dlq-writer)
//! ├── applier-0..N            CdcApplier           (depend on publisher, dlq-writer,
//! │                                                 router-secondary)
//! └── consumer-group          ConsumerGroup        (depends on every applier)
//!     └── partition <t>/<p>   PartitionConsumer    one per assigned partition
//! ```
//!
//! The daemon applies changes in the primary region and replicates the events of the tables
//! `routing` names to the secondary: the appliers route them to the secondary's router, which,
//! while the secondary's breaker is open, records them in the secondary's owed queue (in the
//! primary region) with a detour copy to the primary's bus, and delivers them to the secondary
//! once it is back. The two routers know
//! each other: the secondary's is given the primary's at start and introduces itself back, and
//! it restarts with the primary's. Each region's prober feeds its router; the primary's also
//! feeds `/readyz`.
//!
//! Declaration order is start order. When a sink or an applier fails, the supervisor stops its
//! dependants first — the consumer group with its partitions — and restarts them after it, so
//! the group rejoins and reads again from the last committed offset: work that was in flight in
//! the failed actor is replayed, never skipped, and the sequence guard absorbs the replay.
//!
//! The Schema Registry client is not an actor: it is a cache by schema id shared by every
//! partition consumer (a mailbox hop per lookup would cost more than the lookup), built once here.
//! The same holds for the Qlik table structures ([`TableStructures`]): one per process, outliving
//! restarts of the consumer group, backed by the primary region's `metadata_table`.

use crate::aws::{
    DynamoDbItemWriter, DynamoDbTableStructures, EventBridgeClient, RegionClients,
    SqsDeadLetterQueue,
};
use crate::cdc_applier::{CdcApplier, CdcApplierArgs, CdcApplierMsg};
use crate::dlq_writer::{DlqWriter, DlqWriterArgs, DlqWriterMsg};
use crate::eventbridge_publisher::{
    EventBridgePublisher, EventBridgePublisherArgs, EventBridgePublisherMsg,
};
use crate::health_prober::{HealthProber, HealthProberArgs};
use crate::kafka::consumer_group::{
    ConsumerGroup, ConsumerGroupArgs, ConsumerGroupMsg, EndOffsets,
};
use crate::kafka::schema_registry::SchemaRegistryClient;
use crate::kafka::table_structures::TableStructures;
use crate::region_router::{
    load_dictionary, owed_queue, region_publisher, spawn_router, RegionRouterMsg, RouterStartError,
    RouterWiring,
};
use crate::settings::applier_settings;
use crate::supervisor::{ChildSpec, Supervisor, SupervisorArgs, SupervisorMsg};
use crate::telemetry::{ActorKind, Liveness, Metrics, Readiness, Service, Sink};
use eda_config::Config;
use eda_core::envelope::Dictionary;
use ractor::{Actor, ActorCell, ActorRef};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// Name of the DLQ writer child.
pub const DLQ_WRITER: &str = "dlq-writer";
/// Name of the EventBridge publisher child.
pub const PUBLISHER: &str = "publisher";
/// Name of the consumer-group child.
pub const CONSUMER_GROUP: &str = "consumer-group";
/// Name of the primary region's router.
pub const ROUTER_PRIMARY: &str = "router-primary";
/// Name of the secondary region's router.
pub const ROUTER_SECONDARY: &str = "router-secondary";
/// Name of the primary region's health prober.
pub const PROBER_PRIMARY: &str = "prober-primary";
/// Name of the secondary region's health prober.
pub const PROBER_SECONDARY: &str = "prober-secondary";

/// Name of applier `i`.
pub fn applier_name(i: usize) -> String {
    format!("applier-{i}")
}

/// Shared state the HTTP surface reads.
#[derive(Clone)]
pub struct Observability {
    /// `/metrics`.
    pub metrics: Arc<Metrics>,
    /// `/readyz`.
    pub readiness: Arc<Readiness>,
    /// `/healthz`: the supervision tree's heartbeat and the consumer's group membership.
    pub liveness: Arc<Liveness>,
}

impl Observability {
    /// Fresh metrics, and readiness that needs the primary region's three sinks.
    pub fn new(config: &Config) -> Self {
        let region = &config.regions.primary.name;
        let max_probe_age = config.health.interval() * 3 + config.health.call_timeout();
        Self {
            metrics: Arc::new(Metrics::new()),
            readiness: Arc::new(Readiness::new(
                [
                    Sink::new(Service::DynamoDb, region.clone()),
                    Sink::new(Service::EventBridge, region.clone()),
                    Sink::new(Service::Sqs, region.clone()),
                ],
                max_probe_age,
            )),
            liveness: Arc::new(Liveness::new(Duration::from_secs(30))),
        }
    }
}

/// A running pipeline.
pub struct Pipeline {
    /// The root supervisor.
    root: ActorRef<SupervisorMsg>,
    /// Resolves when the root stops.
    root_task: JoinHandle<()>,
    /// How long the consumer group gets to drain on shutdown.
    drain_timeout: Duration,
}

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The Schema Registry client could not be built.
    #[error(transparent)]
    SchemaRegistry(#[from] crate::kafka::schema_registry::SchemaRegistryError),
    /// The zstd dictionary at `routing.dictionary_path` could not be read or loaded.
    #[error("routing.dictionary_path: {0}")]
    Dictionary(String),
    /// The root supervisor did not start (a child's start-up failed).
    #[error("the supervision tree did not start: {0}")]
    Spawn(#[from] ractor::SpawnErr),
}

impl Pipeline {
    /// Builds the SDK clients and starts the supervision tree; returns once every child started.
    pub async fn start(config: Arc<Config>, obs: Observability) -> Result<Self, PipelineError> {
        Self::start_bounded(config, obs, None).await
    }

    /// [`start`](Self::start), for a bounded pass when `end_offsets` is given: the partition
    /// consumers read nothing at or past their partition's end offset (`eda-daemon replay
    /// --mode one-off`). The same actors as the daemon's, wired the same way.
    pub async fn start_bounded(
        config: Arc<Config>,
        obs: Observability,
        end_offsets: Option<Arc<EndOffsets>>,
    ) -> Result<Self, PipelineError> {
        let clients = RegionClients::new(&config.regions.primary, &config.aws)
            .await
            .timed(&obs.metrics);
        let secondary = RegionClients::new(&config.regions.secondary, &config.aws)
            .await
            .timed(&obs.metrics);
        let dictionary = load_dictionary(&config.routing).map_err(|e| match e {
            RouterStartError::Dictionary(message) => PipelineError::Dictionary(message),
            RouterStartError::Spawn(e) => PipelineError::Spawn(e),
        })?;
        let registry = match &config.schema_registry.url {
            Some(_) if config.kafka.format == eda_config::MessageFormat::QlikAvro => Some(
                Arc::new(SchemaRegistryClient::new(&config.schema_registry)?),
            ),
            _ => None,
        };
        let regions = region_children(&config, [&clients, &secondary], dictionary, &obs);
        let children = pipeline_children(&config, &clients, registry, regions, &obs, end_offsets);
        let (root, root_task) = Actor::spawn(
            None,
            Supervisor,
            SupervisorArgs {
                kind: ActorKind::RootSupervisor,
                config: config.supervision.clone(),
                children,
                metrics: obs.metrics.clone(),
                liveness: Some((obs.liveness.clone(), Duration::from_secs(1))),
                stop_timeout: config.kafka.drain_timeout(),
            },
        )
        .await?;
        Ok(Self {
            root,
            root_task: tokio::spawn(async move {
                let _ = root_task.await;
            }),
            drain_timeout: config.kafka.drain_timeout(),
        })
    }

    /// The root supervisor (tests ask it for children).
    pub fn root(&self) -> &ActorRef<SupervisorMsg> {
        &self.root
    }

    /// The running instance of child `name`.
    pub async fn child(&self, name: &str) -> Option<ActorCell> {
        ractor::call!(self.root, SupervisorMsg::GetChild, name.to_string())
            .ok()
            .flatten()
    }

    /// Resolves when the root supervisor stops on its own (it escalated: restarts ran out).
    pub async fn stopped(&mut self) {
        let _ = (&mut self.root_task).await;
    }

    /// Graceful stop: stop fetching, drain in-flight work within the drain timeout, commit,
    /// leave the group, then stop the rest of the tree (sinks last, so they finish their work).
    pub async fn shutdown(mut self) {
        // The whole shutdown fits in the drain timeout: the group drains its partitions within
        // its share of it and commits; the tree stops within what is left (at least half a
        // second). What is cut short was not committed and is read again.
        let deadline = tokio::time::Instant::now() + self.drain_timeout;
        if let Some(group) = self.child(CONSUMER_GROUP).await {
            let group: ActorRef<ConsumerGroupMsg> = group.into();
            let _ = group
                .call(ConsumerGroupMsg::Drain, Some(self.drain_timeout))
                .await;
        }
        self.root.stop(Some("shutdown".into()));
        let left = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .max(Duration::from_millis(500));
        let _ = tokio::time::timeout(left, &mut self.root_task).await;
    }
}

/// The children in start order; `regions` (routers and probers) start right after the DLQ
/// writer they depend on.
fn pipeline_children(
    config: &Arc<Config>,
    clients: &RegionClients,
    registry: Option<Arc<SchemaRegistryClient>>,
    regions: Vec<ChildSpec>,
    obs: &Observability,
    end_offsets: Option<Arc<EndOffsets>>,
) -> Vec<ChildSpec> {
    let region = &config.regions.primary;
    let metrics = obs.metrics.clone();
    let mut specs = Vec::new();

    let dlq_sink = Arc::new(SqsDeadLetterQueue::new(
        clients.sqs.clone(),
        region.dlq_queue_url.clone(),
    ));
    {
        let config = config.clone();
        let metrics = metrics.clone();
        specs.push(ChildSpec::new(
            DLQ_WRITER,
            ActorKind::DlqWriter,
            move |ctx| {
                let args = DlqWriterArgs {
                    sink: dlq_sink.clone(),
                    config: config.dlq.clone(),
                    metrics: metrics.clone(),
                };
                async move {
                    Actor::spawn_linked(None, DlqWriter, args, ctx.supervisor())
                        .await
                        .map(|(a, _)| a.get_cell())
                }
            },
        ));
    }

    specs.extend(regions);

    let publisher = Arc::new(EventBridgeClient::new(
        clients.lean_eventbridge.clone(),
        region.event_bus.clone(),
        region.name.clone(),
    ));
    {
        let config = config.clone();
        let metrics = metrics.clone();
        specs.push(
            ChildSpec::new(PUBLISHER, ActorKind::EventBridgePublisher, move |ctx| {
                let dlq = ctx.dependency_ref::<DlqWriterMsg>(DLQ_WRITER);
                let publisher = publisher.clone();
                let config = config.clone();
                let metrics = metrics.clone();
                async move {
                    let args = EventBridgePublisherArgs {
                        publisher,
                        dlq: dlq.ok_or_else(|| missing(DLQ_WRITER))?,
                        retry: config.publish.retry.clone(),
                        max_entries: config.publish.max_entries,
                        max_concurrency: config.publish.max_concurrency,
                        metrics,
                    };
                    Actor::spawn_linked(None, EventBridgePublisher, args, ctx.supervisor())
                        .await
                        .map(|(a, _)| a.get_cell())
                }
            })
            .depends_on(DLQ_WRITER),
        );
    }

    let writer = Arc::new(
        DynamoDbItemWriter::with_statements_per_call(clients, config.apply.batch_statements)
            .with_metrics(metrics.clone()),
    );
    let settings = Arc::new(applier_settings(config));
    let appliers = config.apply.appliers.max(1);
    for i in 0..appliers {
        let writer = writer.clone();
        let settings = settings.clone();
        let metrics = metrics.clone();
        specs.push(
            ChildSpec::new(applier_name(i), ActorKind::CdcApplier, move |ctx| {
                let publisher = ctx.dependency_ref::<EventBridgePublisherMsg>(PUBLISHER);
                let dlq = ctx.dependency_ref::<DlqWriterMsg>(DLQ_WRITER);
                let router = ctx.dependency_ref::<RegionRouterMsg>(ROUTER_SECONDARY);
                let args = (writer.clone(), settings.clone(), metrics.clone());
                async move {
                    let args = CdcApplierArgs {
                        writer: args.0,
                        publisher: publisher.ok_or_else(|| missing(PUBLISHER))?,
                        dlq: dlq.ok_or_else(|| missing(DLQ_WRITER))?,
                        router: Some(router.ok_or_else(|| missing(ROUTER_SECONDARY))?),
                        settings: args.1,
                        metrics: args.2,
                    };
                    Actor::spawn_linked(None, CdcApplier, args, ctx.supervisor())
                        .await
                        .map(|(a, _)| a.get_cell())
                }
            })
            .depends_on(PUBLISHER)
            .depends_on(DLQ_WRITER)
            .depends_on(ROUTER_SECONDARY),
        );
    }

    let structures = table_structures(config, clients);
    let mut group = {
        let config = config.clone();
        let metrics = metrics.clone();
        let readiness = obs.readiness.clone();
        let liveness = obs.liveness.clone();
        ChildSpec::new(CONSUMER_GROUP, ActorKind::ConsumerGroup, move |ctx| {
            let appliers: Option<Vec<ActorRef<CdcApplierMsg>>> = (0..appliers)
                .map(|i| ctx.dependency_ref::<CdcApplierMsg>(&applier_name(i)))
                .collect();
            let dlq = ctx.dependency_ref::<DlqWriterMsg>(DLQ_WRITER);
            let kafka = config.kafka.clone();
            let registry = registry.clone();
            let structures = structures.clone();
            let metrics = metrics.clone();
            let readiness = readiness.clone();
            let liveness = liveness.clone();
            let end_offsets = end_offsets.clone();
            async move {
                let args = ConsumerGroupArgs {
                    kafka,
                    appliers: appliers.ok_or_else(|| missing("applier"))?,
                    dlq: dlq.ok_or_else(|| missing(DLQ_WRITER))?,
                    registry,
                    structures,
                    metrics,
                    readiness,
                    liveness,
                    end_offsets,
                };
                Actor::spawn_linked(None, ConsumerGroup, args, ctx.supervisor())
                    .await
                    .map(|(a, _)| a.get_cell())
            }
        })
        .depends_on(DLQ_WRITER)
        .depends_on(PUBLISHER)
    };
    for i in 0..appliers {
        group = group.depends_on(applier_name(i));
    }
    specs.push(group);
    specs
}

/// The Qlik table structures of the process, in the primary region's `metadata_table`; none for
/// Debezium, which names its keys in every message.
pub fn table_structures(config: &Config, clients: &RegionClients) -> Option<Arc<TableStructures>> {
    match config.kafka.format {
        eda_config::MessageFormat::QlikJson | eda_config::MessageFormat::QlikAvro => {
            Some(Arc::new(TableStructures::new(Arc::new(
                DynamoDbTableStructures::new(
                    clients.dynamodb.clone(),
                    config.regions.primary.metadata_table.clone(),
                ),
            ))))
        }
        eda_config::MessageFormat::Debezium => None,
    }
}

fn missing(name: &str) -> ractor::SpawnErr {
    ractor::SpawnErr::StartupFailed(format!("dependency {name} is not running").into())
}

/// The region routers and health probers of both regions.
fn region_children(
    config: &Arc<Config>,
    clients: [&RegionClients; 2],
    dictionary: Option<Dictionary>,
    obs: &Observability,
) -> Vec<ChildSpec> {
    let regions = [&config.regions.primary, &config.regions.secondary];
    let routers = [ROUTER_PRIMARY, ROUTER_SECONDARY];
    let probers = [PROBER_PRIMARY, PROBER_SECONDARY];
    let mut specs = Vec::new();
    for i in 0..2 {
        let region = regions[i].clone();
        let publisher = region_publisher(&region, clients[i]);
        // What this region cannot take waits in the other region's owed queue.
        let owed = owed_queue(config, &region, clients[1 - i]);
        let router_config = config.clone();
        let dictionary = dictionary.clone();
        let metrics = obs.metrics.clone();
        let publisher_for_router = publisher.clone();
        let mut spec = ChildSpec::new(routers[i], ActorKind::RegionRouter, move |ctx| {
            let dlq = ctx.dependency_ref::<DlqWriterMsg>(DLQ_WRITER);
            let peer = (i == 1)
                .then(|| ctx.dependency_ref::<RegionRouterMsg>(ROUTER_PRIMARY))
                .flatten();
            let args = (
                router_config.clone(),
                region.clone(),
                publisher_for_router.clone(),
                owed.clone(),
                dictionary.clone(),
                metrics.clone(),
            );
            async move {
                let (config, region, publisher, owed, dictionary, metrics) = args;
                let wiring = RouterWiring {
                    dlq: dlq.ok_or_else(|| missing(DLQ_WRITER))?,
                    peer,
                    dictionary,
                    metrics,
                };
                // Changes are applied, and their events produced, in the primary region.
                let home = &config.regions.primary.name;
                spawn_router(
                    &config,
                    home,
                    &region,
                    publisher,
                    owed,
                    wiring,
                    Some(ctx.supervisor()),
                )
                .await
                .map(|router| router.get_cell())
            }
        })
        .depends_on(DLQ_WRITER);
        if i == 1 {
            spec = spec.depends_on(ROUTER_PRIMARY);
        }
        specs.push(spec);

        let region = regions[i].name.clone();
        let probe_clients = clients[i].clone();
        let config = config.clone();
        let metrics = obs.metrics.clone();
        // Only the primary's sinks are required for readiness (the pipeline runs there).
        let readiness = (i == 0).then(|| obs.readiness.clone());
        let router_name = routers[i];
        specs.push(
            ChildSpec::new(probers[i], ActorKind::HealthProber, move |ctx| {
                let router = ctx.dependency_ref::<RegionRouterMsg>(router_name);
                let args = HealthProberArgs {
                    region: region.clone(),
                    clients: probe_clients.clone(),
                    config: config.health.clone(),
                    events: Some(publisher.clone()),
                    source: config.publish.source.clone(),
                    readiness: readiness.clone(),
                    router,
                    metrics: metrics.clone(),
                };
                async move {
                    Actor::spawn_linked(None, HealthProber, args, ctx.supervisor())
                        .await
                        .map(|(a, _)| a.get_cell())
                }
            })
            .depends_on(router_name),
        );
    }
    specs
}
