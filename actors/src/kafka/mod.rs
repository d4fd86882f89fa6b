//! The Kafka side of the daemon: the consumer-group member, one consumer actor per assigned
//! partition, the per-partition decoder, the Schema Registry client the decoder fetches Avro
//! schemas from, and the durable Qlik table structures every decoder shares.
//!
//! - [`consumer_group`]: [`ConsumerGroup`](consumer_group::ConsumerGroup) owns the rdkafka
//!   consumer, follows rebalances and starts a partition consumer per assigned partition.
//! - [`client`]: the rdkafka consumer type, its librdkafka settings and the rebalance callbacks,
//!   shared by the two actors so neither imports the other back.
//! - [`partition_consumer`]: [`PartitionConsumer`](partition_consumer::PartitionConsumer) reads
//!   one partition in order, hands changes to the appliers, and stores an offset only once
//!   everything before it is settled.
//! - [`progress`]: [`PartitionProgress`](progress::PartitionProgress), where a partition
//!   stands, shared by its partition consumer and the group, which reports it as the lag against
//!   the committed offset and the age of the oldest unsettled message.
//! - [`message_decoder`]: one partition's decoder state (Avro schemas, its copy of the Qlik table
//!   structures).
//! - [`table_structures`]: the Qlik table structures of the process, one cache shared by every
//!   partition, made durable in DynamoDB before a metadata message is acknowledged.
//! - [`schema_registry`]: the Confluent Schema Registry client, with a cache by schema id.

pub mod client;
pub mod consumer_group;
pub mod message_decoder;
pub mod partition_consumer;
pub mod progress;
pub mod schema_registry;
pub mod table_structures;
