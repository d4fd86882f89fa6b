//! Builds Confluent-framed Qlik Avro messages with apache-avro's own encoder, so our reader is
//! checked against the reference implementation. Shared with `benches/decode.rs`.

use apache_avro::types::Value as Av;
use apache_avro::{Decimal, Schema};

/// The Qlik data-record schema fixture.
pub const SCHEMA: &str = include_str!("../fixtures/avro/qlik_data_record.avsc");

fn some(v: Av) -> Av {
    Av::Union(1, Box::new(v))
}

/// The `Data` record of the fixture schema for one order row.
pub fn data_record(order_id: i32, status_notes: &str) -> Av {
    Av::Record(vec![
        ("ORDER_ID".into(), some(Av::Int(order_id))),
        ("REGION".into(), some(Av::String("us-west".into()))),
        (
            "CUSTOMER_EMAIL".into(),
            some(Av::String("ada@example.com".into())),
        ),
        // 12550 with scale 2 = 125.50; two's complement big-endian.
        (
            "TOTAL".into(),
            some(Av::Decimal(Decimal::from(vec![0x31, 0x06]))),
        ),
        ("SHIP_DATE".into(), some(Av::Date(19_611))),
        (
            "CREATED_AT".into(),
            some(Av::TimestampMillis(1_694_402_601_123)),
        ),
        (
            "UPDATED_AT".into(),
            some(Av::TimestampMicros(1_694_402_650_004_521)),
        ),
        (
            "EXTERNAL_ID".into(),
            some(Av::Uuid(
                "67e55044-10b1-426f-9247-bb680e5fe0c8"
                    .parse()
                    .expect("valid uuid"),
            )),
        ),
        ("ACTIVE".into(), some(Av::Boolean(true))),
        ("SCORE".into(), some(Av::Double(0.875))),
        ("ITEM_COUNT".into(), some(Av::Long(3))),
        ("NOTES".into(), some(Av::String(status_notes.into()))),
    ])
}

/// A framed UPDATE message for schema id `id`.
pub fn update_message(id: u32, seq: &str) -> Vec<u8> {
    let schema = Schema::parse_str(SCHEMA).expect("fixture schema parses");
    let record = Av::Record(vec![
        ("data".into(), data_record(1001, "shipped")),
        ("beforeData".into(), some(data_record(1001, "packed"))),
        (
            "headers".into(),
            Av::Record(vec![
                ("operation".into(), Av::Enum(1, "UPDATE".into())),
                ("changeSequence".into(), Av::String(seq.into())),
                (
                    "timestamp".into(),
                    Av::String("2023-09-11T03:24:10.000".into()),
                ),
                (
                    "streamPosition".into(),
                    Av::String("00000000.00bb2590.00000001.0000.02.0000:154.7001.16".into()),
                ),
                (
                    "transactionId".into(),
                    Av::String("00000000000000000000000000060011".into()),
                ),
                ("changeMask".into(), some(Av::Bytes(vec![0x08]))),
                ("columnMask".into(), some(Av::Bytes(vec![0x0f, 0xff]))),
                ("transactionEventCounter".into(), some(Av::Long(1))),
                ("transactionLastEvent".into(), some(Av::Boolean(true))),
            ]),
        ),
    ]);
    let body = apache_avro::to_avro_datum(&schema, record).expect("record matches the schema");
    let mut framed = Vec::with_capacity(5 + body.len());
    framed.push(0);
    framed.extend_from_slice(&id.to_be_bytes());
    framed.extend_from_slice(&body);
    framed
}
