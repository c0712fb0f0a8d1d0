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

/// A conversational record (TRL's format): each field a list of messages.
#[derive(serde::Deserialize)]
struct ChatLine {
    prompt: Vec<crate::hfdir::chat::Message>,
    chosen: Vec<crate::hfdir::chat::Message>,
    rejected: Vec<crate::hfdir::chat::Message>,
}

/// Whether a file's records are conversations: its first record's prompt
/// is a list (of messages). A file is one format or the other.
pub fn conversational(text: &str) -> bool {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .is_some_and(|v| v.get("prompt").is_some_and(|p| p.is_array()))
}

/// One line as the three texts a tokenizer reads. Without `chat`, a plain
/// record; with it, a conversational one rendered by the chat template as
/// TRL renders it (the prompt with the generation prompt, each response as
/// what it adds), each text within [`MAX_FIELD_CHARS`].
pub fn texts(line: &str, chat: Option<&crate::hfdir::chat::ChatTemplate>) -> Result<(String, String, String), String> {
    let Some(chat) = chat else {
        let l = record(line)?;
        return Ok((l.prompt, l.chosen, l.rejected));
    };
    let c: ChatLine = serde_json::from_str(line).map_err(|e| {
        format!("not a conversational preference record ({e}): prompt, chosen and rejected are lists of {{\"role\", \"content\"}} messages, as in the file's first record")
    })?;
    let (p, ch, r) = chat.record(&c.prompt, &c.chosen, &c.rejected)?;
    for (name, field) in [("prompt", &p), ("chosen", &ch), ("rejected", &r)] {
        let n = field.chars().count();
        if n > MAX_FIELD_CHARS {
            return Err(format!(
                "`{name}` renders to {n} characters, more than the {MAX_FIELD_CHARS} a field may have"
            ));
        }
    }
    Ok((p, ch, r))
}

/// Every problem of a JSONL file's records, each with its line (1-based),
/// in order: what `check` reports before anything runs. A byte-order mark
/// at the start is skipped, and CRLF line ends are accepted.
pub fn problems(text: &str) -> Vec<(usize, String)> {
    problems_with(text, None)
}

/// [`problems`] of a file read with a chat template: conversational
/// records are rendered, and a rendering that fails is a problem of its line.
pub fn problems_with(text: &str, chat: Option<&crate::hfdir::chat::ChatTemplate>) -> Vec<(usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = vec![];
    let mut records = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match texts(line, chat) {
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
