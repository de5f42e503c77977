"""Damaged splits as one clear error: a cheap check before a long job reads a split, and one
exception type for whatever a damaged shard makes the readers raise.

    check_split(split_dir)          # before training/evaluation starts: metadata only, no shard read
    for sample in guarded(reader.samples(), split_dir): ...   # reader errors -> ShardError

``check_split`` costs a stat per shard and a read of the manifest's key and shard columns: a
missing or resized shard, a missing manifest, or dataset.json counts that disagree with the
manifest fail in a second, before Ray starts workers or a model is loaded, instead of as a
worker error that Ray Train would retry. What only reading the bytes can find (a checksum
mismatch, a truncated tar that kept its size, a member that breaks the format) the readers
raise while reading; ``guarded`` turns those exceptions (ChecksumError, tar errors, a missing
file, a record without its json or image member) into ShardError, one line naming the shard
where the exception does. `unilseg shards verify` is the full check.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from common.errors import ShardError, UniLSegError, describe
from shards import storage
from shards.layout import MANIFEST
from shards.manifest import read_dataset_json, read_manifest

T = TypeVar("T")
_VERIFY_HINT = "`unilseg shards verify` checks the whole split"


def check_split(split_dir: str | os.PathLike) -> dict[str, Any]:
    """Checks a split's metadata against its files; returns its dataset.json.

    Every shard dataset.json lists exists with the listed size; a split marked complete has
    its manifest.parquet; the manifest's samples and targets per shard (and in total) are
    the counts dataset.json gives. The split may be a local path or a URL (one listing of it,
    no shard read).

    Raises:
        ShardError: the first problem found, naming the shard or file.
    """
    split_dir = storage.absolute(split_dir)
    info = read_dataset_json(split_dir)
    if not info:
        raise ShardError(f"{split_dir}: no dataset.json: not a shard split")
    sizes = _file_sizes(split_dir)
    entries = info.get("shards", [])
    for entry in entries:
        path = storage.join(split_dir, entry["name"])
        size = sizes.get(entry["name"])
        if size is None:
            raise ShardError(f"{path}: shard listed in dataset.json is missing ({_VERIFY_HINT})")
        if size != entry["bytes"]:
            raise ShardError(
                f"{path}: {size} bytes, dataset.json says {entry['bytes']} (truncated or replaced; {_VERIFY_HINT})"
            )
    manifest_path = storage.join(split_dir, MANIFEST)
    if info.get("status") == "complete" and MANIFEST not in sizes:
        raise ShardError(f"{manifest_path} is missing (dataset.json says the split is complete)")
    try:
        manifest = read_manifest(split_dir, columns=["key", "shard"])
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for an unreadable file
        raise ShardError(f"{manifest_path}: unreadable: {describe(e)}") from e
    shards, keys = manifest.column("shard").to_pylist(), manifest.column("key").to_pylist()
    targets = Counter(shards)
    samples = Counter(shard for shard, _ in set(zip(shards, keys)))
    for entry in entries:
        name = entry["name"]
        if (samples[name], targets[name]) != (entry.get("samples"), entry.get("targets")):
            raise ShardError(
                f"{storage.join(split_dir, name)}: the manifest has {samples[name]} samples / {targets[name]} "
                f"targets, dataset.json says {entry.get('samples')} / {entry.get('targets')}"
            )
    counts = info.get("counts", {})
    listed = (sum(e.get("samples", 0) for e in entries), sum(e.get("targets", 0) for e in entries))
    if (counts.get("samples"), counts.get("targets")) != listed:
        raise ShardError(
            f"{split_dir}: dataset.json counts {counts.get('samples')} samples / "
            f"{counts.get('targets')} targets, its shards {listed[0]} / {listed[1]}"
        )
    return info


def check_shards(split_dir: str | os.PathLike) -> None:
    """Reads every shard of a split once: its sha256 against dataset.json and the form of its
    members (regular files named KEY.ext only); what check_split cannot see without reading.

    Raises:
        ShardError: the first problem, naming the shard (`unilseg shards verify` lists them all).
    """
    from shards.verify import verify_split  # verify reads shards through the reader: a heavier import

    report = verify_split(split_dir, deep=False)
    if report.errors:
        more = f" (and {len(report.errors) - 1} more problem(s): {_VERIFY_HINT})" if len(report.errors) > 1 else ""
        raise ShardError(f"{storage.join(storage.absolute(split_dir), report.errors[0])}{more}")


def _file_sizes(split_dir: str) -> dict[str, int]:
    """{file name: size} of the regular files directly in a split (one listing)."""
    fs, root = storage.filesystem(split_dir)
    fs.invalidate_cache(root)  # another process may have written since this one last listed
    try:
        listed = fs.ls(root, detail=True)
    except FileNotFoundError:
        return {}
    return {
        entry["name"].rstrip("/").rsplit("/", 1)[-1]: int(entry["size"])
        for entry in listed
        if entry.get("type") == "file"
    }


def as_shard_error(e: BaseException, where: str | os.PathLike) -> BaseException:
    """The exception a reader raised on a damaged split, as one line naming the shard.

    Args:
        e: what the reader raised.
        where: the split (or shard) being read, named when the exception does not say.

    Returns:
        a ShardError for read failures (checksum, tar, missing file, a record without its json
        or image member); ``e`` itself when it is already a user error or not a read failure.
    """
    if isinstance(e, UniLSegError):
        return e
    # the reader appends the shard's path to the arguments of what reading it raised
    url = next((a for a in reversed(getattr(e, "args", ())[1:]) if isinstance(a, str) and a.endswith(".tar")), None)
    if isinstance(e, KeyError):
        member = str(e.args[0]) if e.args else "?"
        if not member.isidentifier():  # tarfile's own KeyError (a link to a member that is not there)
            return ShardError(f"{url or where}: a member that is not a regular file: {member}")
        return ShardError(
            f"{where}: a sample lacks its {member!r} member: a shard holds a member with an odd "
            f"name or type ({_VERIFY_HINT} and names it)"
        )
    if isinstance(e, FileNotFoundError):
        return ShardError(f"{e.filename or url or where}: shard is missing")
    if isinstance(e, (tarfile.TarError, EOFError)):
        return ShardError(f"{url or where}: not a readable tar ({type(e).__name__}: {describe(e).split(chr(10))[0]})")
    if isinstance(e, OSError):  # ChecksumError is an IOError whose message names the shard
        first = str(e.args[0]) if e.args else describe(e)
        return ShardError(first if url is None or url in first else f"{url}: {first}")
    if isinstance(e, json.JSONDecodeError):
        return ShardError(f"{url or where}: a sample's json does not parse: {e}")
    return e


def guarded(items: Iterable[T], where: str | os.PathLike) -> Iterator[T]:
    """Yields ``items``; an exception raised while *reading* the next one becomes as_shard_error's.

    Only ``next()`` is guarded: what the caller does with an item raises as it would.
    """
    it = iter(items)
    while True:
        try:
            item = next(it)
        except StopIteration:
            return
        except Exception as e:
            err = as_shard_error(e, where)
            if err is e:
                raise
            raise err from e
        yield item


def worker_message(e: BaseException) -> str:
    """The original one-line message of an exception re-raised by a DataLoader worker, whose
    message torch replaces with "Caught X in DataLoader worker process N. Original Traceback: ..."."""
    text = str(e)
    if not text.startswith("Caught ") or "Original Traceback" not in text:
        return text
    name = f"{type(e).__module__}.{type(e).__qualname__}: "
    tail = text.rsplit(name, 1)[-1] if name in text else text.strip().splitlines()[-1]
    return tail.strip()
