"""Checks a split on disk: every shard present and intact, manifest and shards agreeing."""

from __future__ import annotations

import json
import os
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from shards.format import FormatError, parse_metadata, validate_target
from shards.keys import check_key
from shards.layout import DATASET_JSON, SHARD_PATTERN
from shards.manifest import read_dataset_json, read_manifest
from shards.writer import sha256_file


@dataclass
class VerifyReport:
    """What verification found in one split.

    Attributes:
        split_dir (str): the split checked.
        errors (list[str]): problems that make the split unusable as is.
        warnings (list[str]): things worth knowing (interrupted writer, leftover temp files).
    """

    split_dir: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def find_splits(path: str | os.PathLike) -> list[Path]:
    """A split dir itself, or every split dir (with dataset.json) below a dataset dir."""
    path = Path(path)
    if (path / DATASET_JSON).exists():
        return [path]
    return sorted(p.parent for p in path.rglob(DATASET_JSON))


def verify_split(split_dir: str | os.PathLike, deep: bool = True) -> VerifyReport:
    """Verifies one split.

    Args:
        split_dir: directory with dataset.json.
        deep: also open every shard and check its members against the manifest and format.
    """
    split_dir = Path(split_dir)
    rep = VerifyReport(str(split_dir))
    info = read_dataset_json(split_dir)
    if not info:
        rep.errors.append("dataset.json is missing")
        return rep
    if info.get("status") != "complete":
        rep.warnings.append("the last writer did not close (interrupted run): finished shards are checked; "
                            "re-run the job to complete the split")
    for tmp in split_dir.glob("*.tmp"):
        rep.warnings.append(f"leftover temp file {tmp.name} (removed by the next writer)")
    listed = [s["name"] for s in info.get("shards", [])]
    on_disk = sorted(p.name for p in split_dir.glob("shard-*.tar"))
    for name in sorted(set(on_disk) - set(listed)):
        rep.errors.append(f"{name} is on disk but not in dataset.json")
    try:
        manifest = read_manifest(split_dir, columns=["key", "shard", "target_index", "task"])
    except Exception as e:  # unreadable parquet
        rep.errors.append(f"manifest unreadable: {e}")
        return rep
    rows_by_shard: Counter[str] = Counter(manifest.column("shard").to_pylist())
    keys_by_shard: dict[str, set[str]] = {}
    for key, shard in zip(manifest.column("key").to_pylist(), manifest.column("shard").to_pylist()):
        keys_by_shard.setdefault(shard, set()).add(key)
    for i, entry in enumerate(info.get("shards", [])):
        name = entry["name"]
        if name != SHARD_PATTERN.format(i):
            rep.errors.append(f"shard {i} is named {name}, expected {SHARD_PATTERN.format(i)}")
        path = split_dir / name
        if not path.exists():
            rep.errors.append(f"{name} is missing")
            continue
        if path.stat().st_size != entry["bytes"]:
            rep.errors.append(f"{name}: size {path.stat().st_size} differs from dataset.json ({entry['bytes']})")
        digest = sha256_file(path)
        if digest != entry["sha256"]:
            rep.errors.append(f"{name}: checksum mismatch (sha256 {digest[:12]}..., dataset.json "
                              f"{entry['sha256'][:12]}...)")
            continue
        if rows_by_shard.get(name, 0) != entry["targets"]:
            rep.errors.append(f"{name}: manifest has {rows_by_shard.get(name, 0)} targets, "
                              f"dataset.json says {entry['targets']}")
        if deep:
            _check_members(path, keys_by_shard.get(name, set()), entry, rep)
    for shard in sorted(set(rows_by_shard) - set(listed)):
        rep.errors.append(f"manifest lists shard {shard}, which dataset.json does not")
    return rep


def _check_members(path: Path, manifest_keys: set[str], entry: dict, rep: VerifyReport) -> None:
    """Opens a shard and checks its samples against the manifest and the format."""
    name = path.name
    keys: list[str] = []
    targets = 0
    try:
        with tarfile.open(path) as tar:
            members = {m.name: m for m in tar.getmembers()}
            for mname, member in members.items():
                key, _, ext = mname.partition(".")
                if ext != "json":
                    continue
                keys.append(key)
                if not (f"{key}.jpg" in members or f"{key}.png" in members):
                    rep.errors.append(f"{name}: sample {key} has no image")
                doc = json.loads(tar.extractfile(member).read())
                image, tlist = parse_metadata(doc)
                check_key(key)
                for t in tlist:
                    validate_target(t, image.height, image.width)
                targets += len(tlist)
    except (tarfile.TarError, OSError, ValueError, FormatError) as e:
        rep.errors.append(f"{name}: unreadable or invalid: {e}")
        return
    if set(keys) != manifest_keys:
        rep.errors.append(f"{name}: {len(set(keys) ^ manifest_keys)} keys differ between the shard and the manifest")
    if len(keys) != entry["samples"] or targets != entry["targets"]:
        rep.errors.append(f"{name}: holds {len(keys)} samples / {targets} targets, dataset.json says "
                          f"{entry['samples']} / {entry['targets']}")
