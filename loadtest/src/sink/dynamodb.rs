//! DynamoDB in memory: one table per region and name, items as DynamoDB's JSON.
//!
//! Every table exists: the first call that names one creates it, keyed by `pk` (the hash key of
//! eda's CDC table) unless `--table NAME=HASH[,RANGE]` or a `CreateTable` gave it another key
//! schema (eda's metadata table is `pk,version`). Conditions are eda's (see [`condition`]), and a
//! refused one answers `ConditionalCheckFailedException` as DynamoDB does, with the stored item
//! when the request asked for it (`ReturnValuesOnConditionCheckFailure=ALL_OLD`); in a
//! `TransactWriteItems`, nothing is written and `TransactionCanceledException` lists a reason per
//! item. Limits that change what a caller must do are kept: 400 KB items, 25 requests per
//! `BatchWriteItem`, 100 items per transaction, one operation per item in a transaction, 1 MB
//! pages. The write units a real table would bill are estimated (1 per KB of the larger of the
//! old and new item, doubled in a transaction, also for a refused condition) and reported in the
//! statistics, so a change of write path shows what it costs a user.

use super::condition::{self, compare, Attributes, Condition};
use super::item::Item;
use super::partiql::{self, Statement};
use super::wire::{integer, list, object, string, AwsError};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// DynamoDB's item size limit.
const MAX_ITEM_BYTES: usize = 400 * 1024;
/// The most data one `Query` or `Scan` page returns.
const MAX_PAGE_BYTES: usize = 1024 * 1024;
/// Requests per `BatchWriteItem`.
const MAX_BATCH_WRITES: usize = 25;
/// Statements per `BatchExecuteStatement`.
const MAX_BATCH_STATEMENTS: usize = 25;
/// Items per `TransactWriteItems`.
const MAX_TRANSACTION_ITEMS: usize = 100;
/// Separates the hash and range parts of an item's key in the table's map.
const KEY_SEPARATOR: char = '\u{1}';

/// A table's key attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySchema {
    /// The hash (partition) key attribute.
    pub hash: String,
    /// The range (sort) key attribute, if the table has one.
    pub range: Option<String>,
}

impl Default for KeySchema {
    fn default() -> Self {
        Self {
            hash: "pk".into(),
            range: None,
        }
    }
}

impl KeySchema {
    /// Reads `HASH` or `HASH,RANGE`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(',').map(str::trim);
        let hash = parts.next().filter(|h| !h.is_empty())?.to_string();
        let range = parts.next().filter(|r| !r.is_empty()).map(str::to_string);
        if parts.next().is_some() {
            return None;
        }
        Some(Self { hash, range })
    }

    /// The map key of `item` (its key attributes, rendered), or the error DynamoDB gives for a
    /// missing or non-scalar key attribute.
    fn key_of<A: Attributes + ?Sized>(&self, item: &A) -> Result<String, AwsError> {
        let mut key = scalar(item, &self.hash)?;
        key.push(KEY_SEPARATOR);
        if let Some(range) = &self.range {
            key.push_str(&scalar(item, range)?);
        }
        Ok(key)
    }

    /// The key attributes of `item`, as a `Key` or `LastEvaluatedKey`.
    fn key_attributes(&self, item: &Item) -> Map<String, Value> {
        std::iter::once(&self.hash)
            .chain(self.range.as_ref())
            .filter_map(|name| item.get(name).map(|v| (name.clone(), v)))
            .collect()
    }

    fn describe(&self, name: &str, region: &str, items: usize) -> Value {
        let mut key_schema = vec![json!({"AttributeName": self.hash, "KeyType": "HASH"})];
        let mut definitions = vec![json!({"AttributeName": self.hash, "AttributeType": "S"})];
        if let Some(range) = &self.range {
            key_schema.push(json!({"AttributeName": range, "KeyType": "RANGE"}));
            definitions.push(json!({"AttributeName": range, "AttributeType": "N"}));
        }
        json!({
            "TableName": name,
            "TableStatus": "ACTIVE",
            "KeySchema": key_schema,
            "AttributeDefinitions": definitions,
            "ItemCount": items,
            "TableArn": format!("arn:aws:dynamodb:{region}:000000000000:table/{name}"),
            "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"}
        })
    }
}

/// A key attribute's value, rendered with its type so `{"S":"1"}` and `{"N":"1"}` differ.
fn scalar<A: Attributes + ?Sized>(item: &A, name: &str) -> Result<String, AwsError> {
    let value = item.attribute(name).ok_or_else(|| {
        AwsError::validation(format!(
            "One or more parameter values were invalid: Missing the key {name} in the item"
        ))
    })?;
    match value
        .as_object()
        .and_then(|m| m.iter().next())
        .map(|(kind, v)| (kind.as_str(), v))
    {
        Some((kind @ ("S" | "N" | "B"), Value::String(text))) => Ok(format!("{kind}{text}")),
        _ => Err(AwsError::validation(format!(
            "One or more parameter values were invalid: Type mismatch for key {name}"
        ))),
    }
}

/// One table.
#[derive(Debug, Default)]
struct Table {
    /// Its key attributes.
    schema: KeySchema,
    /// Items by rendered key; hash-then-range order, so one hash key's items are adjacent.
    items: BTreeMap<String, Item>,
}

/// Tables by region, then name (looked up by `&str`, without building a key).
type Tables = BTreeMap<String, BTreeMap<String, Table>>;

/// The DynamoDB of the sink, every region's.
#[derive(Debug, Default)]
pub struct DynamoDb {
    /// Tables by region, then name.
    tables: Mutex<Tables>,
    /// Key schemas given on the command line, by table name (any region).
    declared: HashMap<String, KeySchema>,
    /// Write units a real table would have billed so far (see the module's doc).
    write_units: AtomicU64,
}

/// The item counts and billed write units, for the statistics.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TableStats {
    /// Items held, tombstones included.
    pub items: usize,
    /// Items that are eda tombstones (`_deleted` true).
    pub tombstones: usize,
}

impl DynamoDb {
    /// A DynamoDB whose tables named in `declared` get those key schemas.
    pub fn new(declared: HashMap<String, KeySchema>) -> Self {
        Self {
            declared,
            ..Self::default()
        }
    }

    /// Answers `operation`.
    pub fn handle(
        &self,
        operation: &str,
        region: &str,
        request: Map<String, Value>,
    ) -> Result<Value, AwsError> {
        match operation {
            "PutItem" => self.put_item(region, request),
            "DeleteItem" => self.delete_item(region, &request),
            "GetItem" => self.get_item(region, &request),
            "Query" => self.query(region, &request),
            "Scan" => self.scan(region, &request),
            "TransactWriteItems" => self.transact_write_items(region, request),
            "BatchWriteItem" => self.batch_write_item(region, request),
            "BatchExecuteStatement" => self.batch_execute_statement(region, &request),
            "ListTables" => self.list_tables(region, &request),
            "DescribeTable" => self.describe_table(region, &request),
            "CreateTable" => self.create_table(region, &request),
            other => Err(unknown_operation(other)),
        }
    }

    /// Item and tombstone counts per `region/table`.
    pub fn stats(&self) -> BTreeMap<String, TableStats> {
        let tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        tables
            .iter()
            .flat_map(|(region, tables)| tables.iter().map(move |(name, t)| (region, name, t)))
            .map(|(region, name, table)| {
                let tombstones = table
                    .items
                    .values()
                    .filter(|item| item.get("_deleted") == Some(json!({"BOOL": true})))
                    .count();
                let stats = TableStats {
                    items: table.items.len(),
                    tombstones,
                };
                (format!("{region}/{name}"), stats)
            })
            .collect()
    }

    /// Write units billed so far.
    pub fn write_units(&self) -> u64 {
        self.write_units.load(Ordering::Relaxed)
    }

    fn with_table<T>(
        &self,
        region: &str,
        name: &str,
        f: impl FnOnce(&mut Table) -> Result<T, AwsError>,
    ) -> Result<T, AwsError> {
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        f(self.table(&mut tables, region, name))
    }

    fn table<'t>(&self, tables: &'t mut Tables, region: &str, name: &str) -> &'t mut Table {
        if !tables.contains_key(region) {
            tables.insert(region.to_string(), BTreeMap::new());
        }
        let tables = tables.get_mut(region).expect("inserted above");
        if !tables.contains_key(name) {
            tables.insert(
                name.to_string(),
                Table {
                    schema: self.declared.get(name).cloned().unwrap_or_default(),
                    items: BTreeMap::new(),
                },
            );
        }
        tables.get_mut(name).expect("inserted above")
    }

    fn bill(&self, units: u64) {
        self.write_units.fetch_add(units, Ordering::Relaxed);
    }

    /// `PutItem` read straight from the request body into borrowed typed fields, the answer
    /// written as its JSON bytes: the path of every CDC write. `None` when the request has a
    /// shape this reading does not take (a member of an unexpected type, an escaped attribute
    /// name in the expression maps, the legacy `Expected`): then [`DynamoDb::handle`] answers it,
    /// as it answers every other operation.
    pub fn put_item_fast(&self, region: &str, body: &[u8]) -> Option<Result<Vec<u8>, AwsError>> {
        let request: PutItemRequest = serde_json::from_slice(body).ok()?;
        if request.legacy {
            return None;
        }
        Some(self.put_item_read(region, request))
    }

    fn put_item_read(&self, region: &str, request: PutItemRequest) -> Result<Vec<u8>, AwsError> {
        let item = request.item;
        if item.size() > MAX_ITEM_BYTES {
            return Err(item_too_large());
        }
        let condition = match &request.condition {
            None => None,
            Some(expression) => {
                let names = request.names.as_ref();
                let values = request.values.as_ref();
                Some(
                    condition::parse_with(
                        expression,
                        &|name| Some(names?.get(name)?.to_string()),
                        &|value| serde_json::from_str(values?.get(value)?.get()).ok(),
                    )
                    .map_err(AwsError::validation)?,
                )
            }
        };
        let return_old = return_values_of("ReturnValues", request.return_values.as_deref())?;
        let old_on_failure = return_values_of(
            "ReturnValuesOnConditionCheckFailure",
            request.return_values_on_failure.as_deref(),
        )?;
        self.with_table(region, &request.table_name, |table| {
            let key = table.schema.key_of(&item)?;
            let old = table.items.get(&key);
            self.bill(units(item.size().max(old.map_or(0, Item::size))));
            check(condition.as_ref(), old, old_on_failure)?;
            let old = table.items.insert(key, item);
            Ok(match old.filter(|_| return_old) {
                Some(old) => {
                    let mut answer = Vec::with_capacity(old.text().len() + 16);
                    answer.extend_from_slice(b"{\"Attributes\":");
                    answer.extend_from_slice(old.text().as_bytes());
                    answer.push(b'}');
                    answer
                }
                None => b"{}".to_vec(),
            })
        })
    }

    fn put_item(&self, region: &str, mut request: Map<String, Value>) -> Result<Value, AwsError> {
        let Some(Value::Object(item)) = request.remove("Item") else {
            return Err(AwsError::validation(
                "1 validation error detected: Item must not be null",
            ));
        };
        check_size(&item)?;
        let condition = condition_of(&request)?;
        let return_old = return_values(&request, "ReturnValues")?;
        let old_on_failure = return_values(&request, "ReturnValuesOnConditionCheckFailure")?;
        let name = string(&request, "TableName")?;
        let new_size = item_size(&item);
        self.with_table(region, name, |table| {
            let key = table.schema.key_of(&item)?;
            let old = table.items.get(&key);
            self.bill(units(new_size.max(old.map_or(0, Item::size))));
            check(condition.as_ref(), old, old_on_failure)?;
            let old = table.items.insert(key, Item::from_map(&item));
            Ok(attributes(old.filter(|_| return_old)))
        })
    }

    fn delete_item(&self, region: &str, request: &Map<String, Value>) -> Result<Value, AwsError> {
        let key = object(request, "Key")?.ok_or_else(|| {
            AwsError::validation("1 validation error detected: Key must not be null")
        })?;
        let condition = condition_of(request)?;
        let return_old = return_values(request, "ReturnValues")?;
        let old_on_failure = return_values(request, "ReturnValuesOnConditionCheckFailure")?;
        let name = string(request, "TableName")?;
        self.with_table(region, name, |table| {
            let key = table.schema.key_of(key)?;
            let old = table.items.get(&key);
            self.bill(units(old.map_or(0, Item::size)));
            check(condition.as_ref(), old, old_on_failure)?;
            let old = table.items.remove(&key);
            Ok(attributes(old.filter(|_| return_old)))
        })
    }

    fn get_item(&self, region: &str, request: &Map<String, Value>) -> Result<Value, AwsError> {
        let key = object(request, "Key")?.ok_or_else(|| {
            AwsError::validation("1 validation error detected: Key must not be null")
        })?;
        let projection = projection_of(request)?;
        let name = string(request, "TableName")?;
        self.with_table(region, name, |table| {
            let key = table.schema.key_of(key)?;
            Ok(match table.items.get(&key) {
                Some(item) => json!({"Item": project(item.to_map(), projection.as_ref())}),
                None => json!({}),
            })
        })
    }

    fn query(&self, region: &str, request: &Map<String, Value>) -> Result<Value, AwsError> {
        let expression = string(request, "KeyConditionExpression")?;
        let key_condition = condition::parse(
            expression,
            object(request, "ExpressionAttributeNames")?,
            object(request, "ExpressionAttributeValues")?,
        )
        .map_err(AwsError::validation)?;
        let filter = filter_of(request)?;
        let forward = request.get("ScanIndexForward") != Some(&Value::Bool(false));
        let name = string(request, "TableName")?;
        self.with_table(region, name, |table| {
            let hash_value =
                hash_equality(&key_condition, &table.schema.hash).ok_or_else(|| {
                    AwsError::validation(format!(
                        "Query condition missed key schema element: {} (the sink reads \
                     `HASH = :value [AND range comparison]`)",
                        table.schema.hash
                    ))
                })?;
            let prefix = {
                let mut probe = Map::new();
                probe.insert(table.schema.hash.clone(), hash_value.clone());
                let mut key = scalar(&probe, &table.schema.hash)?;
                key.push(KEY_SEPARATOR);
                key
            };
            let mut matched: Vec<&Item> = table
                .items
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(_, item)| item)
                .filter(|item| key_condition.holds_for(Some(*item)))
                .collect();
            if let Some(range) = &table.schema.range {
                matched.sort_by(|a, b| match (a.get(range), b.get(range)) {
                    (Some(x), Some(y)) => compare(&x, &y).unwrap_or(std::cmp::Ordering::Equal),
                    _ => std::cmp::Ordering::Equal,
                });
            }
            if !forward {
                matched.reverse();
            }
            if let Some(start) = match object(request, "ExclusiveStartKey")? {
                Some(key) if !key.is_empty() => Some(table.schema.key_of(key)?),
                _ => None,
            } {
                // Everything through the start key was on earlier pages.
                let at = matched
                    .iter()
                    .position(|item| table.schema.key_of(*item).as_ref() == Ok(&start));
                matched.drain(..at.map_or(0, |i| i + 1));
            }
            page(&table.schema, matched.into_iter(), request, filter.as_ref())
        })
    }

    fn scan(&self, region: &str, request: &Map<String, Value>) -> Result<Value, AwsError> {
        if request.contains_key("Segment") || request.contains_key("TotalSegments") {
            return Err(AwsError::validation(
                "the sink does not split a Scan into segments",
            ));
        }
        let filter = filter_of(request)?;
        let name = string(request, "TableName")?;
        self.with_table(region, name, |table| {
            let start = match object(request, "ExclusiveStartKey")? {
                Some(key) if !key.is_empty() => Some(table.schema.key_of(key)?),
                _ => None,
            };
            let after = match start {
                Some(start) => std::ops::Bound::Excluded(start),
                None => std::ops::Bound::Unbounded,
            };
            let items = table
                .items
                .range((after, std::ops::Bound::Unbounded))
                .map(|(_, item)| item);
            page(&table.schema, items, request, filter.as_ref())
        })
    }

    /// eda's PartiQL `INSERT`s and `UPDATE`s ([`partiql`]), each answered on its own as
    /// DynamoDB does: `DuplicateItem` for an `INSERT` over an item, `ConditionalCheckFailed`
    /// (with the stored item when asked) for an `UPDATE` whose `WHERE` does not hold or whose
    /// item does not exist, `ValidationError` for a statement the sink cannot read. Two statements
    /// on one item fail the whole call, as in DynamoDB.
    fn batch_execute_statement(
        &self,
        region: &str,
        request: &Map<String, Value>,
    ) -> Result<Value, AwsError> {
        // The shape's errors as DynamoDB words them; then the one reading of the statements.
        for entry in list(request, "Statements")? {
            let Value::Object(entry) = entry else {
                return Err(AwsError::validation("a statement is not an object"));
            };
            string(entry, "Statement")?;
        }
        let body = serde_json::to_vec(request).unwrap_or_default();
        let (_, answer) = self
            .batch_execute_statement_fast(region, &body)
            .ok_or_else(|| {
                AwsError::validation(
                    "the statements are not of the shape BatchExecuteStatement takes",
                )
            })?;
        Ok(serde_json::from_slice(&answer?).unwrap_or_default())
    }

    /// `BatchExecuteStatement` read straight from the request body, each parameter kept as its
    /// JSON text (an `INSERT`'s item and an `UPDATE`'s new item are written from those texts, not
    /// from trees), the answer written as its JSON bytes; with it, how many statements the call
    /// carried. `None` when the request has a shape this reading does not take.
    pub fn batch_execute_statement_fast(
        &self,
        region: &str,
        body: &[u8],
    ) -> Option<(u64, Result<Vec<u8>, AwsError>)> {
        let request: BatchStatementsIn<'_> = serde_json::from_slice(body).ok()?;
        let statements = request.statements.len() as u64;
        Some((statements, self.run_statements(region, &request.statements)))
    }

    fn run_statements(
        &self,
        region: &str,
        statements: &[StatementIn<'_>],
    ) -> Result<Vec<u8>, AwsError> {
        if statements.is_empty() || statements.len() > MAX_BATCH_STATEMENTS {
            return Err(AwsError::validation(format!(
                "1 validation error detected: Value at 'statements' failed to satisfy \
                 constraint: Member must have length between 1 and {MAX_BATCH_STATEMENTS}"
            )));
        }
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let hash_of = |table: &str| {
            tables
                .get(region)
                .and_then(|tables| tables.get(table))
                .map(|t| t.schema.hash.clone())
                .or_else(|| self.declared.get(table).map(|s| s.hash.clone()))
                .unwrap_or_else(|| KeySchema::default().hash)
        };
        let read = |raw: &&RawValue| serde_json::from_str(raw.get()).map_err(|e| e.to_string());
        let mut parsed = Vec::with_capacity(statements.len());
        for entry in statements {
            let old_on_failure = return_values_of(
                "ReturnValuesOnConditionCheckFailure",
                entry.return_values.as_deref(),
            )?;
            let statement = partiql::parse_with(&entry.statement, &entry.parameters, read, hash_of);
            parsed.push((statement, old_on_failure));
        }
        // Every key first: two statements on one item fail the call, not the statement.
        let mut seen = HashSet::new();
        let mut keyed = Vec::with_capacity(parsed.len());
        for (statement, old_on_failure) in parsed {
            let prepared = match statement {
                Ok(Statement::Insert { table, item }) => match Item::from_pairs(&item) {
                    Ok(item) => Ok((table, Write::Insert(item))),
                    Err(err) => Err(format!("the item is not one of DynamoDB values: {err}")),
                },
                Ok(Statement::Update {
                    table,
                    key,
                    set,
                    condition,
                }) => Ok((
                    table,
                    Write::Update {
                        key,
                        set,
                        condition,
                    },
                )),
                Err(message) => Err(message),
            };
            let prepared = match prepared {
                Ok((name, write)) => {
                    let schema = &self.table(&mut tables, region, &name).schema;
                    let key = match &write {
                        Write::Insert(item) => schema.key_of(item)?,
                        Write::Update { key, .. } => schema.key_of(key)?,
                    };
                    if !seen.insert((name.clone(), key.clone())) {
                        return Err(AwsError::validation(
                            "Provided list of item keys contains duplicates",
                        ));
                    }
                    Ok((name, key, write))
                }
                Err(message) => Err(message),
            };
            keyed.push((prepared, old_on_failure));
        }
        let mut answer = Vec::with_capacity(32 + 64 * keyed.len());
        answer.extend_from_slice(b"{\"Responses\":[");
        for (i, (prepared, old_on_failure)) in keyed.into_iter().enumerate() {
            if i > 0 {
                answer.push(b',');
            }
            let (name, key, write) = match prepared {
                Ok(prepared) => prepared,
                Err(message) => {
                    statement_error(&mut answer, None, "ValidationError", &message, None);
                    continue;
                }
            };
            let table = self.table(&mut tables, region, &name);
            match write {
                Write::Insert(item) => {
                    let bytes = item.size();
                    if bytes > MAX_ITEM_BYTES {
                        let message = "Item size has exceeded the maximum allowed size";
                        statement_error(&mut answer, Some(&name), "ValidationError", message, None);
                        continue;
                    }
                    self.bill(units(bytes));
                    match table.items.entry(key) {
                        std::collections::btree_map::Entry::Occupied(_) => {
                            let message = "Duplicate primary key exists in table";
                            statement_error(
                                &mut answer,
                                Some(&name),
                                "DuplicateItem",
                                message,
                                None,
                            );
                        }
                        std::collections::btree_map::Entry::Vacant(slot) => {
                            slot.insert(item);
                            statement_done(&mut answer, &name);
                        }
                    }
                }
                Write::Update { set, condition, .. } => match table.items.get_mut(&key) {
                    Some(old) if condition.holds_for(Some(&*old)) => match old.with(&set) {
                        Ok(new) if new.size() <= MAX_ITEM_BYTES => {
                            self.bill(units(new.size().max(old.size())));
                            *old = new;
                            statement_done(&mut answer, &name);
                        }
                        Ok(_) => {
                            let message =
                                "Item size to update has exceeded the maximum allowed size";
                            statement_error(
                                &mut answer,
                                Some(&name),
                                "ValidationError",
                                message,
                                None,
                            );
                        }
                        Err(err) => {
                            let message = format!("a value set is not a DynamoDB value: {err}");
                            statement_error(
                                &mut answer,
                                Some(&name),
                                "ValidationError",
                                &message,
                                None,
                            );
                        }
                    },
                    old => {
                        self.bill(units(old.as_deref().map_or(0, Item::size)));
                        let message = "The conditional request failed";
                        let stored = old.filter(|_| old_on_failure).map(|old| old.text());
                        statement_error(
                            &mut answer,
                            Some(&name),
                            "ConditionalCheckFailed",
                            message,
                            stored,
                        );
                    }
                },
            }
        }
        answer.extend_from_slice(b"]}");
        Ok(answer)
    }

    fn transact_write_items(
        &self,
        region: &str,
        request: Map<String, Value>,
    ) -> Result<Value, AwsError> {
        let entries = list(&request, "TransactItems")?;
        if entries.is_empty() || entries.len() > MAX_TRANSACTION_ITEMS {
            return Err(AwsError::validation(format!(
                "1 validation error detected: Value at 'transactItems' failed to satisfy \
                 constraint: Member must have length between 1 and {MAX_TRANSACTION_ITEMS}"
            )));
        }
        let mut writes = Vec::with_capacity(entries.len());
        for entry in entries {
            writes.push(TransactWrite::read(entry)?);
        }
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        // Validate every key first: a bad item fails the call, not the transaction.
        let mut keys = Vec::with_capacity(writes.len());
        let mut seen = HashSet::new();
        for write in &writes {
            let table = self.table(&mut tables, region, &write.table);
            let key = table.schema.key_of(write.key_source())?;
            if !seen.insert((write.table.clone(), key.clone())) {
                return Err(AwsError::validation(
                    "Transaction request cannot include multiple operations on one item",
                ));
            }
            keys.push(key);
        }
        let mut reasons = Vec::with_capacity(writes.len());
        let mut failed = false;
        let mut billed = 0;
        for (write, key) in writes.iter().zip(&keys) {
            let table = self.table(&mut tables, region, &write.table);
            let old = table.items.get(key);
            let new_size = match &write.kind {
                TransactKind::Put(item) => item_size(item),
                _ => 0,
            };
            billed += 2 * units(new_size.max(old.map_or(0, Item::size)));
            match check(write.condition.as_ref(), old, write.old_on_failure) {
                Ok(()) => reasons.push(json!({"Code": "None"})),
                Err(err) => {
                    failed = true;
                    let mut reason =
                        json!({"Code": "ConditionalCheckFailed", "Message": err.message});
                    if let Some(item) = err.members.get("Item") {
                        reason["Item"] = item.clone();
                    }
                    reasons.push(reason);
                }
            }
        }
        self.bill(billed);
        if failed {
            let codes: Vec<&str> = reasons
                .iter()
                .map(|r| r["Code"].as_str().unwrap_or("None"))
                .collect();
            return Err(AwsError::new(
                400,
                "TransactionCanceledException",
                format!(
                    "Transaction cancelled, please refer cancellation reasons for specific \
                     reasons [{}]",
                    codes.join(", ")
                ),
            )
            .with("CancellationReasons", Value::Array(reasons)));
        }
        for (write, key) in writes.into_iter().zip(keys) {
            let table = self.table(&mut tables, region, &write.table);
            match write.kind {
                TransactKind::Put(item) => {
                    table.items.insert(key, Item::from_map(&item));
                }
                TransactKind::Delete => {
                    table.items.remove(&key);
                }
                TransactKind::ConditionCheck => {}
            }
        }
        Ok(json!({}))
    }

    fn batch_write_item(
        &self,
        region: &str,
        request: Map<String, Value>,
    ) -> Result<Value, AwsError> {
        let requests = object(&request, "RequestItems")?.ok_or_else(|| {
            AwsError::validation("1 validation error detected: RequestItems must not be null")
        })?;
        let count: usize = requests
            .values()
            .map(|v| v.as_array().map_or(0, Vec::len))
            .sum();
        if count == 0 || count > MAX_BATCH_WRITES {
            return Err(AwsError::validation(format!(
                "1 validation error detected: Value at 'requestItems' failed to satisfy \
                 constraint: Member must have length less than or equal to {MAX_BATCH_WRITES}"
            )));
        }
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let mut planned = Vec::with_capacity(count);
        let mut seen = HashSet::new();
        for (name, writes) in requests {
            let table = self.table(&mut tables, region, name);
            for write in writes.as_array().into_iter().flatten() {
                let (item, put) = match (
                    write.pointer("/PutRequest/Item").and_then(Value::as_object),
                    write
                        .pointer("/DeleteRequest/Key")
                        .and_then(Value::as_object),
                ) {
                    (Some(item), None) => (item, true),
                    (None, Some(key)) => (key, false),
                    _ => {
                        return Err(AwsError::validation(
                            "A write request holds exactly one of PutRequest and DeleteRequest",
                        ))
                    }
                };
                if put {
                    check_size(item)?;
                }
                let key = table.schema.key_of(item)?;
                if !seen.insert((name.clone(), key.clone())) {
                    return Err(AwsError::validation(
                        "Provided list of item keys contains duplicates",
                    ));
                }
                planned.push((name, key, put.then(|| item.clone())));
            }
        }
        for (name, key, item) in planned {
            let table = self.table(&mut tables, region, name);
            let old_size = table.items.get(&key).map_or(0, Item::size);
            self.bill(units(old_size.max(item.as_ref().map_or(0, item_size))));
            match item {
                Some(item) => table.items.insert(key, Item::from_map(&item)),
                None => table.items.remove(&key),
            };
        }
        Ok(json!({"UnprocessedItems": {}}))
    }

    fn list_tables(&self, region: &str, request: &Map<String, Value>) -> Result<Value, AwsError> {
        let limit = integer(request, "Limit")?.map_or(100, |l| l.clamp(1, 100)) as usize;
        let start = request
            .get("ExclusiveStartTableName")
            .and_then(Value::as_str);
        let tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let names: Vec<&str> = tables
            .get(region)
            .into_iter()
            .flat_map(BTreeMap::keys)
            .filter(|name| start.is_none_or(|s| name.as_str() > s))
            .map(String::as_str)
            .collect();
        let mut answer = json!({"TableNames": names.iter().take(limit).collect::<Vec<_>>()});
        if names.len() > limit {
            answer["LastEvaluatedTableName"] = json!(names[limit - 1]);
        }
        Ok(answer)
    }

    fn describe_table(
        &self,
        region: &str,
        request: &Map<String, Value>,
    ) -> Result<Value, AwsError> {
        let name = string(request, "TableName")?;
        self.with_table(region, name, |table| {
            Ok(json!({"Table": table.schema.describe(name, region, table.items.len())}))
        })
    }

    fn create_table(&self, region: &str, request: &Map<String, Value>) -> Result<Value, AwsError> {
        let name = string(request, "TableName")?;
        let mut schema = KeySchema::default();
        for element in list(request, "KeySchema")? {
            let attribute = element["AttributeName"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            match element["KeyType"].as_str() {
                Some("HASH") => schema.hash = attribute,
                Some("RANGE") => schema.range = Some(attribute),
                _ => return Err(AwsError::validation("KeyType must be HASH or RANGE")),
            }
        }
        let mut tables = self.tables.lock().unwrap_or_else(|e| e.into_inner());
        let region_tables = tables.entry(region.to_string()).or_default();
        if region_tables.contains_key(name) {
            return Err(AwsError::new(
                400,
                "ResourceInUseException",
                format!("Table already exists: {name}"),
            ));
        }
        let description = schema.describe(name, region, 0);
        region_tables.insert(
            name.to_string(),
            Table {
                schema,
                items: BTreeMap::new(),
            },
        );
        Ok(json!({"TableDescription": description}))
    }
}

/// A `PutItem` request as [`DynamoDb::put_item_fast`] reads it: strings borrowed from the body
/// where they hold no escapes, the item read into its stored form at once.
#[derive(serde::Deserialize)]
struct PutItemRequest<'a> {
    #[serde(rename = "TableName", borrow)]
    table_name: Cow<'a, str>,
    #[serde(rename = "Item")]
    item: Item,
    #[serde(rename = "ConditionExpression", borrow, default)]
    condition: Option<Cow<'a, str>>,
    #[serde(rename = "ExpressionAttributeNames", borrow, default)]
    names: Option<HashMap<&'a str, &'a str>>,
    #[serde(rename = "ExpressionAttributeValues", borrow, default)]
    values: Option<HashMap<&'a str, &'a RawValue>>,
    #[serde(rename = "ReturnValues", borrow, default)]
    return_values: Option<Cow<'a, str>>,
    #[serde(rename = "ReturnValuesOnConditionCheckFailure", borrow, default)]
    return_values_on_failure: Option<Cow<'a, str>>,
    /// `Expected` or `ConditionalOperator` present, even as null (the general path refuses them).
    #[serde(
        rename = "Expected",
        alias = "ConditionalOperator",
        default,
        deserialize_with = "present"
    )]
    legacy: bool,
}

/// `true` for a member that is there, whatever its value.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    <serde::de::IgnoredAny as serde::Deserialize>::deserialize(deserializer).map(|_| true)
}

/// One item of a `TransactWriteItems`.
struct TransactWrite {
    table: String,
    kind: TransactKind,
    /// The key (`Delete`, `ConditionCheck`); for a `Put`, the item holds it.
    key: Option<Map<String, Value>>,
    condition: Option<Condition>,
    old_on_failure: bool,
}

enum TransactKind {
    Put(Map<String, Value>),
    Delete,
    ConditionCheck,
}

impl TransactWrite {
    fn read(entry: &Value) -> Result<Self, AwsError> {
        let entry = entry.as_object().filter(|e| e.len() == 1).ok_or_else(|| {
            AwsError::validation(
                "A transaction item holds exactly one of Put, Delete, ConditionCheck, Update",
            )
        })?;
        let (kind, body) = entry.iter().next().expect("one member");
        let body = body
            .as_object()
            .ok_or_else(|| AwsError::validation(format!("{kind} must be an object")))?;
        let table = string(body, "TableName")?.to_string();
        let condition = condition_of(body)?;
        let old_on_failure = return_values(body, "ReturnValuesOnConditionCheckFailure")?;
        let key = || {
            object(body, "Key")?
                .cloned()
                .ok_or_else(|| AwsError::validation(format!("{kind}: Key must not be null")))
        };
        let (kind, key) = match kind.as_str() {
            "Put" => {
                let item = object(body, "Item")?
                    .cloned()
                    .ok_or_else(|| AwsError::validation("Put: Item must not be null"))?;
                check_size(&item)?;
                (TransactKind::Put(item), None)
            }
            "Delete" => (TransactKind::Delete, Some(key()?)),
            "ConditionCheck" => {
                if condition.is_none() {
                    return Err(AwsError::validation(
                        "ConditionCheck: ConditionExpression must not be null",
                    ));
                }
                (TransactKind::ConditionCheck, Some(key()?))
            }
            other => {
                return Err(AwsError::validation(format!(
                    "the sink does not apply a transaction's {other} (it answers Put, Delete and \
                     ConditionCheck, the shapes of eda's writes)"
                )))
            }
        };
        Ok(Self {
            table,
            kind,
            key,
            condition,
            old_on_failure,
        })
    }

    fn key_source(&self) -> &Map<String, Value> {
        match (&self.kind, &self.key) {
            (TransactKind::Put(item), _) => item,
            (_, Some(key)) => key,
            (_, None) => unreachable!("a Delete or ConditionCheck always has its key"),
        }
    }
}

/// The request's `ConditionExpression`, parsed.
fn condition_of(request: &Map<String, Value>) -> Result<Option<Condition>, AwsError> {
    if request.contains_key("Expected") || request.contains_key("ConditionalOperator") {
        return Err(AwsError::validation(
            "the sink reads ConditionExpression, not the legacy Expected parameter",
        ));
    }
    let Some(expression) = request.get("ConditionExpression").and_then(Value::as_str) else {
        return Ok(None);
    };
    condition::parse(
        expression,
        object(request, "ExpressionAttributeNames")?,
        object(request, "ExpressionAttributeValues")?,
    )
    .map(Some)
    .map_err(AwsError::validation)
}

fn filter_of(request: &Map<String, Value>) -> Result<Option<Condition>, AwsError> {
    let Some(expression) = request.get("FilterExpression").and_then(Value::as_str) else {
        return Ok(None);
    };
    condition::parse(
        expression,
        object(request, "ExpressionAttributeNames")?,
        object(request, "ExpressionAttributeValues")?,
    )
    .map(Some)
    .map_err(AwsError::validation)
}

/// A `BatchExecuteStatement` request as [`DynamoDb::batch_execute_statement_fast`] reads it.
#[derive(serde::Deserialize)]
struct BatchStatementsIn<'a> {
    #[serde(rename = "Statements", borrow)]
    statements: Vec<StatementIn<'a>>,
}

/// One statement, its parameters left as their JSON text.
#[derive(serde::Deserialize)]
struct StatementIn<'a> {
    #[serde(rename = "Statement", borrow)]
    statement: Cow<'a, str>,
    #[serde(rename = "Parameters", borrow, default)]
    parameters: Vec<&'a RawValue>,
    #[serde(rename = "ReturnValuesOnConditionCheckFailure", borrow, default)]
    return_values: Option<Cow<'a, str>>,
}

/// What a read statement writes, once its key is known.
enum Write<'a> {
    /// The whole item, where none exists.
    Insert(Item),
    /// The attributes set, where the condition holds.
    Update {
        key: Map<String, Value>,
        set: Vec<(String, &'a RawValue)>,
        condition: Condition,
    },
}

/// Appends a statement's success: `{"TableName":…}`.
fn statement_done(answer: &mut Vec<u8>, table: &str) {
    answer.extend_from_slice(b"{\"TableName\":");
    answer.extend_from_slice(Value::from(table).to_string().as_bytes());
    answer.push(b'}');
}

/// Appends a statement's error, with its table when the statement named one and the stored
/// item's text when the statement asked for it.
fn statement_error(
    answer: &mut Vec<u8>,
    table: Option<&str>,
    code: &str,
    message: &str,
    item: Option<&str>,
) {
    answer.push(b'{');
    if let Some(table) = table {
        answer.extend_from_slice(b"\"TableName\":");
        answer.extend_from_slice(Value::from(table).to_string().as_bytes());
        answer.push(b',');
    }
    answer.extend_from_slice(b"\"Error\":{\"Code\":");
    answer.extend_from_slice(Value::from(code).to_string().as_bytes());
    answer.extend_from_slice(b",\"Message\":");
    answer.extend_from_slice(Value::from(message).to_string().as_bytes());
    if let Some(item) = item {
        answer.extend_from_slice(b",\"Item\":");
        answer.extend_from_slice(item.as_bytes());
    }
    answer.extend_from_slice(b"}}");
}

/// Whether `ALL_OLD` was asked for in `member` (`NONE` or absent: not).
fn return_values(request: &Map<String, Value>, member: &str) -> Result<bool, AwsError> {
    return_values_of(member, request.get(member).and_then(Value::as_str))
}

/// [`return_values`] of the member's value `value`.
fn return_values_of(member: &str, value: Option<&str>) -> Result<bool, AwsError> {
    match value {
        None | Some("NONE") => Ok(false),
        Some("ALL_OLD") => Ok(true),
        Some(other) => Err(AwsError::validation(format!(
            "{member} {other}: the sink answers NONE and ALL_OLD"
        ))),
    }
}

/// Refuses a write whose condition does not hold for `old`, as DynamoDB does.
fn check(
    condition: Option<&Condition>,
    old: Option<&Item>,
    old_on_failure: bool,
) -> Result<(), AwsError> {
    match condition {
        Some(condition) if !condition.holds_for(old) => {
            let err = AwsError::new(
                400,
                "ConditionalCheckFailedException",
                "The conditional request failed",
            );
            Err(match old {
                Some(item) if old_on_failure => err.with("Item", Value::Object(item.to_map())),
                _ => err,
            })
        }
        _ => Ok(()),
    }
}

fn attributes(old: Option<Item>) -> Value {
    match old {
        Some(item) => json!({"Attributes": item.to_map()}),
        None => json!({}),
    }
}

/// The value a key condition binds the hash key to (`#pk = :pk`, alone or ANDed).
fn hash_equality<'c>(condition: &'c Condition, hash: &str) -> Option<&'c Value> {
    use condition::{Comparator, Operand};
    match condition {
        Condition::Compare(Operand::Attribute(name), Comparator::Eq, Operand::Value(value))
        | Condition::Compare(Operand::Value(value), Comparator::Eq, Operand::Attribute(name))
            if name == hash =>
        {
            Some(value)
        }
        Condition::And(a, b) => hash_equality(a, hash).or_else(|| hash_equality(b, hash)),
        _ => None,
    }
}

/// One page of `items` (already past `ExclusiveStartKey`): at most `Limit` items and 1 MB.
fn page<'i>(
    schema: &KeySchema,
    items: impl Iterator<Item = &'i Item>,
    request: &Map<String, Value>,
    filter: Option<&Condition>,
) -> Result<Value, AwsError> {
    let limit = integer(request, "Limit")?.map_or(usize::MAX, |l| l.max(1) as usize);
    let mut returned = Vec::new();
    let (mut scanned, mut bytes) = (0usize, 0usize);
    let mut last = None;
    let mut rest = items.peekable();
    while let Some(item) = rest.next() {
        scanned += 1;
        bytes += item.size();
        if filter.is_none_or(|f| f.holds_for(Some(item))) {
            returned.push(Value::Object(item.to_map()));
        }
        if scanned >= limit || bytes >= MAX_PAGE_BYTES {
            if rest.peek().is_some() {
                last = Some(schema.key_attributes(item));
            }
            break;
        }
    }
    let mut answer = json!({"Count": returned.len(), "ScannedCount": scanned, "Items": returned});
    if let Some(key) = last {
        answer["LastEvaluatedKey"] = Value::Object(key);
    }
    Ok(answer)
}

fn projection_of(request: &Map<String, Value>) -> Result<Option<Vec<String>>, AwsError> {
    let Some(expression) = request.get("ProjectionExpression").and_then(Value::as_str) else {
        return Ok(None);
    };
    let names = object(request, "ExpressionAttributeNames")?;
    expression
        .split(',')
        .map(|part| {
            let part = part.trim();
            if part.starts_with('#') {
                names
                    .and_then(|n| n.get(part))
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| AwsError::validation(format!("{part} is not defined")))
            } else if part.contains(['.', '[']) {
                Err(AwsError::validation(format!(
                    "the sink projects top-level attributes, not {part}"
                )))
            } else {
                Ok(part.to_string())
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn project(item: Map<String, Value>, names: Option<&Vec<String>>) -> Map<String, Value> {
    match names {
        None => item,
        Some(names) => item
            .into_iter()
            .filter(|(k, _)| names.contains(k))
            .collect(),
    }
}

fn check_size(item: &Map<String, Value>) -> Result<(), AwsError> {
    if item_size(item) > MAX_ITEM_BYTES {
        return Err(item_too_large());
    }
    Ok(())
}

fn item_too_large() -> AwsError {
    AwsError::validation("Item size has exceeded the maximum allowed size")
}

/// Write units for an item of `bytes`: one per started KB, at least one.
fn units(bytes: usize) -> u64 {
    bytes.div_ceil(1024).max(1) as u64
}

/// An item's size as DynamoDB counts it (attribute names plus values), closely enough for
/// limits and billing estimates.
pub fn item_size(item: &Map<String, Value>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &Value) -> usize {
    let Some((kind, payload)) = value.as_object().and_then(|m| m.iter().next()) else {
        return 1;
    };
    match (kind.as_str(), payload) {
        ("S", Value::String(s)) => s.len(),
        // Base64 on the wire: three bytes per four characters.
        ("B", Value::String(s)) => s.len() * 3 / 4,
        // Two digits per byte, plus one.
        ("N", Value::String(s)) => s.len().div_ceil(2) + 1,
        ("M", Value::Object(m)) => {
            3 + m
                .iter()
                .map(|(k, v)| k.len() + value_size(v) + 1)
                .sum::<usize>()
        }
        ("L", Value::Array(l)) => 3 + l.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        ("SS" | "NS" | "BS", Value::Array(l)) => {
            l.iter().map(|v| v.as_str().map_or(1, str::len)).sum()
        }
        _ => 1,
    }
}

fn unknown_operation(operation: &str) -> AwsError {
    AwsError::new(
        400,
        "UnknownOperationException",
        format!(
            "the sink does not answer DynamoDB's {operation} (it answers the operations eda \
             calls; see `eda-loadtest sink --help`)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    /// eda's statements, as `actors/src/aws/dynamodb/batch.rs` writes them.
    fn statements(entries: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({ "Statements": entries })).unwrap()
    }

    fn update(seq: &str, shape: &str, name: &str) -> Value {
        json!({
            "Statement": "UPDATE \"t\" SET \"NAME\"=?, \"_seq\"=? WHERE \"pk\"=? AND \"_seq\"<? AND \"_shape\"=?",
            "Parameters": [{"S": name}, {"S": seq}, {"S": "k"}, {"S": seq}, {"S": shape}],
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"
        })
    }

    #[test]
    fn statements_are_answered_each_on_its_own_and_both_readings_answer_the_same() {
        let insert = json!({
            "Statement": "INSERT INTO \"t\" VALUE {'pk': ?, '_seq': ?, '_shape': ?, 'NAME': ?}",
            "Parameters": [{"S": "k"}, {"S": "1"}, {"S": "h"}, {"S": "first"}]
        });
        let other = json!({
            "Statement": "INSERT INTO \"t\" VALUE {'pk': ?, 'NAME': ?}",
            "Parameters": [{"S": "other"}, "not a DynamoDB value"]
        });
        let calls = [
            statements(json!([insert, other])),
            statements(json!([insert])),
            statements(json!([update("2", "h", "second")])),
            statements(json!([update("2", "h", "replay"), {"Statement": "SELECT 1"}])),
            statements(json!([update("3", "other", "shape")])),
            statements(json!([insert, update("4", "h", "x")])),
        ];
        let fast = DynamoDb::default();
        let tree = DynamoDb::default();
        let mut answers = Vec::new();
        for body in &calls {
            let (_, by_fast) = fast.batch_execute_statement_fast("r", body).unwrap();
            let by_tree = tree.handle(
                "BatchExecuteStatement",
                "r",
                serde_json::from_slice(body).unwrap(),
            );
            let by_fast = by_fast.map(|bytes| serde_json::from_slice::<Value>(&bytes).unwrap());
            assert_eq!(by_fast, by_tree);
            answers.push(by_fast);
        }
        let code = |answer: &Value, i: usize| answer["Responses"][i]["Error"]["Code"].clone();
        let first = answers[0].as_ref().unwrap();
        assert_eq!(first["Responses"][0], json!({"TableName": "t"}));
        assert_eq!(code(first, 1), json!("ValidationError"), "{first}");
        assert_eq!(
            code(answers[1].as_ref().unwrap(), 0),
            json!("DuplicateItem")
        );
        assert_eq!(
            answers[2].as_ref().unwrap()["Responses"][0],
            json!({"TableName": "t"})
        );
        let replay = answers[3].as_ref().unwrap();
        assert_eq!(code(replay, 0), json!("ConditionalCheckFailed"));
        assert_eq!(
            replay["Responses"][0]["Error"]["Item"]["NAME"],
            json!({"S": "second"})
        );
        assert_eq!(code(replay, 1), json!("ValidationError"));
        assert_eq!(
            code(answers[4].as_ref().unwrap(), 0),
            json!("ConditionalCheckFailed")
        );
        let duplicates = answers[5].as_ref().unwrap_err();
        assert!(duplicates.message.contains("duplicates"), "{duplicates:?}");
        let stored = |db: &DynamoDb| {
            let key = request(json!({"TableName": "t", "Key": {"pk": {"S": "k"}}}));
            db.handle("GetItem", "r", key).unwrap()["Item"].clone()
        };
        assert_eq!(stored(&fast), stored(&tree));
        assert_eq!(
            stored(&fast),
            json!({"pk": {"S": "k"}, "_seq": {"S": "2"}, "_shape": {"S": "h"}, "NAME": {"S": "second"}})
        );
    }

    fn guarded(seq: &str, name: &str) -> Map<String, Value> {
        request(json!({
            "TableName": "t",
            "Item": {"pk": {"S": "k"}, "_seq": {"S": seq}, "NAME": {"S": name}},
            "ConditionExpression": eda_core::apply_plan::GUARD_EXPRESSION,
            "ExpressionAttributeNames": {"#seq": "_seq"},
            "ExpressionAttributeValues": {":seq": {"S": seq}},
            "ReturnValues": "ALL_OLD",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"
        }))
    }

    #[test]
    fn an_older_change_is_refused_with_the_stored_item() {
        let db = DynamoDb::default();
        assert_eq!(
            db.handle("PutItem", "r", guarded("0002", "new")),
            Ok(json!({}))
        );
        let err = db
            .handle("PutItem", "r", guarded("0001", "old"))
            .unwrap_err();
        assert_eq!(err.code, "ConditionalCheckFailedException");
        assert_eq!(err.members["Item"]["NAME"]["S"], "new");
        let replaced = db.handle("PutItem", "r", guarded("0003", "newer")).unwrap();
        assert_eq!(replaced["Attributes"]["_seq"]["S"], "0002");
        assert_eq!(db.stats()["r/t"].items, 1);
        assert_eq!(db.write_units(), 3);
    }

    fn body(request: Map<String, Value>) -> Vec<u8> {
        serde_json::to_vec(&request).unwrap()
    }

    #[test]
    fn the_typed_put_keeps_the_guard_and_answers_as_the_general_path() {
        let typed = DynamoDb::default();
        let general = DynamoDb::default();
        for (seq, name) in [
            ("0002", "new"),
            ("0001", "old"),
            ("0002", "again"),
            ("0003", "O'Brien \"newer\""),
        ] {
            let fast = typed
                .put_item_fast("r", &body(guarded(seq, name)))
                .expect("the typed path reads eda's PutItem");
            match (fast, general.handle("PutItem", "r", guarded(seq, name))) {
                (Ok(bytes), Ok(value)) => {
                    assert_eq!(
                        serde_json::from_slice::<Value>(&bytes).unwrap(),
                        value,
                        "{seq}"
                    )
                }
                (Err(a), Err(b)) => assert_eq!(a, b, "{seq}"),
                other => panic!("{seq}: {other:?}"),
            }
        }
        assert_eq!(typed.write_units(), general.write_units());
        let refused = typed
            .put_item_fast("r", &body(guarded("0001", "late")))
            .unwrap()
            .unwrap_err();
        assert_eq!(refused.code, "ConditionalCheckFailedException");
        assert_eq!(refused.members["Item"]["_seq"]["S"], "0003");
        assert_eq!(typed.stats()["r/t"].items, 1);
        let stored = typed
            .handle(
                "GetItem",
                "r",
                request(json!({"TableName": "t", "Key": {"pk": {"S": "k"}}})),
            )
            .unwrap();
        assert_eq!(stored["Item"]["NAME"]["S"], "O'Brien \"newer\"");
    }

    #[test]
    fn what_the_typed_put_does_not_read_is_left_to_the_general_path() {
        let db = DynamoDb::default();
        let mut legacy = guarded("0001", "x");
        legacy.insert("Expected".into(), Value::Null);
        let escaped_name = String::from_utf8(body(guarded("0001", "x")))
            .unwrap()
            .replace(r##""#seq":"_seq""##, r##""#se\u0071":"_seq""##);
        assert!(escaped_name.contains(r"\u0071"));
        let twice = br#"{"TableName":"t","Item":{"pk":{"S":"k"},"pk":{"S":"j"}}}"#.to_vec();
        let not_typed = br#"{"TableName":"t","Item":{"pk":{"S":"k"},"n":{"N":5}}}"#.to_vec();
        for request in [body(legacy), escaped_name.into_bytes(), twice, not_typed] {
            assert!(db.put_item_fast("r", &request).is_none());
        }
        assert_eq!(db.stats().len(), 0, "nothing was written");
        let err = db
            .put_item_fast(
                "r",
                &body(request(json!({
                    "TableName": "t",
                    "Item": {"pk": {"S": "k"}, "big": {"S": "x".repeat(MAX_ITEM_BYTES)}}
                }))),
            )
            .unwrap()
            .unwrap_err();
        assert_eq!(
            err.message,
            "Item size has exceeded the maximum allowed size"
        );
    }

    #[test]
    fn a_transaction_with_one_refused_guard_writes_nothing_and_says_which() {
        let db = DynamoDb::default();
        db.handle("PutItem", "r", guarded("0005", "stored"))
            .unwrap();
        let put = |pk: &str, seq: &str| {
            json!({"Put": {
                "TableName": "t",
                "Item": {"pk": {"S": pk}, "_seq": {"S": seq}},
                "ConditionExpression": eda_core::apply_plan::GUARD_EXPRESSION,
                "ExpressionAttributeNames": {"#seq": "_seq"},
                "ExpressionAttributeValues": {":seq": {"S": seq}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD"
            }})
        };
        let err = db
            .handle(
                "TransactWriteItems",
                "r",
                request(json!({"TransactItems": [put("other", "0001"), put("k", "0004")]})),
            )
            .unwrap_err();
        assert_eq!(err.code, "TransactionCanceledException");
        let reasons = &err.members["CancellationReasons"];
        assert_eq!(reasons[0]["Code"], "None");
        assert_eq!(reasons[1]["Code"], "ConditionalCheckFailed");
        assert_eq!(reasons[1]["Item"]["_seq"]["S"], "0005");
        assert_eq!(
            db.stats()["r/t"].items,
            1,
            "nothing of the transaction was written"
        );
        let twice = db
            .handle(
                "TransactWriteItems",
                "r",
                request(json!({"TransactItems": [put("k", "0006"), put("k", "0007")]})),
            )
            .unwrap_err();
        assert!(twice.message.contains("multiple operations on one item"));
    }

    #[test]
    fn pages_follow_the_last_evaluated_key_to_the_end() {
        let mut declared = HashMap::new();
        declared.insert("m".to_string(), KeySchema::parse("pk,version").unwrap());
        let db = DynamoDb::new(declared);
        for version in [3, 1, 2] {
            db.handle(
                "PutItem",
                "r",
                request(json!({"TableName": "m", "Item": {"pk": {"S": "T"}, "version": {"N": version.to_string()}}})),
            )
            .unwrap();
        }
        let mut start = Value::Null;
        let mut seen = Vec::new();
        loop {
            let page = db
                .handle(
                    "Query",
                    "r",
                    request(json!({
                        "TableName": "m",
                        "KeyConditionExpression": "#pk = :pk",
                        "ExpressionAttributeNames": {"#pk": "pk"},
                        "ExpressionAttributeValues": {":pk": {"S": "T"}},
                        "Limit": 2,
                        "ExclusiveStartKey": start
                    })),
                )
                .unwrap();
            seen.extend(
                page["Items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i["version"]["N"].clone()),
            );
            match page.get("LastEvaluatedKey") {
                Some(key) => start = key.clone(),
                None => break,
            }
        }
        assert_eq!(seen, [json!("1"), json!("2"), json!("3")]);
    }
}
