//! EventBridge in memory: `PutEvents` takes every entry and counts it by region, source and the
//! `event_id` its detail carries (eda's change events and cross-region envelopes both have one
//! at the top of the detail); nothing is delivered anywhere. Any bus name is accepted.
//!
//! The limits a publisher must respect are kept: 1 to 10 entries per call, 256 KB per call
//! (counted as EventBridge does: source, detail-type, detail, resources, and 14 bytes for a
//! time), and a detail that is a JSON object (else the entry fails with `MalformedDetail`).

use super::wire::{list, string, AwsError};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Entries per `PutEvents`.
const MAX_ENTRIES: usize = 10;
/// Bytes per `PutEvents`, as EventBridge counts them.
const MAX_REQUEST_BYTES: usize = 256 * 1024;
/// What the events of one region and source are counted by.
const ID_FIELD: &[u8] = b"\"event_id\":\"";

/// The events seen under one region and source.
#[derive(Debug, Default)]
struct Seen {
    /// How often each event id was put.
    ids: HashMap<Box<str>, u32>,
    /// Entries put, repeats included.
    total: u64,
    /// Entries whose detail carried no `event_id`.
    without_id: u64,
}

/// The counts of one region and source, for the statistics.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EventCounts {
    /// Distinct event ids.
    pub distinct: usize,
    /// Entries put, repeats included.
    pub total: u64,
    /// Entries without an `event_id`.
    pub without_id: u64,
}

/// The EventBridge of the sink, every region's.
#[derive(Debug, Default)]
pub struct EventBridge {
    /// Events by (region, source).
    seen: Mutex<BTreeMap<(String, String), Seen>>,
    /// Bus names seen, by region.
    buses: Mutex<BTreeSet<(String, String)>>,
    /// Numbers the `EventId`s of accepted entries.
    next_id: AtomicU64,
}

impl EventBridge {
    /// Answers `operation`.
    pub fn handle(
        &self,
        operation: &str,
        region: &str,
        request: Map<String, Value>,
    ) -> Result<Value, AwsError> {
        match operation {
            "PutEvents" => self.put_events(region, &request),
            "ListEventBuses" => Ok(self.list_event_buses(region)),
            "CreateEventBus" => {
                let name = string(&request, "Name")?;
                self.note_bus(region, name);
                Ok(json!({"EventBusArn": arn(region, name)}))
            }
            other => Err(AwsError::new(
                400,
                "UnknownOperationException",
                format!("the sink does not answer EventBridge's {other}"),
            )),
        }
    }

    /// Counts per `region/source`.
    pub fn stats(&self) -> BTreeMap<String, EventCounts> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.iter()
            .map(|((region, source), s)| {
                let counts = EventCounts {
                    distinct: s.ids.len(),
                    total: s.total,
                    without_id: s.without_id,
                };
                (format!("{region}/{source}"), counts)
            })
            .collect()
    }

    /// Every distinct event id seen under `region` and `source`, sorted.
    pub fn ids(&self, region: &str, source: &str) -> Vec<String> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let mut ids: Vec<String> = seen
            .get(&(region.to_string(), source.to_string()))
            .map(|s| s.ids.keys().map(|id| id.to_string()).collect())
            .unwrap_or_default();
        ids.sort_unstable();
        ids
    }

    fn note_bus(&self, region: &str, name: &str) {
        let mut buses = self.buses.lock().unwrap_or_else(|e| e.into_inner());
        if !buses.contains(&(region.to_string(), name.to_string())) {
            buses.insert((region.to_string(), name.to_string()));
        }
    }

    fn list_event_buses(&self, region: &str) -> Value {
        let buses = self.buses.lock().unwrap_or_else(|e| e.into_inner());
        let listed: Vec<Value> = std::iter::once("default")
            .chain(
                buses
                    .iter()
                    .filter(|(r, name)| r == region && name != "default")
                    .map(|(_, name)| name.as_str()),
            )
            .map(|name| json!({"Name": name, "Arn": arn(region, name)}))
            .collect();
        json!({"EventBuses": listed})
    }

    fn put_events(&self, region: &str, request: &Map<String, Value>) -> Result<Value, AwsError> {
        let entries = list(request, "Entries")?;
        if entries.is_empty() || entries.len() > MAX_ENTRIES {
            return Err(AwsError::validation(format!(
                "1 validation error detected: Value at 'entries' failed to satisfy constraint: \
                 Member must have length between 1 and {MAX_ENTRIES}"
            )));
        }
        let size: usize = entries.iter().map(entry_size).sum();
        if size > MAX_REQUEST_BYTES {
            return Err(AwsError::validation(format!(
                "Total size of the entries in the request is over the limit ({size} bytes of \
                 {MAX_REQUEST_BYTES})"
            )));
        }
        let mut results = Vec::with_capacity(entries.len());
        let mut failed = 0;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for entry in entries {
            let field = |name: &str| entry.get(name).and_then(Value::as_str);
            let (Some(source), Some(_), Some(detail)) =
                (field("Source"), field("DetailType"), field("Detail"))
            else {
                failed += 1;
                results.push(json!({
                    "ErrorCode": "InvalidArgument",
                    "ErrorMessage": "Parameters Source, DetailType and Detail are required."
                }));
                continue;
            };
            let Some(id) = event_id(detail) else {
                failed += 1;
                results.push(
                    json!({"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."}),
                );
                continue;
            };
            let key = (region.to_string(), source.to_string());
            let counted = match seen.get_mut(&key) {
                Some(counted) => counted,
                None => seen.entry(key).or_default(),
            };
            counted.total += 1;
            match id {
                Some(id) => *counted.ids.entry(id).or_insert(0) += 1,
                None => counted.without_id += 1,
            }
            let n = self.next_id.fetch_add(1, Ordering::Relaxed);
            results.push(json!({"EventId": format!("00000000-0000-4000-8000-{n:012x}")}));
        }
        drop(seen);
        for bus in entries
            .iter()
            .filter_map(|e| e.get("EventBusName")?.as_str())
        {
            self.note_bus(region, bus);
        }
        Ok(json!({"FailedEntryCount": failed, "Entries": results}))
    }
}

/// The `event_id` at the top of a detail: `Some(None)` when the detail is a JSON object without
/// one, `None` when it is no JSON object at all.
fn event_id(detail: &str) -> Option<Option<Box<str>>> {
    // Fast path: eda's details are compact JSON objects and its ids hold no escapes.
    if detail.starts_with('{') {
        if let Some(at) = memchr::memmem::find(detail.as_bytes(), ID_FIELD) {
            let rest = &detail[at + ID_FIELD.len()..];
            if let Some(id) = rest.split('"').next().filter(|id| !id.contains('\\')) {
                return Some(Some(id.into()));
            }
        }
    }
    match serde_json::from_str::<Value>(detail) {
        Ok(Value::Object(map)) => Some(map.get("event_id").and_then(Value::as_str).map(Into::into)),
        _ => None,
    }
}

/// An entry's size as EventBridge counts it against the request limit.
fn entry_size(entry: &Value) -> usize {
    let text = |name: &str| entry.get(name).and_then(Value::as_str).map_or(0, str::len);
    let resources: usize = entry
        .get("Resources")
        .and_then(Value::as_array)
        .map_or(0, |r| {
            r.iter().filter_map(Value::as_str).map(str::len).sum()
        });
    let time = if entry.get("Time").is_some() { 14 } else { 0 };
    text("Source") + text("DetailType") + text("Detail") + resources + time
}

fn arn(region: &str, name: &str) -> String {
    format!("arn:aws:events:{region}:000000000000:event-bus/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(bridge: &EventBridge, entries: Value) -> Result<Value, AwsError> {
        bridge.handle(
            "PutEvents",
            "us-west-2",
            json!({ "Entries": entries }).as_object().cloned().unwrap(),
        )
    }

    #[test]
    fn events_are_counted_by_region_source_and_id() {
        let bridge = EventBridge::default();
        let entry = |id: &str| {
            json!({"Source": "eda.cdc", "DetailType": "t", "EventBusName": "b",
                   "Detail": format!("{{\"event_id\":\"{id}\",\"x\":1}}")})
        };
        let answer = put(&bridge, json!([entry("a"), entry("b"), entry("a")])).unwrap();
        assert_eq!(answer["FailedEntryCount"], 0);
        assert_eq!(answer["Entries"].as_array().unwrap().len(), 3);
        let stats = &bridge.stats()["us-west-2/eda.cdc"];
        assert_eq!((stats.distinct, stats.total), (2, 3));
        assert_eq!(bridge.ids("us-west-2", "eda.cdc"), ["a", "b"]);
        assert_eq!(
            event_id("{\"a\": {}, \"event_id\": \"x\\u0041\"}"),
            Some(Some("xA".into()))
        );
        assert_eq!(event_id("{\"a\": 1}"), Some(None));
        assert_eq!(event_id("not json"), None);
    }

    #[test]
    fn eventbridge_limits_are_kept() {
        let bridge = EventBridge::default();
        let entry = json!({"Source": "s", "DetailType": "t", "Detail": "{}"});
        let eleven: Vec<Value> = std::iter::repeat_n(entry, 11).collect();
        assert_eq!(
            put(&bridge, json!(eleven)).unwrap_err().code,
            "ValidationException"
        );
        let big = json!({"Source": "s", "DetailType": "t", "Detail": format!("{{\"p\":\"{}\"}}", "x".repeat(200_000))});
        let err = put(&bridge, json!([big.clone(), big])).unwrap_err();
        assert!(err.message.contains("over the limit"), "{}", err.message);
        let answer = put(
            &bridge,
            json!([{"Source": "s", "DetailType": "t", "Detail": "["}]),
        )
        .unwrap();
        assert_eq!(answer["FailedEntryCount"], 1);
        assert_eq!(answer["Entries"][0]["ErrorCode"], "MalformedDetail");
    }
}
