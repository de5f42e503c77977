"""The commit: every writer's finished shards -> manifest.parquet + dataset.json.

How a split becomes readable (the protocol holds on object storage, where nothing can be
renamed atomically):

1. A writer writes a shard to a local staging file; when it is full it writes the shard's
   manifest part (``_parts/<shard>.parquet``, carrying the shard's sha256 and counts), then
   publishes the shard under its final name in one step (a rename, or one upload).
   A shard with both files is *finished*.
2. ``dataset.json`` lists the shards readers may read, with their checksums. Readers never
   list a split to discover shards: a file dataset.json does not list is never read.
3. The commit (``commit_split``, or a single writer's ``close``) lists the split once,
   takes every finished shard of every writer, merges their parts into
   ``manifest.parquet`` (staged, published in one step), merges writers' quarantine files,
   removes orphans, and writes ``dataset.json`` last (status "complete").

A killed writer leaves at most: a staging file (local, removed by the next writer), a part
whose shard was never published (an orphan: removed by the next writer or commit), or a
finished shard that dataset.json does not list yet (adopted by the next writer or commit).
``verify`` reports all of them. Several writers may write one split at once if each has its
own identity (``ShardWriter(writer_id=...)``, shard names ``shard-W-NNNNNN.tar``) and none
writes dataset.json (``commit=False``); the driver calls ``commit_split`` once they have all
finished, and again on resume. Locally a lock file keeps a second writer of the same
identity out (``shards.locks``: removed when its writer closes, and by the commit when a
killed writer left it); object stores have no lock, so there the rule is on the driver.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shards import locks, storage
from shards.format import SCHEMA_VERSION
from shards.layout import DATASET_JSON, MANIFEST, PARTS_DIR, QUARANTINE, parse_shard_name, part_name, shard_order
from shards.manifest import (
    MANIFEST_SCHEMA,
    merge_parts,
    part_entry,
    read_dataset_json,
    read_parquet,
    read_quarantine,
    write_json_atomic,
)

log = logging.getLogger(__name__)


def shard_entry(
    name: str, sha256: str, size: int, samples: int, tasks: list[str], granularities: list[str]
) -> dict[str, Any]:
    """A shard's dataset.json entry."""
    return {
        "name": name,
        "sha256": sha256,
        "bytes": size,
        "samples": samples,
        "targets": len(tasks),
        "tasks": dict(Counter(tasks)),
        "granularities": dict(Counter(granularities)),
    }


def describe_shard(split_dir: str, name: str) -> dict[str, Any]:
    """The entry of a finished shard: from its part's metadata, else recomputed (hashing it)."""
    part = storage.join(split_dir, PARTS_DIR, part_name(name))
    entry = part_entry(part)
    if entry is not None:
        return entry
    table = read_parquet(part, ["key", "task", "granularity"])
    tar = storage.join(split_dir, name)
    return shard_entry(
        name,
        storage.sha256(tar),
        storage.size(tar),
        len(set(table.column("key").to_pylist())),
        table.column("task").to_pylist(),
        table.column("granularity").to_pylist(),
    )


Listing = tuple[list[str], list[str]]  # (names in the split, names in its PARTS_DIR)


def list_split(split_dir: str | os.PathLike) -> Listing:
    """The split's entries and its parts' (for writers, the commit and verify; never readers)."""
    split_dir = storage.normalize(split_dir)
    return (
        storage.listdir(split_dir),
        storage.listdir(storage.join(split_dir, PARTS_DIR)),
    )


def finished_shards(split_dir: str | os.PathLike, listing: Listing | None = None) -> list[str]:
    """Names of every writer's finished shards (shard and manifest part both present), in
    shard order. Lists the split unless given its ``listing``."""
    names, parts = listing or list_split(split_dir)
    parts = set(parts)
    return sorted((n for n in names if parse_shard_name(n) and part_name(n) in parts), key=shard_order)


def orphans(split_dir: str | os.PathLike, listing: Listing | None = None) -> list[str]:
    """Paths (relative to the split) of what a killed writer left that no reader reads:
    staging files, parts whose shard was never published, and shards without a part."""
    names, parts = listing or list_split(split_dir)
    out = [n for n in names if n.endswith(".tmp")]
    out += [f"{PARTS_DIR}/{p}" for p in parts if p.endswith(".tmp")]
    shards = {n for n in names if parse_shard_name(n)}
    out += [f"{PARTS_DIR}/{p}" for p in parts if p.endswith(".tar.parquet") and p[: -len(".parquet")] not in shards]
    out += [n for n in sorted(shards) if part_name(n) not in parts]
    return out


def summary(shards: list[dict[str, Any]], quarantined: int, status: str) -> dict[str, Any]:
    """dataset.json's document for a list of shard entries."""
    by_task: Counter[str] = sum((Counter(s["tasks"]) for s in shards), Counter())
    by_gran: Counter[str] = sum((Counter(s["granularities"]) for s in shards), Counter())
    counts = {
        "shards": len(shards),
        "samples": sum(s["samples"] for s in shards),
        "targets": sum(s["targets"] for s in shards),
        "quarantined": quarantined,
        "by_task": dict(sorted(by_task.items())),
        "by_granularity": dict(sorted(by_gran.items())),
    }
    return {"schema_version": SCHEMA_VERSION, "status": status, "counts": counts, "shards": shards}


def commit_split(
    split_dir: str | os.PathLike,
    known: dict[str, dict[str, Any]] | None = None,
    status: str = "complete",
) -> dict[str, Any]:
    """Makes every finished shard of every writer readable: manifest.parquet, quarantine.jsonl,
    then dataset.json (with ``status``: "complete", or "incomplete" for a run that stopped early
    and will be finished by the next); removes orphans. Call it when no writer runs.

    Args:
        split_dir: the split (local path or URL).
        known: entries the caller already has (a closing writer's own shards), by name.

    Returns:
        dict: the dataset.json written.
    """
    split_dir = storage.normalize(split_dir)
    listing = list_split(split_dir)
    locks.clear_locks(split_dir, listing[0])  # those of killed writers (a live writer's stays)
    for rel in orphans(split_dir, listing):
        if not parse_shard_name(rel):  # a shard without its part is damage, left for verify to report
            log.warning("removing %s left by an interrupted writer", storage.join(split_dir, rel))
            storage.remove(storage.join(split_dir, *rel.split("/")))
    listed = {s["name"]: s for s in read_dataset_json(split_dir).get("shards", [])}
    entries = []
    for name in finished_shards(split_dir, listing):
        entry = (known or {}).get(name) or listed.get(name) or describe_shard(split_dir, name)
        entries.append(entry)
    parts = [storage.join(split_dir, PARTS_DIR, part_name(e["name"])) for e in entries]
    manifest = storage.join(split_dir, MANIFEST)
    if parts:
        merge_parts(parts, manifest)
    else:  # an empty split still has a (empty) manifest, so that "complete" always has one
        _write_empty_manifest(manifest)
    quarantine = read_quarantine(split_dir, listing[1])
    if quarantine and any(n.startswith("quarantine-") for n in listing[1]):
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in quarantine)
        storage.write_bytes(storage.join(split_dir, QUARANTINE), text.encode("utf-8"))
    doc = summary(entries, len(quarantine), status)
    write_json_atomic(storage.join(split_dir, DATASET_JSON), doc)
    return doc


def up_to_date(split_dir: str | os.PathLike) -> bool:
    """Whether a commit would change nothing: dataset.json says "complete" and lists exactly the
    finished shards, every quarantine record is merged, and nothing is left to remove. One
    listing; a re-run that wrote nothing then never rewrites the manifest."""
    split_dir = storage.normalize(split_dir)
    info = read_dataset_json(split_dir)
    if info.get("status") != "complete":
        return False
    listing = list_split(split_dir)
    listed = [s["name"] for s in info.get("shards", [])]
    if finished_shards(split_dir, listing) != sorted(listed, key=shard_order) or orphans(split_dir, listing):
        return False
    return len(read_quarantine(split_dir, listing[1])) == info.get("counts", {}).get("quarantined", 0)


def _write_empty_manifest(loc: str) -> None:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([], schema=MANIFEST_SCHEMA), buf)
    storage.write_bytes(loc, buf.getvalue())


def replace_split(
    split_dir: str | os.PathLike,
    writer_id: str,
    known: dict[str, dict[str, Any]] | None = None,
    side_files: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """Makes one writer's finished shards the whole split, in place of what it held before.

    For a split rewritten as a new version (a reviewed split): the new version's writer has
    written its shards beside the old ones (never read: dataset.json does not list them).
    Readers see the old version until dataset.json, written last, lists the new one: first
    dataset.json is marked "incomplete" over the same old shards (readers then take the
    manifest from their parts while manifest.parquet is replaced), then manifest.parquet and
    ``side_files`` (name -> bytes, beside the shards) are written, then dataset.json. Only
    then are the old shards, their parts and orphans removed. A kill at any point leaves the
    old version or the new one readable; running it again finishes the job.

    Returns:
        dict: the dataset.json written.
    """
    split_dir = storage.normalize(split_dir)
    listing = list_split(split_dir)
    locks.clear_locks(split_dir, listing[0])
    mine = [n for n in finished_shards(split_dir, listing) if parse_shard_name(n)[0] == writer_id]
    entries = [(known or {}).get(n) or describe_shard(split_dir, n) for n in mine]
    old = read_dataset_json(split_dir)
    if old.get("status") == "complete" and {s["name"] for s in old.get("shards", [])} != set(mine):
        write_json_atomic(storage.join(split_dir, DATASET_JSON), {**old, "status": "incomplete"})
    manifest = storage.join(split_dir, MANIFEST)
    if mine:
        merge_parts([storage.join(split_dir, PARTS_DIR, part_name(n)) for n in mine], manifest)
    else:
        _write_empty_manifest(manifest)
    for name, data in (side_files or {}).items():
        storage.write_bytes(storage.join(split_dir, name), data)
    doc = summary(entries, 0, "complete")
    write_json_atomic(storage.join(split_dir, DATASET_JSON), doc)
    remove_others(split_dir, writer_id, listing)
    return doc


def remove_others(split_dir: str | os.PathLike, writer_id: str, listing: Listing | None = None) -> list[str]:
    """After ``replace_split``: removes every shard and part of other writers, orphans and the
    old quarantine list (what a kill during the clean-up of ``replace_split`` left); returns
    what it removed (relative to the split). Call it when no writer runs."""
    split_dir = storage.normalize(split_dir)
    names, parts = listing or list_split(split_dir)
    mine = {n for n in names if (parsed := parse_shard_name(n)) and parsed[0] == writer_id}
    gone = [n for n in names if parse_shard_name(n) and n not in mine]
    gone += [f"{PARTS_DIR}/{p}" for p in parts if p not in {part_name(n) for n in mine}]
    gone += [QUARANTINE] if QUARANTINE in names else []
    for rel in gone:
        storage.remove(storage.join(split_dir, *rel.split("/")))
    left = orphans(split_dir)
    for rel in left:
        storage.remove(storage.join(split_dir, *rel.split("/")))
    return gone + left
