//! The daemon's supervision tree, assembled from the configuration:
//!
//! ```text
//! root (Supervisor)
//! ├── dlq-writer              DlqWriter            SQS dead-letter queue
//! ├── publisher               EventBridgePublisher (depends on dlq-writer)
//! ├── applier-0..N            CdcApplier           (depend on publisher, dlq-writer)
//! └── consumer-group          ConsumerGroup        (depends on every applier)
//!     └── partition <t>/<p>   PartitionConsumer    one per assigned partition
//! ```
//!
//! Declaration order is start order. When a sink or an applier fails, the supervisor stops its
//! dependants first — the consumer group with its partitions — and restarts them after it, so
//! the group rejoins and reads again from the last committed offset: work that was in flight in
//! the failed actor is replayed, never skipped, and the sequence guard absorbs the replay.
//!
//! The Schema Registry client is not an actor: it is a cache by schema id shared by every
//! partition consumer (a mailbox hop per lookup would cost more than the lookup), built once here.

use crate::aws::{DynamoDbItemWriter, EventBridgeClient, RegionClients, SqsDeadLetterQueue};
use crate::cdc_applier::{ApplierSettings, CdcApplier, CdcApplierArgs, CdcApplierMsg};
use crate::consumer_group::{ConsumerGroup, ConsumerGroupArgs, ConsumerGroupMsg};
use crate::core::apply_plan::TableRouting;
use crate::core::cdc::TableRef;
use crate::dlq_writer::{DlqWriter, DlqWriterArgs, DlqWriterMsg};
use crate::eventbridge_publisher::{
    EventBridgePublisher, EventBridgePublisherArgs, EventBridgePublisherMsg,
};
use crate::schema_registry::SchemaRegistryClient;
use crate::supervisor::{ChildSpec, Supervisor, SupervisorArgs, SupervisorMsg};
use crate::telemetry::{ActorKind, Liveness, Metrics, Readiness, Service, Sink};
use eda_config::Config;
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
    /// `/healthz`.
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
    /// The sink probe loop.
    probe_task: JoinHandle<()>,
    /// How long the consumer group gets to drain on shutdown.
    drain_timeout: Duration,
}

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The Schema Registry client could not be built.
    #[error(transparent)]
    SchemaRegistry(#[from] crate::schema_registry::SchemaRegistryError),
    /// The root supervisor did not start (a child's start-up failed).
    #[error("the supervision tree did not start: {0}")]
    Spawn(#[from] ractor::SpawnErr),
}

impl Pipeline {
    /// Builds the SDK clients and starts the supervision tree; returns once every child started.
    pub async fn start(config: Arc<Config>, obs: Observability) -> Result<Self, PipelineError> {
        let clients = RegionClients::new(&config.regions.primary, &config.aws).await;
        let registry = match &config.schema_registry.url {
            Some(_) if config.kafka.format == eda_config::MessageFormat::QlikAvro => Some(
                Arc::new(SchemaRegistryClient::new(&config.schema_registry)?),
            ),
            _ => None,
        };
        let children = children(&config, &clients, registry, &obs);
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
        let probe_task = tokio::spawn(probe_sinks(config.clone(), clients, obs.readiness.clone()));
        Ok(Self {
            root,
            root_task: tokio::spawn(async move {
                let _ = root_task.await;
            }),
            probe_task,
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
        if let Some(group) = self.child(CONSUMER_GROUP).await {
            let group: ActorRef<ConsumerGroupMsg> = group.into();
            let _ = group
                .call(
                    ConsumerGroupMsg::Drain,
                    Some(self.drain_timeout + Duration::from_secs(5)),
                )
                .await;
        }
        self.probe_task.abort();
        self.root.stop(Some("shutdown".into()));
        let _ = tokio::time::timeout(self.drain_timeout * 2, &mut self.root_task).await;
    }
}

fn children(
    config: &Arc<Config>,
    clients: &RegionClients,
    registry: Option<Arc<SchemaRegistryClient>>,
    obs: &Observability,
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

    let publisher = Arc::new(EventBridgeClient::new(
        clients.eventbridge.clone(),
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

    let writer = Arc::new(DynamoDbItemWriter::new(clients.dynamodb.clone()));
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
                let args = (writer.clone(), settings.clone(), metrics.clone());
                async move {
                    let args = CdcApplierArgs {
                        writer: args.0,
                        publisher: publisher.ok_or_else(|| missing(PUBLISHER))?,
                        dlq: dlq.ok_or_else(|| missing(DLQ_WRITER))?,
                        settings: args.1,
                        metrics: args.2,
                    };
                    Actor::spawn_linked(None, CdcApplier, args, ctx.supervisor())
                        .await
                        .map(|(a, _)| a.get_cell())
                }
            })
            .depends_on(PUBLISHER)
            .depends_on(DLQ_WRITER),
        );
    }

    let mut group = {
        let config = config.clone();
        let metrics = metrics.clone();
        let readiness = obs.readiness.clone();
        ChildSpec::new(CONSUMER_GROUP, ActorKind::ConsumerGroup, move |ctx| {
            let appliers: Option<Vec<ActorRef<CdcApplierMsg>>> = (0..appliers)
                .map(|i| ctx.dependency_ref::<CdcApplierMsg>(&applier_name(i)))
                .collect();
            let dlq = ctx.dependency_ref::<DlqWriterMsg>(DLQ_WRITER);
            let kafka = config.kafka.clone();
            let registry = registry.clone();
            let metrics = metrics.clone();
            let readiness = readiness.clone();
            async move {
                let args = ConsumerGroupArgs {
                    kafka,
                    appliers: appliers.ok_or_else(|| missing("applier"))?,
                    dlq: dlq.ok_or_else(|| missing(DLQ_WRITER))?,
                    registry,
                    metrics,
                    readiness,
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

fn missing(name: &str) -> ractor::SpawnErr {
    ractor::SpawnErr::StartupFailed(format!("dependency {name} is not running").into())
}

/// The applier settings from the configuration (routing from `apply.table_map`).
pub fn applier_settings(config: &Config) -> ApplierSettings {
    let region = &config.regions.primary;
    let mut routing = TableRouting::new(region.cdc_table.clone());
    for (source, target) in &config.apply.table_map {
        if let Some((schema, name)) = source.split_once('.') {
            routing = routing.with_override(&TableRef::new(schema, name), target.clone());
        }
    }
    ApplierSettings {
        routing,
        tombstone_ttl_secs: i64::try_from(config.apply.tombstone_ttl_secs).unwrap_or(i64::MAX),
        max_concurrency: config.apply.max_concurrency,
        retry: config.apply.retry.clone(),
        region: region.name.clone(),
        event_source: config.publish.source.clone(),
        event_bus: region.event_bus.clone(),
    }
}

/// Probes the primary region's sinks on the health interval, for `/readyz`: the daemon is ready
/// only once DynamoDB, EventBridge and SQS have answered recently.
async fn probe_sinks(config: Arc<Config>, clients: RegionClients, readiness: Arc<Readiness>) {
    let region = config.regions.primary.name.clone();
    let timeout = config.health.call_timeout();
    let mut interval = tokio::time::interval(config.health.interval());
    loop {
        interval.tick().await;
        let dynamodb =
            tokio::time::timeout(timeout, clients.dynamodb.list_tables().limit(1).send());
        let eventbridge = tokio::time::timeout(
            timeout,
            clients.eventbridge.list_event_buses().limit(1).send(),
        );
        let sqs = tokio::time::timeout(timeout, clients.sqs.list_queues().max_results(1).send());
        let (d, e, s) = tokio::join!(dynamodb, eventbridge, sqs);
        readiness.record_probe(Service::DynamoDb, &region, matches!(d, Ok(Ok(_))));
        readiness.record_probe(Service::EventBridge, &region, matches!(e, Ok(Ok(_))));
        readiness.record_probe(Service::Sqs, &region, matches!(s, Ok(Ok(_))));
    }
}
