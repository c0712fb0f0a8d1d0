//! Preference data in Parquet, the format Hugging Face datasets keep on
//! disk: the same columns as a JSONL file (`prompt`, `chosen`, `rejected`;
//! strings, or lists of `{role, content}` messages). Each row becomes one
//! JSON line, so that a Parquet file's records are read, checked, keyed and
//! tokenised exactly as the same records in JSONL are: line N of the text
//! made here is row N of the file.

use parquet::file::reader::{FileReader, SerializedFileReader};

/// The rows of a Parquet file as JSONL text, one object per row with every
/// column (the record reader ignores the columns it does not need).
///
/// The parquet crate's row reader panics on some damaged files (a flipped
/// byte in a page header, say) where it could have returned an error; such a
/// panic is caught here, silently, and becomes the error it should have been,
/// so that no file makes tandem panic.
pub fn to_jsonl(bytes: &[u8]) -> Result<String, String> {
    quietly(|| read_rows(bytes)).unwrap_or_else(|| Err("the Parquet reader failed on it: a damaged file?".into()))
}

fn read_rows(bytes: &[u8]) -> Result<String, String> {
    let reader = SerializedFileReader::new(bytes::Bytes::copy_from_slice(bytes))
        .map_err(|e| format!("not a Parquet file ({e})"))?;
    let mut out = String::new();
    let rows = reader.get_row_iter(None).map_err(|e| format!("cannot read its rows ({e})"))?;
    for (i, row) in rows.enumerate() {
        let row = row.map_err(|e| format!("row {}: cannot be read ({e})", i + 1))?;
        out.push_str(&row.to_json_value().to_string());
        out.push('\n');
    }
    Ok(out)
}

thread_local! {
    /// Set while this thread runs [`quietly`]: its panics print nothing.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `f()`, or None where it panicked; the panic's message is not printed.
/// The process's panic hook is wrapped once so that it stays silent for a
/// thread inside `quietly` and speaks as before everywhere else.
fn quietly<T>(f: impl FnOnce() -> T) -> Option<T> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                previous(info)
            }
        }));
    });
    QUIET.with(|q| q.set(true));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok();
    QUIET.with(|q| q.set(false));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of the workspace's tests/data.
    fn data(name: &str) -> Vec<u8> {
        std::fs::read(format!("{}/../../tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn rows_read_as_the_jsonl_lines_of_the_same_records() {
        let text = to_jsonl(&data("tiny_prefs.parquet")).unwrap();
        let jsonl = String::from_utf8(data("tiny_prefs.jsonl")).unwrap();
        let parse = |t: &str| t.lines().map(|l| crate::hfdir::records::texts(l, None).unwrap()).collect::<Vec<_>>();
        assert_eq!(parse(&text), parse(&jsonl));
        let zstd = to_jsonl(&data("tiny_prefs_zstd.parquet")).unwrap();
        assert_eq!(zstd, text, "the codec does not change the records");
    }

    #[test]
    fn a_damaged_file_is_an_error_never_a_panic() {
        let good = data("tiny_prefs.parquet");
        assert!(to_jsonl(b"").is_err());
        assert!(to_jsonl(b"PAR1").is_err());
        for cut in 0..good.len() {
            let _ = to_jsonl(&good[..cut]);
        }
        for i in 0..good.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bad = good.clone();
                bad[i] ^= flip;
                let _ = to_jsonl(&bad);
            }
        }
    }
}
