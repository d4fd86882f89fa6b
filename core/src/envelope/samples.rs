//! Deterministic Qlik-Replicate-like CDC messages, for training and measuring the dictionary.
//!
//! The shipped dictionary is trained on these (see [`super::dictionary`]), and the envelope
//! benchmark packs them, so "how well does the dictionary compress" is measured on the same kind
//! of data it was trained for. A seed gives the same message every time: a retrained dictionary
//! differs only when this generator does.

use std::fmt::Write as _;

/// A table the generator emits rows for: its name and a row builder.
struct Table {
    schema: &'static str,
    name: &'static str,
    row: fn(&mut fastrand::Rng, &mut String),
}

const FIRST: &[&str] = &[
    "Ana", "Bruno", "Chen", "Dara", "Elif", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kwame",
    "Lena", "Mateo", "Nadia", "Omar", "Priya",
];
const LAST: &[&str] = &[
    "Silva", "Novak", "Okafor", "Larsen", "Tanaka", "Moreau", "Kowalski", "Haddad", "Fischer",
    "Rossi", "Nguyen", "Garcia",
];
const CITIES: &[(&str, &str)] = &[
    ("Seattle", "WA"),
    ("Portland", "OR"),
    ("Austin", "TX"),
    ("Boston", "MA"),
    ("Denver", "CO"),
    ("Chicago", "IL"),
];
const STATUSES: &[&str] = &[
    "PENDING",
    "PAID",
    "SHIPPED",
    "DELIVERED",
    "CANCELLED",
    "REFUNDED",
];
const SKUS: &[&str] = &[
    "SKU-1001", "SKU-2040", "SKU-3310", "SKU-4099", "SKU-5123", "SKU-7777",
];

const TABLES: &[Table] = &[
    Table {
        schema: "SALES",
        name: "CUSTOMERS",
        row: customer_row,
    },
    Table {
        schema: "SALES",
        name: "ORDERS",
        row: order_row,
    },
    Table {
        schema: "SALES",
        name: "ORDER_ITEMS",
        row: order_item_row,
    },
    Table {
        schema: "INVENTORY",
        name: "PRODUCTS",
        row: product_row,
    },
];

fn pick<'a>(rng: &mut fastrand::Rng, items: &[&'a str]) -> &'a str {
    items.get(rng.usize(..items.len())).copied().unwrap_or("")
}

fn timestamp(rng: &mut fastrand::Rng) -> String {
    format!(
        "2024-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
        rng.u32(1..=12),
        rng.u32(1..=28),
        rng.u32(0..24),
        rng.u32(0..60),
        rng.u32(0..60),
        rng.u32(0..1_000_000)
    )
}

fn customer_row(rng: &mut fastrand::Rng, out: &mut String) {
    let first = pick(rng, FIRST);
    let last = pick(rng, LAST);
    let (city, state) = CITIES[rng.usize(..CITIES.len())];
    let _ = write!(
        out,
        r#"{{"CUSTOMER_ID":{},"FIRST_NAME":"{first}","LAST_NAME":"{last}","EMAIL":"{}.{}@example.com","PHONE":"+1-206-555-{:04}","ADDRESS_LINE1":"{} Main Street","CITY":"{city}","STATE":"{state}","POSTAL_CODE":"{:05}","COUNTRY":"US","LOYALTY_TIER":"{}","CREATED_AT":"{}","UPDATED_AT":"{}"}}"#,
        rng.u32(1..2_000_000),
        first.to_lowercase(),
        last.to_lowercase(),
        rng.u32(0..10_000),
        rng.u32(1..9_999),
        rng.u32(10_000..99_999),
        pick(rng, &["BRONZE", "SILVER", "GOLD", "PLATINUM"]),
        timestamp(rng),
        timestamp(rng),
    );
}

fn order_row(rng: &mut fastrand::Rng, out: &mut String) {
    let _ = write!(
        out,
        r#"{{"ORDER_ID":{},"CUSTOMER_ID":{},"ORDER_STATUS":"{}","ORDER_TOTAL":"{}.{:02}","CURRENCY":"USD","PAYMENT_METHOD":"{}","SHIPPING_METHOD":"{}","ORDER_DATE":"{}","UPDATED_AT":"{}","SALES_CHANNEL":"{}"}}"#,
        rng.u64(1..90_000_000),
        rng.u32(1..2_000_000),
        pick(rng, STATUSES),
        rng.u32(1..5_000),
        rng.u32(0..100),
        pick(rng, &["CARD", "PAYPAL", "INVOICE", "GIFT_CARD"]),
        pick(rng, &["GROUND", "TWO_DAY", "OVERNIGHT", "PICKUP"]),
        timestamp(rng),
        timestamp(rng),
        pick(rng, &["WEB", "MOBILE", "STORE", "PARTNER"]),
    );
}

fn order_item_row(rng: &mut fastrand::Rng, out: &mut String) {
    let _ = write!(
        out,
        r#"{{"ORDER_ID":{},"LINE_NUMBER":{},"SKU":"{}","QUANTITY":{},"UNIT_PRICE":"{}.{:02}","DISCOUNT":"0.{:02}","TAX_CODE":"TX-{}","UPDATED_AT":"{}"}}"#,
        rng.u64(1..90_000_000),
        rng.u32(1..20),
        pick(rng, SKUS),
        rng.u32(1..12),
        rng.u32(1..800),
        rng.u32(0..100),
        rng.u32(0..40),
        rng.u32(100..999),
        timestamp(rng),
    );
}

fn product_row(rng: &mut fastrand::Rng, out: &mut String) {
    let _ = write!(
        out,
        r#"{{"PRODUCT_ID":{},"SKU":"{}","PRODUCT_NAME":"{} {}","CATEGORY":"{}","LIST_PRICE":"{}.{:02}","STOCK_ON_HAND":{},"WAREHOUSE_CODE":"WH-{}","ACTIVE":{},"UPDATED_AT":"{}"}}"#,
        rng.u32(1..500_000),
        pick(rng, SKUS),
        pick(rng, &["Trail", "Urban", "Classic", "Pro", "Eco"]),
        pick(rng, &["Backpack", "Jacket", "Bottle", "Lamp", "Chair"]),
        pick(rng, &["OUTDOOR", "APPAREL", "HOME", "OFFICE"]),
        rng.u32(1..900),
        rng.u32(0..100),
        rng.u32(0..10_000),
        pick(rng, &["SEA", "PDX", "AUS"]),
        rng.bool(),
        timestamp(rng),
    );
}

/// One Qlik Replicate `atMSG` data message (INSERT, UPDATE with `beforeData`, or DELETE),
/// between about 500 bytes and 1.5 KB, the same for the same `seed`.
///
/// Public so the benchmark, the loadtest and the dictionary trainer share one definition of
/// "realistic CDC traffic".
pub fn cdc_message(seed: u64) -> String {
    let mut rng = fastrand::Rng::with_seed(seed);
    let table = &TABLES[rng.usize(..TABLES.len())];
    let operation = pick(
        &mut rng,
        &["INSERT", "INSERT", "UPDATE", "UPDATE", "DELETE"],
    );
    let mut out = String::with_capacity(1_536);
    out.push_str(r#"{"magic":"atMSG","type":"DT","headers":null,"messageSchemaId":null,"messageSchema":null,"message":{"data":"#);
    if operation == "DELETE" {
        out.push_str("null");
    } else {
        (table.row)(&mut rng, &mut out);
    }
    out.push_str(r#","beforeData":"#);
    if operation == "INSERT" {
        out.push_str("null");
    } else {
        (table.row)(&mut rng, &mut out);
    }
    let _ = write!(
        out,
        r#","headers":{{"operation":"{operation}","changeSequence":"2024{:014}{:018}","timestamp":"{}","streamPosition":"000000{:02x}.{:08x}.00000001.0000.02.0000:{}.{}.16","transactionId":"{:032X}","changeMask":"{:02X}","columnMask":"FF","transactionEventCounter":{},"transactionLastEvent":{}}},"schema":"{}","table":"{}"}}}}"#,
        rng.u64(0..100_000_000_000_000),
        rng.u64(0..1_000_000_000_000_000_000),
        timestamp(&mut rng),
        rng.u32(0..256),
        rng.u32(..),
        rng.u32(0..100_000),
        rng.u32(0..1_000),
        rng.u128(..),
        rng.u32(0..256),
        rng.u32(1..20),
        rng.bool(),
        table.schema,
        table.name,
    );
    out
}

/// `count` messages from consecutive seeds, the training set of the shipped dictionary.
pub fn training_set(first_seed: u64, count: usize) -> Vec<String> {
    (first_seed..first_seed + count as u64)
        .map(cdc_message)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_deterministic_json_of_realistic_size() {
        assert_eq!(cdc_message(7), cdc_message(7));
        for seed in 0..200 {
            let m = cdc_message(seed);
            let v: serde_json::Value = serde_json::from_str(&m).unwrap();
            assert_eq!(v["magic"], "atMSG");
            assert!((300..2_000).contains(&m.len()), "{} bytes", m.len());
        }
    }
}
