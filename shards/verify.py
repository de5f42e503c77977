"""Checks a split (local or at an fsspec URL): every listed shard present and intact,
manifest and shards agreeing, and what a killed writer left behind (orphans)."""

from __future__ import annotations

import json
import os
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from common.errors import ShardError
from shards import storage
from shards.commit import finished_shards, orphans
from shards.format import FormatError, parse_metadata, validate_target
from shards.keys import check_key
from shards.layout import find_splits, parse_shard_name  # noqa: F401 (find_splits: callers import it from here)
from shards.manifest import read_dataset_json, read_manifest
from shards.reader import _TarMembers


@dataclass
class VerifyReport:
    """What verification found in one split.

    Attributes:
        split_dir (str): the split checked.
        errors (list[str]): problems that make the split unusable as is.
        warnings (list[str]): things worth knowing (interrupted writer, orphans it left).
    """

    split_dir: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def verify_split(split_dir: str | os.PathLike, deep: bool = True) -> VerifyReport:
    """Verifies one split.

    Args:
        split_dir: the split (local path or fsspec URL) with dataset.json.
        deep: also check every shard's members against the manifest and the format (the
            shard is read once either way: its sha256 is always checked).
    """
    split = storage.normalize(split_dir)
    rep = VerifyReport(split)
    info = read_dataset_json(split)
    if not info:
        rep.errors.append("dataset.json is missing")
        return rep
    if info.get("status") != "complete":
        rep.warnings.append(
            "the last writer did not close (interrupted run): the shards dataset.json lists are "
            "checked; re-run the job to complete the split"
        )
    listed = [s["name"] for s in info.get("shards", [])]
    for rel in orphans(split):
        rep.warnings.append(f"orphan {rel} (left by an interrupted writer; never read; the next run removes it)")
    for name in sorted(set(finished_shards(split)) - set(listed)):
        rep.warnings.append(
            f"{name} is finished but not in dataset.json yet (an interrupted writer; never read; "
            "the next run adopts it)"
        )
    try:
        manifest = read_manifest(split, columns=["key", "shard", "target_index", "task"])
    except Exception as e:  # unreadable parquet, missing manifest or part
        rep.errors.append(f"manifest unreadable: {e}")
        return rep
    rows_by_shard: Counter[str] = Counter(manifest.column("shard").to_pylist())
    keys_by_shard: dict[str, set[str]] = {}
    for key, shard in zip(manifest.column("key").to_pylist(), manifest.column("shard").to_pylist()):
        keys_by_shard.setdefault(shard, set()).add(key)
    for name, n in Counter(listed).items():
        if n > 1:
            rep.errors.append(f"dataset.json lists {name} {n} times")
    _check_counts(info, manifest.column("task").to_pylist(), rep)
    for entry in info.get("shards", []):
        name = entry["name"]
        if parse_shard_name(name) is None:
            rep.errors.append(f"dataset.json lists {name!r}, which is not a shard name (shard-[W-]NNNNNN.tar)")
            continue
        if rows_by_shard.get(name, 0) != entry["targets"]:
            rep.errors.append(
                f"{name}: manifest has {rows_by_shard.get(name, 0)} targets, dataset.json says {entry['targets']}"
            )
        _check_shard(storage.join(split, name), entry, keys_by_shard.get(name, set()), deep, rep)
    for shard in sorted(set(rows_by_shard) - set(listed)):
        rep.errors.append(f"manifest lists shard {shard}, which dataset.json does not")
    return rep


def _check_counts(info: dict[str, Any], manifest_tasks: list[str], rep: VerifyReport) -> None:
    """dataset.json's totals against its shard entries and the manifest."""
    counts, shards = info.get("counts", {}), info.get("shards", [])
    sums = {
        "shards": len(shards),
        "samples": sum(s["samples"] for s in shards),
        "targets": sum(s["targets"] for s in shards),
    }
    for k, v in sums.items():
        if counts.get(k) != v:
            rep.errors.append(f"dataset.json counts.{k} is {counts.get(k)}, its shards add up to {v}")
    if len(manifest_tasks) != sums["targets"]:
        rep.errors.append(f"manifest has {len(manifest_tasks)} targets, dataset.json's shards {sums['targets']}")
    by_task = dict(sorted(Counter(manifest_tasks).items()))
    if counts.get("by_task") != by_task:
        rep.errors.append(f"dataset.json counts.by_task {counts.get('by_task')} differs from the manifest's {by_task}")
    by_gran: Counter[str] = sum((Counter(s["granularities"]) for s in shards), Counter())
    if counts.get("by_granularity") != dict(sorted(by_gran.items())):
        rep.errors.append(
            f"dataset.json counts.by_granularity {counts.get('by_granularity')} differs from its "
            f"shards' {dict(sorted(by_gran.items()))}"
        )


def _check_shard(
    loc: str,
    entry: dict[str, Any],
    manifest_keys: set[str],
    deep: bool,
    rep: VerifyReport,
) -> None:
    """Reads a shard once: its size and sha256 against dataset.json, and (deep) its samples
    against the manifest and the format."""
    name = entry["name"]
    try:
        size = storage.size(loc)
    except FileNotFoundError:
        rep.errors.append(f"{name} is missing")
        return
    if size != entry["bytes"]:
        rep.errors.append(f"{name}: size {size} differs from dataset.json ({entry['bytes']})")
    problems: list[str] = []
    samples: dict[str, set[str]] = {}
    targets = 0
    tar = _TarMembers(loc, hashed=True)
    try:
        for mname, data in tar:
            if deep:
                targets += _check_member(name, mname, data, samples, problems)
        digest = tar.drain_hexdigest()
    except ShardError as e:  # a member the format refuses, a truncated tar, a bad header
        rep.errors.append(f"{name}: {e.problem}")
        return
    except (tarfile.TarError, OSError, ValueError) as e:
        rep.errors.append(f"{name}: unreadable: {e}")
        return
    finally:
        tar.close()
    if digest != entry["sha256"]:
        rep.errors.append(
            f"{name}: checksum mismatch (sha256 {digest[:12]}..., dataset.json {entry['sha256'][:12]}...)"
        )
        return  # anything else wrong in it would follow from the damage
    if deep:
        rep.errors += problems
        _check_samples(name, entry, samples, targets, manifest_keys, rep)


def _check_member(name: str, mname: str, data: bytes, samples: dict[str, set[str]], problems: list[str]) -> int:
    """Notes a member's extension under its sample key; a json member's key, metadata and
    targets are checked (problems appended). Returns the number of targets it holds."""
    key, _, ext = mname.partition(".")
    samples.setdefault(key, set()).add(ext)
    if ext != "json":
        return 0
    try:
        check_key(key)
        image, tlist = parse_metadata(json.loads(data))
        for t in tlist:
            validate_target(t, image.height, image.width)
        return len(tlist)
    except (ValueError, FormatError) as e:
        problems.append(f"{name}: member {mname}: {e}")
        return 0


def _check_samples(
    name: str,
    entry: dict[str, Any],
    samples: dict[str, set[str]],
    targets: int,
    manifest_keys: set[str],
    rep: VerifyReport,
) -> None:
    """A shard's samples against the format (a json and an image each), the manifest's keys
    and dataset.json's counts."""
    for key, exts in samples.items():
        if "json" not in exts:
            rep.errors.append(f"{name}: sample {key} has no json")
        if not exts & {"jpg", "png"}:
            rep.errors.append(f"{name}: sample {key} has no image")
    if set(samples) != manifest_keys:
        rep.errors.append(f"{name}: {len(set(samples) ^ manifest_keys)} keys differ between the shard and the manifest")
    if len(samples) != entry["samples"] or targets != entry["targets"]:
        rep.errors.append(
            f"{name}: holds {len(samples)} samples / {targets} targets, dataset.json says "
            f"{entry['samples']} / {entry['targets']}"
        )
