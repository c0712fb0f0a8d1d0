//! The JSONL preference record, the format TRL and others use: one object
//! per line with string fields `prompt`, `chosen` and `rejected`. Read
//! without libtorch, so that planning can name every bad line of a file
//! before anything runs (`plan::lower`) and importing reads it the same way
//! (`worlds::jsonl`).

#[derive(serde::Deserialize)]
pub struct Line {
    pub prompt: String,
    pub chosen: String,
    pub rejected: String,
}

/// One line's record, or why it is not one.
pub fn record(line: &str) -> Result<Line, String> {
    serde_json::from_str(line).map_err(|e| {
        let shape = match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(m)) => {
                let missing: Vec<&str> = ["prompt", "chosen", "rejected"]
                    .into_iter()
                    .filter(|f| !m.get(*f).is_some_and(|v| v.is_string()))
                    .collect();
                if missing.iter().any(|f| m.get(*f).is_some_and(|v| v.is_array())) {
                    format!(
                        "{} is a list (a conversation?); each of prompt, chosen, rejected must be a string",
                        missing.join(", ")
                    )
                } else {
                    format!("no string field {}", missing.join(", "))
                }
            }
            Ok(other) => format!("a JSON {}, not an object", kind(&other)),
            Err(_) => format!("not JSON ({e})"),
        };
        format!("not a preference record: {shape}")
    })
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Array(_) => "array",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Null => "null",
        serde_json::Value::Object(_) => "object",
    }
}

/// Every problem of a JSONL file's records, each with its line (1-based),
/// in order: what `check` reports before anything runs. A byte-order mark
/// at the start is skipped, and CRLF line ends are accepted.
pub fn problems(text: &str) -> Vec<(usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = vec![];
    let mut records = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match record(line) {
            Ok(_) => records += 1,
            Err(e) => out.push((i + 1, e)),
        }
    }
    if records == 0 && out.is_empty() {
        out.push((0, "no records: the file is empty".to_string()));
    }
    out
}
