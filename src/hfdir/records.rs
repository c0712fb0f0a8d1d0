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

/// A JSONL file's digest, the content its dataset is keyed by: of its
/// records, not of how its lines end. A leading byte-order mark is dropped
/// and CRLF read as LF (as reading the records does), so one set of records
/// has one key whichever editor saved it; a file with LF ends and no mark
/// is digested as its bytes, as it always was.
pub fn content_digest(bytes: &[u8]) -> String {
    let b = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if !b.windows(2).any(|w| w == b"\r\n") {
        return blake3::hash(b).to_hex().to_string();
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    blake3::hash(&out).to_hex().to_string()
}

/// The most characters a field may have. A longer one is refused when the
/// plan is made, by its line, before anything reads or tokenises it: every
/// batch is padded to its longest record, so one 10-million-character
/// record would make every batch of the study that long (and importing it
/// would take gigabytes). 100,000 characters is some 25,000 tokens of
/// English, past what the models tandem trains read.
pub const MAX_FIELD_CHARS: usize = 100_000;

/// One line's record, or why it is not one.
pub fn record(line: &str) -> Result<Line, String> {
    let line: Line = parse(line)?;
    for (name, field) in [("prompt", &line.prompt), ("chosen", &line.chosen), ("rejected", &line.rejected)] {
        let n = field.chars().count();
        if n > MAX_FIELD_CHARS {
            return Err(format!(
                "`{name}` has {n} characters, more than the {MAX_FIELD_CHARS} a field may have (cut the record or leave it out)"
            ));
        }
    }
    Ok(line)
}

fn parse(line: &str) -> Result<Line, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_set_of_records_has_one_digest_whatever_ends_its_lines() {
        let lf = b"{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n{\"prompt\": \"d\", \"chosen\": \"e\", \"rejected\": \"f\"}\n";
        let crlf: Vec<u8> = String::from_utf8(lf.to_vec()).unwrap().replace('\n', "\r\n").into_bytes();
        let bom: Vec<u8> = [b"\xEF\xBB\xBF".as_slice(), &crlf].concat();
        assert_eq!(content_digest(lf), blake3::hash(lf).to_hex().to_string(), "an LF file is keyed by its bytes");
        assert_eq!(content_digest(&crlf), content_digest(lf));
        assert_eq!(content_digest(&bom), content_digest(lf));
        // Other content, other digest.
        assert_ne!(content_digest(&lf[1..]), content_digest(lf));
    }

    #[test]
    fn a_field_past_the_limit_is_refused_by_name_and_size() {
        let at = |n: usize| format!("{{\"prompt\": \"{}\", \"chosen\": \"b\", \"rejected\": \"c\"}}", "é".repeat(n));
        assert!(record(&at(MAX_FIELD_CHARS)).is_ok(), "characters, not bytes, are counted");
        let e = record(&at(MAX_FIELD_CHARS + 1)).err().unwrap();
        assert!(e.contains("`prompt` has 100001 characters"), "{e}");
        let text = format!("{}\n{}\n", at(1), at(10_000_000));
        assert_eq!(problems(&text).iter().map(|p| p.0).collect::<Vec<_>>(), vec![2]);
    }
}
