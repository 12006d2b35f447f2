//! Flink's `canal-json` and `debezium-json` deserializers' acceptance rules, as a test
//! consumer: what each does with one message body, written from apache/flink
//! `flink-formats/flink-json/src/main/java/org/apache/flink/formats/json/canal/CanalJsonDeserializationSchema.java`
//! and `.../json/debezium/DebeziumJsonDeserializationSchema.java` (`deserialize`), with
//! `ignore-parse-errors` off (the default): an `Err` is a message that fails the job.
//!
//! Shared by the format's unit tests (`#[path]`) and `tests/rocketmq.rs`.

use serde_json::Value;

/// The row kinds Flink emits for a message (empty: skipped), or why it throws.
pub fn canal_json(body: &[u8]) -> Result<Vec<&'static str>, String> {
    // `if (message == null || message.length == 0) return;`
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let root: Value = serde_json::from_slice(body)
        .map_err(|e| format!("Corrupt Canal JSON message (not JSON: {e})"))?;
    // `createJsonRowType`: data ARRAY<ROW>, old ARRAY<ROW>, type STRING, database and
    // table STRING (`ReadableMetadata.DATABASE/TABLE.requiredJsonField`); a field of the
    // wrong JSON kind fails `convertToRowData`.
    for f in ["database", "table", "type"] {
        match root.get(f) {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(other) => return Err(format!("Corrupt Canal JSON message: `{f}` is {other}")),
        }
    }
    let rows = |f: &str| -> Result<Option<usize>, String> {
        match root.get(f) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) => {
                if let Some(bad) = a.iter().find(|r| !r.is_object() && !r.is_null()) {
                    return Err(format!("Corrupt Canal JSON message: a `{f}` row is {bad}"));
                }
                Ok(Some(a.len()))
            }
            Some(other) => Err(format!("Corrupt Canal JSON message: `{f}` is {other}")),
        }
    };
    let (data, old) = (rows("data")?, rows("old")?);
    // `String type = row.getString(2).toString();` throws on a missing type.
    let Some(kind) = root.get("type").and_then(Value::as_str) else {
        return Err("Corrupt Canal JSON message: no `type` (NullPointerException)".into());
    };
    // `data.size()` on a null `data` throws, as `old.getRow(i)` past `old`'s end does.
    let need = |n: Option<usize>, f: &str| {
        n.ok_or_else(|| format!("Corrupt Canal JSON message: {kind} without `{f}`"))
    };
    match kind {
        "INSERT" => Ok(vec!["+I"; need(data, "data")?]),
        "UPDATE" => {
            let n = need(data, "data")?;
            if need(old, "old")? < n {
                return Err("Corrupt Canal JSON message: fewer `old` rows than `data` rows".into());
            }
            Ok(["-U", "+U"].repeat(n))
        }
        "DELETE" => Ok(vec!["-D"; need(data, "data")?]),
        // `OP_CREATE`: "this is a DDL change event, and we should skip it".
        "CREATE" => Ok(Vec::new()),
        other => Err(format!("Unknown \"type\" value \"{other}\"")),
    }
}

/// As [`canal_json`] for `debezium-json`; `schema_include` is the format's
/// `debezium-json.schema-include` (the message is `{"schema", "payload"}`).
pub fn debezium_json(body: &[u8], schema_include: bool) -> Result<Vec<&'static str>, String> {
    // A tombstone (empty body) is skipped.
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let root: Value = serde_json::from_slice(body)
        .map_err(|e| format!("Corrupt Debezium JSON message (not JSON: {e})"))?;
    let payload = if schema_include {
        match root.get("payload") {
            Some(p @ Value::Object(_)) => p,
            _ => return Err("Corrupt Debezium JSON message: no `payload`".into()),
        }
    } else {
        &root
    };
    let image = |f: &str| -> Result<bool, String> {
        match payload.get(f) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Object(_)) => Ok(true),
            Some(other) => Err(format!("Corrupt Debezium JSON message: `{f}` is {other}")),
        }
    };
    let (before, after) = (image("before")?, image("after")?);
    // `payload.getString(2).toString()`: a message without `op` throws.
    let Some(op) = payload.get("op").and_then(Value::as_str) else {
        return Err("Corrupt Debezium JSON message: no `op`".into());
    };
    match op {
        "c" | "r" if after => Ok(vec!["+I"]),
        "u" if before && after => Ok(vec!["-U", "+U"]),
        "d" if before => Ok(vec!["-D"]),
        "c" | "r" | "u" | "d" => Err(format!(
            "Corrupt Debezium JSON message: op {op:?} without its row image"
        )),
        other => Err(format!("Unknown \"op\" value \"{other}\"")),
    }
}
