"""The manifest: one parquet row per target, and the dataset.json summary.

Rows are written per shard into ``_parts/<shard>.parquet`` as each shard finishes
(memory stays flat), and concatenated into ``manifest.parquet`` by the commit
(shards.commit). Each part also carries its shard's dataset.json entry (name, sha256,
bytes, counts) in its parquet metadata, so that the commit never re-reads a shard.

Readers trust dataset.json only: the manifest of a split is ``manifest.parquet`` once the
split is complete, else the parts of the shards dataset.json lists (a writer is running or
was killed); a shard that dataset.json does not list is never read.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from common.errors import ShardError
from shards import storage
from shards.format import Sample
from shards.layout import DATASET_JSON, MANIFEST, PARTS_DIR, QUARANTINE, part_name

_ENTRY_KEY = b"unilseg.shard"  # parquet metadata key of a part's dataset.json entry

MANIFEST_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("shard", pa.string()),
        ("target_index", pa.int32()),
        ("image_id", pa.string()),
        ("image_sha256", pa.string()),
        ("image_source", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("source", pa.string()),
        ("task", pa.string()),
        ("granularity", pa.string()),
        ("text", pa.string()),  # the first text; all of them are in `texts`
        ("texts", pa.list_(pa.string())),
        ("area", pa.int64()),  # 0 for a no-target expression
        ("has_mask", pa.bool_()),
        ("scores", pa.map_(pa.string(), pa.float64())),
        ("engine_version", pa.string()),
    ]
)


class ManifestRows:
    """The manifest rows of one shard, gathered column by column (no dict per row).

    The same table as ``pa.Table.from_pylist`` of one dict per row (tests check), built
    faster: pyarrow converts one Python list per column.

    Attributes:
        columns (dict[str, list]): one list per MANIFEST_SCHEMA field, in schema order.
    """

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in MANIFEST_SCHEMA.names}

    def __len__(self) -> int:
        return len(self.columns["key"])

    def add(self, sample: Sample, shard: str, areas: list[int]) -> None:
        """Appends one row per target of a sample (areas as validate_sample returns them)."""
        c, img, n = self.columns, sample.image, len(sample.targets)
        for name, value in (
            ("key", sample.key),
            ("shard", shard),
            ("image_id", img.id),
            ("image_sha256", img.sha256),
            ("image_source", img.source),
            ("width", img.width),
            ("height", img.height),
        ):
            c[name] += [value] * n
        c["target_index"] += range(n)
        c["area"] += areas
        for t in sample.targets:
            c["source"].append(t.source)
            c["task"].append(t.task)
            c["granularity"].append(t.granularity)
            c["text"].append(t.texts[0])
            c["texts"].append(list(t.texts))
            c["has_mask"].append(t.mask is not None)
            c["scores"].append([(k, float(v)) for k, v in t.scores.items()])
            c["engine_version"].append(t.provenance.get("engine_version"))

    def table(self) -> pa.Table:
        """The rows as a table of MANIFEST_SCHEMA."""
        return pa.Table.from_arrays(
            [pa.array(self.columns[f.name], type=f.type) for f in MANIFEST_SCHEMA], schema=MANIFEST_SCHEMA
        )

    def write(self, loc: str, entry: dict[str, Any] | None = None) -> None:
        """Writes the rows as one parquet file that appears complete or not at all.

        Args:
            loc: the part's location.
            entry: the shard's dataset.json entry, kept in the file's metadata.
        """
        table = self.table()
        if entry is not None:
            table = table.replace_schema_metadata({_ENTRY_KEY: json.dumps(entry).encode("utf-8")})
        buf = io.BytesIO()
        pq.write_table(table, buf)
        storage.write_bytes(loc, buf.getvalue())


def _parquet_source(loc: str) -> Any:
    """What pyarrow reads: a local path (memory-mapped), or a streamed fsspec file."""
    p = storage.local_path(loc)
    return p if p is not None else storage.open_read(loc)


def read_parquet(
    loc: str,
    columns: list[str] | None = None,
    schema: pa.Schema | None = None,
) -> pa.Table:
    """A parquet file at a location."""
    src = _parquet_source(loc)
    try:
        return pq.read_table(src, columns=columns, schema=schema)
    finally:
        if not isinstance(src, str):
            src.close()


def part_entry(loc: str) -> dict[str, Any] | None:
    """The dataset.json entry a part carries (None for a part written before parts carried one)."""
    src = _parquet_source(loc)
    try:
        meta = pq.read_schema(src).metadata or {}
    finally:
        if not isinstance(src, str):
            src.close()
    return json.loads(meta[_ENTRY_KEY]) if _ENTRY_KEY in meta else None


def merge_parts(parts: Iterable[str], out: str) -> int:
    """Concatenates part files into one parquet file, one part in memory at a time; the
    result is staged locally and published at ``out`` in one step."""
    n = 0
    with storage.staged_output(out) as staged:
        with pq.ParquetWriter(staged, MANIFEST_SCHEMA) as writer:
            for part in parts:
                table = read_parquet(part, schema=MANIFEST_SCHEMA)
                writer.write_table(table.replace_schema_metadata(None))
                n += table.num_rows
    return n


def read_manifest(split_dir: str | os.PathLike, columns: list[str] | None = None) -> pa.Table:
    """The manifest of a split: manifest.parquet when the split is complete, else the parts of
    the shards dataset.json lists (a writer is running or was killed).

    Raises:
        ShardError: the split is complete but manifest.parquet is missing, or a listed
            shard has no manifest part.
    """
    info = read_dataset_json(split_dir)
    if info.get("status") == "complete":
        path = storage.join(split_dir, MANIFEST)
        if not storage.exists(path):
            raise ShardError(split_dir, f"{MANIFEST} is missing (dataset.json says the split is complete)")
        return read_parquet(path, columns)
    tables = []
    for s in info.get("shards", []):
        path = storage.join(split_dir, PARTS_DIR, part_name(s["name"]))
        if not storage.exists(path):
            raise ShardError(split_dir, f"{s['name']} has no manifest part {PARTS_DIR}/{part_name(s['name'])}")
        tables.append(read_parquet(path, columns, MANIFEST_SCHEMA).replace_schema_metadata(None))
    if not tables:
        schema = MANIFEST_SCHEMA if columns is None else pa.schema([MANIFEST_SCHEMA.field(c) for c in columns])
        return schema.empty_table()
    return pa.concat_tables(tables)


def read_dataset_json(split_dir: str | os.PathLike) -> dict[str, Any]:
    """dataset.json of a split, or an empty summary if there is none yet."""
    try:  # one request: no exists() first
        return json.loads(storage.read_bytes(storage.join(split_dir, DATASET_JSON)))
    except FileNotFoundError:
        return {}


def _jsonl(loc: str) -> list[dict[str, Any]]:
    try:
        text = storage.read_bytes(loc).decode("utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def read_quarantine(split_dir: str | os.PathLike, parts_listing: list[str] | None = None) -> list[dict[str, Any]]:
    """The quarantine records of a split ([] if there is none): quarantine.jsonl, then the
    records of writers with an identity that no commit has merged yet, each (input, reason)
    once, in the order written.

    Each record has at least ``input`` (what was rejected) and ``reason``; writers add
    their own fields (``format``, ``kind``, ``sha256``, ``engine_version``, ...).
    ``parts_listing`` (names in PARTS_DIR) spares listing it again.
    """
    recs = _jsonl(storage.join(split_dir, QUARANTINE))
    parts = storage.join(split_dir, PARTS_DIR)
    listing = storage.listdir(parts) if parts_listing is None else parts_listing
    for name in listing:
        if name.startswith("quarantine-") and name.endswith(".jsonl"):
            recs += _jsonl(storage.join(parts, name))
    seen, out = set(), []
    for r in recs:
        if (r.get("input"), r.get("reason")) not in seen:
            seen.add((r.get("input"), r.get("reason")))
            out.append(r)
    return out


def write_json_atomic(path: str | os.PathLike, doc: dict[str, Any]) -> None:
    """Writes JSON so that it appears complete or not at all (temp name + rename, or one PUT)."""
    data = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    storage.write_bytes(path, data.encode("utf-8"))


def done_images(split_dir: str | os.PathLike) -> set[tuple[str, str | None]]:
    """(image sha256, engine version) pairs already in a split: keys incremental annotation.

    From the shards dataset.json lists (see read_manifest); a writer also skips the keys of
    a killed run's finished shards that dataset.json did not list yet."""
    if not read_dataset_json(split_dir):
        return set()
    t = read_manifest(split_dir, columns=["image_sha256", "engine_version"])
    return set(zip(t.column("image_sha256").to_pylist(), t.column("engine_version").to_pylist()))
