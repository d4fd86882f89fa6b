//! EventBridge in memory: `PutEvents` takes every entry and counts it by region, source and the
//! `event_id` its detail carries (eda's change events and cross-region envelopes both have one
//! at the top of the detail); nothing is delivered anywhere. Any bus name is accepted.
//!
//! The limits a publisher must respect are kept: 1 to 10 entries per call, 256 KB per call
//! (counted as EventBridge does: source, detail-type, detail, resources, and 14 bytes for a
//! time), and a detail that is a JSON object (else the entry fails with `MalformedDetail`).

use super::wire::{list, string, AwsError};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Entries per `PutEvents`.
const MAX_ENTRIES: usize = 10;
/// Bytes per `PutEvents`, as EventBridge counts them.
const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// Shards of a [`Seen`]'s ids.
const ID_SHARDS: usize = 256;

/// The events seen under one region and source.
#[derive(Debug)]
struct Seen {
    /// How often each event id was put, in [`ID_SHARDS`] maps chosen by the id's hash. One map
    /// of a few hundred thousand ids stalls the sink's thread for tens of milliseconds each time
    /// it grows (13 ms at 114,688 ids on the bench machine, 33 ms at 229,376), and every call in
    /// flight waits behind it: the fixed-rate run showed those stalls as its p99. A shard grows
    /// by 1/256 of that.
    ids: Vec<HashMap<Box<str>, u32>>,
    /// Entries put, repeats included.
    total: u64,
    /// Entries whose detail carried no `event_id`.
    without_id: u64,
}

impl Default for Seen {
    fn default() -> Self {
        Self {
            ids: (0..ID_SHARDS).map(|_| HashMap::new()).collect(),
            total: 0,
            without_id: 0,
        }
    }
}

impl Seen {
    /// The shard `id` belongs in (FNV-1a of its bytes).
    fn shard(&mut self, id: &str) -> &mut HashMap<Box<str>, u32> {
        let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
        &mut self.ids[(hash % ID_SHARDS as u64) as usize]
    }

    /// Distinct ids.
    fn distinct(&self) -> usize {
        self.ids.iter().map(HashMap::len).sum()
    }
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
    /// Events by region, then source.
    seen: Mutex<HashMap<String, HashMap<String, Seen>>>,
    /// Bus names seen, by region.
    buses: Mutex<BTreeMap<String, BTreeSet<String>>>,
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
            .flat_map(|(region, seen)| seen.iter().map(move |(source, s)| (region, source, s)))
            .map(|(region, source, s)| {
                let counts = EventCounts {
                    distinct: s.distinct(),
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
            .get(region)
            .and_then(|seen| seen.get(source))
            .map(|s| {
                s.ids
                    .iter()
                    .flat_map(HashMap::keys)
                    .map(|id| id.to_string())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort_unstable();
        ids
    }

    fn note_bus(&self, region: &str, name: &str) {
        let mut buses = self.buses.lock().unwrap_or_else(|e| e.into_inner());
        note(&mut buses, region, name);
    }

    fn list_event_buses(&self, region: &str) -> Value {
        let buses = self.buses.lock().unwrap_or_else(|e| e.into_inner());
        let listed: Vec<Value> = std::iter::once("default")
            .chain(
                buses
                    .get(region)
                    .into_iter()
                    .flatten()
                    .filter(|name| *name != "default")
                    .map(String::as_str),
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
            count(&mut seen, region, source, id.as_deref());
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

impl EventBridge {
    /// `PutEvents` read straight from the request body into borrowed typed entries (each
    /// detail read where it lies in the body, for its length and its top-level `event_id`, with
    /// no copy of its own), the answer written as its JSON bytes. `None` when the request has a
    /// shape this reading does not take (a member of an unexpected type): then
    /// [`EventBridge::handle`] answers it. With the answer, how many entries the request
    /// carried.
    pub fn put_events_fast(
        &self,
        region: &str,
        body: &[u8],
    ) -> Option<(u64, Result<Vec<u8>, AwsError>)> {
        let request: PutEventsRequest = serde_json::from_slice(body).ok()?;
        let entries = request.entries.len() as u64;
        Some((entries, self.put_events_read(region, &request.entries)))
    }

    fn put_events_read(&self, region: &str, entries: &[EntryIn]) -> Result<Vec<u8>, AwsError> {
        if entries.is_empty() || entries.len() > MAX_ENTRIES {
            return Err(AwsError::validation(format!(
                "1 validation error detected: Value at 'entries' failed to satisfy constraint: \
                 Member must have length between 1 and {MAX_ENTRIES}"
            )));
        }
        let size: usize = entries.iter().map(EntryIn::size).sum();
        if size > MAX_REQUEST_BYTES {
            return Err(AwsError::validation(format!(
                "Total size of the entries in the request is over the limit ({size} bytes of \
                 {MAX_REQUEST_BYTES})"
            )));
        }
        let mut answer = Vec::with_capacity(64 + 56 * entries.len());
        answer.extend_from_slice(b"{\"Entries\":[");
        let mut failed = 0;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        for (i, entry) in entries.iter().enumerate() {
            if i > 0 {
                answer.push(b',');
            }
            let (Some(source), Some(_), Some(detail)) =
                (&entry.source, &entry.detail_type, &entry.detail)
            else {
                failed += 1;
                answer.extend_from_slice(
                    b"{\"ErrorCode\":\"InvalidArgument\",\"ErrorMessage\":\"Parameters Source, \
                      DetailType and Detail are required.\"}",
                );
                continue;
            };
            let Some(id) = &detail.id else {
                failed += 1;
                answer.extend_from_slice(
                    b"{\"ErrorCode\":\"MalformedDetail\",\"ErrorMessage\":\"Detail is malformed.\"}",
                );
                continue;
            };
            count(&mut seen, region, source, id.as_deref());
            let n = self.next_id.fetch_add(1, Ordering::Relaxed);
            let _ = write!(
                answer,
                "{{\"EventId\":\"00000000-0000-4000-8000-{n:012x}\"}}"
            );
        }
        drop(seen);
        let _ = write!(answer, "],\"FailedEntryCount\":{failed}}}");
        let mut noted: Option<&str> = None;
        for bus in entries.iter().filter_map(|e| e.bus.as_deref()) {
            // A publisher names one bus in all its entries: one look-up a call.
            if noted != Some(bus) {
                self.note_bus(region, bus);
                noted = Some(bus);
            }
        }
        Ok(answer)
    }
}

/// Counts one entry of `region` and `source` with event id `id` (`None`: its detail has none).
fn count(
    seen: &mut HashMap<String, HashMap<String, Seen>>,
    region: &str,
    source: &str,
    id: Option<&str>,
) {
    if !seen.contains_key(region) {
        seen.insert(region.to_string(), HashMap::new());
    }
    let by_source = seen.get_mut(region).expect("inserted above");
    if !by_source.contains_key(source) {
        by_source.insert(source.to_string(), Seen::default());
    }
    let counted = by_source.get_mut(source).expect("inserted above");
    counted.total += 1;
    match id {
        Some(id) => {
            let shard = counted.shard(id);
            match shard.get_mut(id) {
                Some(times) => *times += 1,
                None => {
                    shard.insert(id.into(), 1);
                }
            }
        }
        None => counted.without_id += 1,
    }
}

fn note(buses: &mut BTreeMap<String, BTreeSet<String>>, region: &str, name: &str) {
    if !buses.get(region).is_some_and(|names| names.contains(name)) {
        buses
            .entry(region.to_string())
            .or_default()
            .insert(name.to_string());
    }
}

/// A `PutEvents` request as [`EventBridge::put_events_fast`] reads it.
#[derive(serde::Deserialize)]
struct PutEventsRequest<'a> {
    #[serde(rename = "Entries", borrow)]
    entries: Vec<EntryIn<'a>>,
}

/// One entry, as far as the sink reads it.
#[derive(serde::Deserialize)]
struct EntryIn<'a> {
    #[serde(rename = "Source", borrow, default)]
    source: Option<Cow<'a, str>>,
    #[serde(rename = "DetailType", borrow, default)]
    detail_type: Option<Cow<'a, str>>,
    #[serde(rename = "Detail", default)]
    detail: Option<Detail>,
    #[serde(rename = "Resources", borrow, default)]
    resources: Option<Vec<Cow<'a, str>>>,
    /// `Time` is there (even as null): 14 bytes of the entry's size.
    #[serde(rename = "Time", default, deserialize_with = "present")]
    time: bool,
    #[serde(rename = "EventBusName", borrow, default)]
    bus: Option<Cow<'a, str>>,
}

impl EntryIn<'_> {
    /// Its size as EventBridge counts it (as [`entry_size`] does).
    fn size(&self) -> usize {
        let text = |t: &Option<Cow<str>>| t.as_deref().map_or(0, str::len);
        let resources: usize = self.resources.iter().flatten().map(|r| r.len()).sum();
        text(&self.source)
            + text(&self.detail_type)
            + self.detail.as_ref().map_or(0, |d| d.len)
            + resources
            + if self.time { 14 } else { 0 }
    }
}

/// `true` for a member that is there, whatever its value.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    <IgnoredAny as serde::Deserialize>::deserialize(deserializer).map(|_| true)
}

/// What the sink keeps of an entry's `Detail`: its length and its `event_id` as
/// [`event_id`] reads it, taken from the decoded string without keeping it.
struct Detail {
    len: usize,
    id: Option<Option<Box<str>>>,
}

impl<'de> serde::Deserialize<'de> for Detail {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(DetailVisitor)
    }
}

struct DetailVisitor;

impl Visitor<'_> for DetailVisitor {
    type Value = Detail;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a detail string")
    }

    // serde_json hands over an escaped string in its scratch buffer: no copy of ours.
    fn visit_str<E: de::Error>(self, detail: &str) -> Result<Detail, E> {
        Ok(Detail {
            len: detail.len(),
            id: event_id(detail),
        })
    }
}

/// The `event_id` at the top of a detail: `Some(None)` when the detail is a JSON object without
/// one (or whose `event_id` is no string), `None` when it is no JSON object at all. The detail is
/// read whole, as JSON, without building it: an `event_id` inside a nested object or inside a
/// string value is not the event's.
fn event_id(detail: &str) -> Option<Option<Box<str>>> {
    let mut de = serde_json::Deserializer::from_str(detail);
    let id = de.deserialize_map(TopLevelId).ok()?;
    de.end().ok()?;
    Some(id)
}

/// Reads an object's top-level `event_id`, skipping everything else (the last one counts, as
/// in a JSON tree).
struct TopLevelId;

impl<'de> Visitor<'de> for TopLevelId {
    type Value = Option<Box<str>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut id = None;
        while let Some(key) = map.next_key::<Key>()? {
            if key.0 {
                id = map.next_value::<Value>()?.as_str().map(Into::into);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(id)
    }
}

/// Whether a key is `event_id`, read without a copy.
struct Key(bool);

impl<'de> serde::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(Key(key == "event_id"))
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
    fn ids_spread_over_shards_are_all_counted_once_each() {
        let bridge = EventBridge::default();
        let entry = |id: usize| {
            json!({"Source": "eda.cdc", "DetailType": "t", "EventBusName": "b",
                   "Detail": format!("{{\"event_id\":\"e{id:05}\"}}")})
        };
        for first in (0..3_000).step_by(10) {
            put(
                &bridge,
                Value::Array((first..first + 10).map(entry).collect()),
            )
            .unwrap();
        }
        put(&bridge, json!([entry(7), entry(2_999)])).unwrap();
        let stats = &bridge.stats()["us-west-2/eda.cdc"];
        assert_eq!((stats.distinct, stats.total), (3_000, 3_002));
        let ids = bridge.ids("us-west-2", "eda.cdc");
        let expected: Vec<String> = (0..3_000).map(|id| format!("e{id:05}")).collect();
        assert_eq!(ids, expected);
        let seen = bridge.seen.lock().unwrap();
        let shards = &seen["us-west-2"]["eda.cdc"].ids;
        assert!(shards.iter().filter(|shard| !shard.is_empty()).count() > ID_SHARDS / 2);
    }

    #[test]
    fn the_event_id_is_the_one_at_the_top_of_the_detail() {
        // Escapes in the id and around it.
        assert_eq!(
            event_id(r#"{"note":"say \"hi\"","event_id":"id-\"q\"-\u00e9"}"#),
            Some(Some("id-\"q\"-\u{e9}".into()))
        );
        // A nested object's event_id comes first in the text but is not the event's.
        assert_eq!(
            event_id(r#"{"payload":{"event_id":"inner"},"event_id":"outer"}"#),
            Some(Some("outer".into()))
        );
        assert_eq!(
            event_id(r#"{"payload":{"event_id":"inner","list":[{"event_id":"x"}]}}"#),
            Some(None)
        );
        // Inside a string value, with and without escaped quotes.
        assert_eq!(
            event_id(
                r#"{"text":"\"event_id\":\"fake\"","note":"event_id: fake","event_id":"real"}"#
            ),
            Some(Some("real".into()))
        );
        // An event_id that is no string counts as none.
        assert_eq!(event_id(r#"{"event_id":7}"#), Some(None));
        // What is no JSON object is malformed, even when it starts like one with an id.
        for detail in [
            "not json",
            "[",
            "[1]",
            r#""event_id""#,
            r#"{"event_id":"x""#,
            r#"{"event_id":"x"} trailing"#,
            r#"{"event_id":"x",}"#,
        ] {
            assert_eq!(event_id(detail), None, "{detail}");
        }
    }

    #[test]
    fn the_typed_put_events_counts_as_the_general_path() {
        let entries = json!([
            {"Source": "eda.cdc", "DetailType": "t", "EventBusName": "b", "Time": 1,
             "Detail": r#"{"payload":{"event_id":"inner"},"event_id":"a"}"#},
            {"Source": "eda.cdc", "DetailType": "t", "EventBusName": "b",
             "Detail": r#"{"note":"O'Brien \"Bob\"","event_id":"b"}"#},
            {"Source": "eda.cdc", "DetailType": "t", "Detail": r#"{"event_id":"a"} trailing"#},
            {"Source": "eda.cdc", "Detail": "{}"},
            {"Source": "eda.cdc", "DetailType": "t", "Detail": r#"{"x":1}"#},
            {"Source": "eda.cross-region", "DetailType": "t", "Detail": r#"{"event_id":"a"}"#}
        ]);
        let typed = EventBridge::default();
        let body = serde_json::to_vec(&json!({ "Entries": entries })).unwrap();
        let answer = typed
            .put_events_fast("us-west-2", &body)
            .unwrap()
            .1
            .unwrap();
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        let general = EventBridge::default();
        let expected = put(&general, entries).unwrap();
        assert_eq!(answer, expected);
        assert_eq!(answer["FailedEntryCount"], 2);
        assert_eq!(answer["Entries"][2]["ErrorCode"], "MalformedDetail");
        assert_eq!(answer["Entries"][3]["ErrorCode"], "InvalidArgument");
        let stats = &typed.stats()["us-west-2/eda.cdc"];
        assert_eq!((stats.distinct, stats.total, stats.without_id), (2, 3, 1));
        assert_eq!(typed.ids("us-west-2", "eda.cdc"), ["a", "b"]);
        assert_eq!(typed.ids("us-west-2", "eda.cross-region"), ["a"]);
        assert_eq!(
            typed.list_event_buses("us-west-2"),
            general.list_event_buses("us-west-2")
        );

        // A shape the typed reading does not take goes to the general path.
        let odd = br#"{"Entries":[{"Source":5,"DetailType":"t","Detail":"{}"}]}"#;
        assert!(typed.put_events_fast("us-west-2", odd).is_none());
        let eleven = serde_json::to_vec(&json!({
            "Entries": vec![json!({"Source": "s", "DetailType": "t", "Detail": "{}"}); 11]
        }))
        .unwrap();
        let err = typed.put_events_fast("r", &eleven).unwrap().1.unwrap_err();
        assert_eq!(err.code, "ValidationException");
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
