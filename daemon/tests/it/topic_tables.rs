//! Per-table topics: Qlik Replicate's data messages carry no table name by default, the usual
//! layout being one topic per table. The table comes from the message itself when it names one,
//! else from the message's Kafka headers, else from `kafka.topic_tables` (a topic's own line, or
//! a pattern deriving schema and table from the topic's name); only then is the message
//! dead-lettered for naming no table.

use eda_loadtest::history::{qlik_message, sequence};
use eda_testkit::local::BROKERS;
use eda_testkit::{init_logs, unique, Scenario, Sinks};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Map, Value};
use std::time::{Duration, Instant};

/// A Qlik INSERT of one row with `column` = `key`, without the `schema`/`table` members unless
/// `named` gives them.
fn insert(column: &str, key: &str, named: Option<(&str, &str)>) -> Vec<u8> {
    let mut row = Map::new();
    row.insert(column.into(), key.into());
    row.insert("NOTE".into(), "per-table topic".into());
    let mut message: Value =
        serde_json::from_slice(&qlik_message("INSERT", &sequence(1), &row, None)).expect("JSON");
    let body = message["message"].as_object_mut().expect("a body");
    match named {
        Some((schema, table)) => {
            body.insert("schema".into(), schema.into());
            body.insert("table".into(), table.into());
        }
        None => {
            body.remove("schema");
            body.remove("table");
        }
    }
    serde_json::to_vec(&message).expect("JSON")
}

/// Produces `value` to `topic` with `headers` and waits for its delivery (the trace tests too).
pub(crate) async fn produce(
    producer: &FutureProducer,
    topic: &str,
    value: &[u8],
    headers: &[(&str, &str)],
) {
    let mut owned = OwnedHeaders::new();
    for (name, value) in headers {
        owned = owned.insert(Header {
            key: name,
            value: Some(value.as_bytes()),
        });
    }
    producer
        .send(
            FutureRecord::<(), _>::to(topic)
                .payload(value)
                .headers(owned),
            Duration::from_secs(30),
        )
        .await
        .expect("delivered");
}

/// Waits until the table holds every `pk` of `wanted`; on failure says what the DLQ holds.
async fn wait_for_items(scenario: &Scenario, wanted: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let items = scenario.sinks.table.items().await;
        let missing: Vec<&String> = wanted
            .iter()
            .filter(|pk| !items.contains_key(*pk))
            .collect();
        if missing.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            let letters: Vec<String> = scenario
                .sinks
                .dlq
                .peek()
                .await
                .iter()
                .filter_map(|b| serde_json::from_str::<Value>(b).ok())
                .map(|l| format!("{}: {}", l["source"]["topic"], l["error_message"]))
                .collect();
            panic!("never applied: {missing:?}; dead letters: {letters:#?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One topic per table, named `<prefix>.<SCHEMA>.<TABLE>`, and one line of configuration:
/// `"<prefix>.{schema}.{table}" = "{schema}.{table}"`. Messages without a table name are
/// applied to the table their topic names; a message that names its own table keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pattern_line_maps_every_per_table_topic_to_its_table() {
    init_logs();
    let mut scenario = Scenario::new(Sinks::create_uninspected().await, 1).await;
    let prefix = unique("tt");
    let (customers, orders) = (
        format!("{prefix}.SALES.CUSTOMERS"),
        format!("{prefix}.SALES.ORDERS"),
    );
    for topic in [&customers, &orders] {
        eda_loadtest::kafka::create_topic(BROKERS, topic, 1)
            .await
            .expect("topic");
    }
    scenario.config.kafka.topics = vec![customers.clone(), orders.clone()];
    scenario.config.kafka.topic_tables.insert(
        format!("{prefix}.{{schema}}.{{table}}"),
        "{schema}.{table}".into(),
    );
    let producer = eda_loadtest::kafka::producer(BROKERS).expect("producer");
    let (customer, order, named) = (unique("c"), unique("o"), unique("n"));
    produce(
        &producer,
        &customers,
        &insert("CUSTOMER_ID", &customer, None),
        &[],
    )
    .await;
    produce(&producer, &orders, &insert("ORDER_ID", &order, None), &[]).await;
    // The message's own table wins over its topic's.
    produce(
        &producer,
        &orders,
        &insert("CUSTOMER_ID", &named, Some(("SALES", "CUSTOMERS"))),
        &[],
    )
    .await;

    let (pipeline, _) = scenario.start().await;
    wait_for_items(
        &scenario,
        &[
            format!("SALES.CUSTOMERS#{customer}"),
            format!("SALES.ORDERS#{order}"),
            format!("SALES.CUSTOMERS#{named}"),
        ],
    )
    .await;
    pipeline.shutdown().await;
    assert_eq!(
        scenario.sinks.dlq.depth().await.expect("DLQ attributes"),
        Some(0),
        "nothing dead-lettered"
    );
}

/// A topic nobody mapped, whose producer names the table in Kafka headers (`schema` and
/// `table`, the defaults of `kafka.schema_header` and `kafka.table_header`, or one `table`
/// header holding `SCHEMA.TABLE`): the headers' table is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_named_in_kafka_headers_is_used() {
    init_logs();
    let scenario = Scenario::new(Sinks::create_uninspected().await, 1).await;
    let producer = eda_loadtest::kafka::producer(BROKERS).expect("producer");
    let (apart, qualified) = (unique("h"), unique("q"));
    produce(
        &producer,
        &scenario.topic,
        &insert("CUSTOMER_ID", &apart, None),
        &[("schema", "SALES"), ("table", "CUSTOMERS")],
    )
    .await;
    produce(
        &producer,
        &scenario.topic,
        &insert("ORDER_ID", &qualified, None),
        &[("table", "SALES.ORDERS")],
    )
    .await;
    let (pipeline, _) = scenario.start().await;
    wait_for_items(
        &scenario,
        &[
            format!("SALES.CUSTOMERS#{apart}"),
            format!("SALES.ORDERS#{qualified}"),
        ],
    )
    .await;
    pipeline.shutdown().await;
    assert_eq!(
        scenario.sinks.dlq.depth().await.expect("DLQ attributes"),
        Some(0),
        "nothing dead-lettered"
    );
}
