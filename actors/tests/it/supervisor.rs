//! The supervisor against real ractor actors: restarts, escalation, dependency order, metrics.

use eda_actors::supervisor::{ChildSpec, SpawnContext, Supervisor, SupervisorArgs, SupervisorMsg};
use eda_actors::telemetry::{ActorKind, Liveness, Metrics};
use eda_config::SupervisionConfig;
use ractor::{call, Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor::{SpawnErr, SupervisionEvent};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Lines the workers write as they start, in order.
type Log = Arc<Mutex<Vec<String>>>;

/// A test child: panics on request, answers pings with how many it handled, logs its starts.
struct Worker;

struct WorkerArgs {
    name: &'static str,
    log: Log,
    /// Panic in `post_start` (after spawning succeeded), every time.
    crash_on_start: bool,
    /// The dependency instance it was wired to, if any.
    dependency: Option<ActorCell>,
}

enum WorkerMsg {
    Panic,
    Stop,
    Ping(RpcReplyPort<u32>),
}

struct WorkerState {
    crash_on_start: bool,
    handled: u32,
}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = WorkerState;
    type Arguments = WorkerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let line = match &args.dependency {
            Some(dep) => format!("start {} with {}", args.name, dep.get_id()),
            None => format!("start {}", args.name),
        };
        args.log.lock().unwrap().push(line);
        Ok(WorkerState {
            crash_on_start: args.crash_on_start,
            handled: 0,
        })
    }

    async fn post_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if state.crash_on_start {
            panic!("worker crashes on start");
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            WorkerMsg::Panic => panic!("worker asked to panic"),
            WorkerMsg::Stop => myself.stop(None),
            WorkerMsg::Ping(reply) => {
                state.handled += 1;
                let _ = reply.send(state.handled);
            }
        }
        Ok(())
    }
}

fn worker(name: &'static str, kind: ActorKind, log: &Log, crash_on_start: bool) -> ChildSpec {
    let log = Arc::clone(log);
    ChildSpec::new(name, kind, move |ctx: SpawnContext| {
        let args = WorkerArgs {
            name,
            log: Arc::clone(&log),
            crash_on_start,
            dependency: None,
        };
        spawn_worker(ctx, args)
    })
}

/// A worker wired to its dependency `dep`, like a partition consumer to its applier.
fn dependant(name: &'static str, dep: &'static str, kind: ActorKind, log: &Log) -> ChildSpec {
    let log = Arc::clone(log);
    ChildSpec::new(name, kind, move |ctx: SpawnContext| {
        let args = WorkerArgs {
            name,
            log: Arc::clone(&log),
            crash_on_start: false,
            dependency: ctx.dependency(dep),
        };
        spawn_worker(ctx, args)
    })
    .depends_on(dep)
}

async fn spawn_worker(ctx: SpawnContext, args: WorkerArgs) -> Result<ActorCell, SpawnErr> {
    let (actor, _) = Worker::spawn_linked(None, Worker, args, ctx.supervisor()).await?;
    Ok(actor.get_cell())
}

fn config(max_restarts: u32) -> SupervisionConfig {
    SupervisionConfig {
        max_restarts,
        window_secs: 60,
        backoff_initial_ms: 1,
        backoff_max_ms: 20,
    }
}

fn args(children: Vec<ChildSpec>, max_restarts: u32, metrics: &Arc<Metrics>) -> SupervisorArgs {
    SupervisorArgs {
        kind: ActorKind::RootSupervisor,
        config: config(max_restarts),
        children,
        metrics: Arc::clone(metrics),
        liveness: None,
        stop_timeout: Duration::from_secs(1),
    }
}

async fn child(sup: &ActorRef<SupervisorMsg>, name: &str) -> Option<ActorCell> {
    call!(sup, SupervisorMsg::GetChild, name.to_owned()).expect("supervisor answers")
}

/// Waits until `name` runs as an instance other than `old`.
async fn restarted(sup: &ActorRef<SupervisorMsg>, name: &str, old: ActorId) -> ActorCell {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(cell) = child(sup, name).await {
            if cell.get_id() != old {
                return cell;
            }
        }
        assert!(Instant::now() < deadline, "{name} was not restarted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn restarts(metrics: &Metrics, kind: &str) -> Option<u64> {
    let text = metrics.encode().unwrap();
    let prefix = format!("eda_actor_restarts_total{{actor=\"{kind}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|v| v.parse().unwrap())
}

#[tokio::test]
async fn a_panicking_child_is_restarted_and_handles_the_next_message() {
    let metrics = Arc::new(Metrics::new());
    let log = Log::default();
    let children = vec![worker("applier", ActorKind::CdcApplier, &log, false)];
    let (sup, handle) = Actor::spawn(None, Supervisor, args(children, 5, &metrics))
        .await
        .unwrap();

    let first = child(&sup, "applier").await.expect("started");
    ActorRef::<WorkerMsg>::from(first.clone())
        .send_message(WorkerMsg::Panic)
        .unwrap();
    let second = restarted(&sup, "applier", first.get_id()).await;

    let handled = call!(ActorRef::<WorkerMsg>::from(second), WorkerMsg::Ping).unwrap();
    assert_eq!(handled, 1, "the new instance handles the next message");
    assert_eq!(restarts(&metrics, "cdc_applier"), Some(1));
    assert_eq!(log.lock().unwrap().len(), 2);

    sup.stop(None);
    handle.await.unwrap();
}

/// Forwards its children's supervision events to the test.
struct Observer;

impl Actor for Observer {
    type Msg = ();
    type State = mpsc::UnboundedSender<String>;
    type Arguments = mpsc::UnboundedSender<String>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        tx: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(tx)
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        tx: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let line = match event {
            SupervisionEvent::ActorFailed(_, err) => format!("failed: {err}"),
            SupervisionEvent::ActorTerminated(_, _, reason) => format!("terminated: {reason:?}"),
            _ => return Ok(()),
        };
        let _ = tx.send(line);
        Ok(())
    }
}

#[tokio::test]
async fn a_child_failing_beyond_max_restarts_escalates_to_the_parent() {
    let metrics = Arc::new(Metrics::new());
    let log = Log::default();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (observer, observer_handle) = Actor::spawn(None, Observer, tx).await.unwrap();
    let liveness = Arc::new(Liveness::new(Duration::from_secs(60)));
    let mut sup_args = args(
        vec![worker(
            "publisher",
            ActorKind::EventBridgePublisher,
            &log,
            true,
        )],
        3,
        &metrics,
    );
    sup_args.liveness = Some((Arc::clone(&liveness), Duration::from_millis(50)));
    let (_sup, sup_handle) =
        Supervisor::spawn_linked(None, Supervisor, sup_args, observer.get_cell())
            .await
            .unwrap();
    assert!(liveness.is_alive());

    let event = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("the supervisor escalates in time")
        .unwrap();
    assert!(
        event.starts_with("failed:") && event.contains("escalating"),
        "{event}"
    );
    sup_handle.await.unwrap();
    // One start and three restarts, then the fourth failure escalated.
    assert_eq!(log.lock().unwrap().len(), 4);
    assert_eq!(restarts(&metrics, "eventbridge_publisher"), Some(3));
    assert!(!liveness.is_alive(), "/healthz fails once the tree is down");

    observer.stop(None);
    observer_handle.await.unwrap();
}

#[tokio::test]
async fn dependants_restart_after_their_dependency_and_are_wired_to_the_new_instance() {
    let metrics = Arc::new(Metrics::new());
    let log = Log::default();
    let children = vec![
        worker("applier", ActorKind::CdcApplier, &log, false),
        dependant("consumer", "applier", ActorKind::PartitionConsumer, &log),
        worker("dlq", ActorKind::DlqWriter, &log, false),
    ];
    let (sup, handle) = Actor::spawn(None, Supervisor, args(children, 5, &metrics))
        .await
        .unwrap();
    let applier = child(&sup, "applier").await.unwrap();
    let consumer = child(&sup, "consumer").await.unwrap();
    let dlq = child(&sup, "dlq").await.unwrap();

    ActorRef::<WorkerMsg>::from(applier.clone())
        .send_message(WorkerMsg::Panic)
        .unwrap();
    let new_applier = restarted(&sup, "applier", applier.get_id()).await;
    let new_consumer = restarted(&sup, "consumer", consumer.get_id()).await;

    let lines = log.lock().unwrap().clone();
    assert_eq!(
        lines,
        [
            "start applier".to_owned(),
            format!("start consumer with {}", applier.get_id()),
            "start dlq".to_owned(),
            "start applier".to_owned(),
            format!("start consumer with {}", new_applier.get_id()),
        ]
    );
    assert_eq!(child(&sup, "dlq").await.unwrap().get_id(), dlq.get_id());
    assert_eq!(restarts(&metrics, "cdc_applier"), Some(1));
    assert_eq!(restarts(&metrics, "partition_consumer"), Some(1));
    assert_eq!(restarts(&metrics, "dlq_writer"), None);
    let handled = call!(ActorRef::<WorkerMsg>::from(new_consumer), WorkerMsg::Ping).unwrap();
    assert_eq!(handled, 1);

    sup.stop(None);
    handle.await.unwrap();
}

#[tokio::test]
async fn a_transient_child_that_stops_cleanly_is_not_restarted() {
    let metrics = Arc::new(Metrics::new());
    let log = Log::default();
    let children =
        vec![worker("partition-0", ActorKind::PartitionConsumer, &log, false).transient()];
    let (sup, handle) = Actor::spawn(None, Supervisor, args(children, 5, &metrics))
        .await
        .unwrap();
    let first = child(&sup, "partition-0").await.unwrap();
    ActorRef::<WorkerMsg>::from(first.clone())
        .send_message(WorkerMsg::Stop)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while child(&sup, "partition-0").await.is_some() {
        assert!(
            Instant::now() < deadline,
            "the stopped child is still listed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(log.lock().unwrap().len(), 1, "not restarted");
    assert_eq!(restarts(&metrics, "partition_consumer"), None);

    sup.stop(None);
    handle.await.unwrap();
}

#[tokio::test]
async fn an_undeclared_dependency_fails_the_supervisor_start() {
    let metrics = Arc::new(Metrics::new());
    let log = Log::default();
    let children = vec![dependant(
        "consumer",
        "applier",
        ActorKind::PartitionConsumer,
        &log,
    )];
    let err = Actor::spawn(None, Supervisor, args(children, 5, &metrics))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("depends on applier"), "{err}");
}

#[tokio::test]
async fn a_failed_restart_is_retried_with_backoff() {
    let metrics = Arc::new(Metrics::new());
    let log = Log::default();
    let attempts = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let spec = {
        let (log, attempts) = (Arc::clone(&log), Arc::clone(&attempts));
        ChildSpec::new(
            "prober",
            ActorKind::HealthProber,
            move |ctx: SpawnContext| {
                let attempt = attempts.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                let args = WorkerArgs {
                    name: "prober",
                    log: Arc::clone(&log),
                    crash_on_start: false,
                    dependency: None,
                };
                async move {
                    // The first two restarts fail in start-up (an endpoint still down, say).
                    if attempt == 2 || attempt == 3 {
                        return Err(SpawnErr::StartupFailed("endpoint unreachable".into()));
                    }
                    spawn_worker(ctx, args).await
                }
            },
        )
    };
    let (sup, handle) = Actor::spawn(None, Supervisor, args(vec![spec], 5, &metrics))
        .await
        .unwrap();
    let first = child(&sup, "prober").await.unwrap();
    ActorRef::<WorkerMsg>::from(first.clone())
        .send_message(WorkerMsg::Panic)
        .unwrap();
    let second = restarted(&sup, "prober", first.get_id()).await;

    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 4);
    assert_eq!(restarts(&metrics, "health_prober"), Some(3));
    let handled = call!(ActorRef::<WorkerMsg>::from(second), WorkerMsg::Ping).unwrap();
    assert_eq!(handled, 1);

    sup.stop(None);
    handle.await.unwrap();
}
