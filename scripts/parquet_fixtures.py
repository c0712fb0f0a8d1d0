"""Writes the Parquet fixtures of tests/ (committed; run again only to change them).

    python scripts/parquet_fixtures.py tests/data

Needs pyarrow, the library Hugging Face datasets writes its Parquet files
with (not part of tandem's venv: `pip install pyarrow` somewhere else).
  - tiny_prefs.parquet       tests/data/tiny_prefs.jsonl's records, snappy pages
                             (pyarrow's default, and so datasets')
  - tiny_prefs_zstd.parquet  the same records, zstd pages
  - bad_prefs.parquet        rows a preference dataset refuses: row 1 has
                             no `rejected` (the file has no such column), row
                             2 a null prompt as well
"""
import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

out = Path(sys.argv[1])
records = [json.loads(l) for l in (out / "tiny_prefs.jsonl").read_text().splitlines() if l.strip()]
table = pa.table({k: [r[k] for r in records] for k in ("prompt", "chosen", "rejected")})
pq.write_table(table, out / "tiny_prefs.parquet")
pq.write_table(table, out / "tiny_prefs_zstd.parquet", compression="zstd")
bad = pa.table({
    "prompt": pa.array(["a", None], type=pa.string()),
    "chosen": pa.array(["x", "y"], type=pa.string()),
})
pq.write_table(bad, out / "bad_prefs.parquet")
