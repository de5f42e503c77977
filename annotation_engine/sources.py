"""Unlabeled inputs: listing them as a Ray Data source, and the index that spares re-reading them.

Listing streams. The driver only splits the work: a folder (or URL prefix) becomes one
listing task per subdirectory plus one for the files directly in it, a glob one task, an
explicit list of files tasks of ``_FILES_PER_TASK``. Each task yields rows (path, size,
version) as it walks, so the engine starts on the first images while the rest is still
being listed, and no path list is ever held by the driver. ``version`` says whether a file
changed: the modification time in nanoseconds for local files, the ETag (or modification
time) for objects; an empty version means "unknown": such a file is always read.

Entries a local walk cannot take (a symlink loop, a broken link, an unreadable directory)
are not passed over silently: they come out as rows with a ``problem`` and are quarantined
with it. An input the user named that is not there (no such file or folder, a link loop or
broken link named directly) is an error before anything starts.

Each row names its listing partition (``part``): the source index
(``annotation_engine.source_index``, one file per listing partition) maps (path, size, version)
to the sha256 of the file's bytes. A scheduled re-annotation over an unchanged bucket compares
listings with it and reads nothing; new or changed files are read and hashed.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import stat
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from annotation_engine.ledger_group import as_group
from annotation_engine.source_index import INDEX_SCHEMA, partition_id, read_index, write_index  # noqa: F401
from common.errors import MissingInputError
from shards import storage
from shards.images import IMAGE_FILE_SUFFIXES

_FILES_PER_TASK = 1000  # explicit files per listing task
_CHECKED_URLS = 32  # named URLs checked one by one before the run starts (a command line's worth)
_ROWS_PER_BLOCK = 256  # rows a listing task yields at a time
LISTING_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("size", pa.int64()),
        ("version", pa.string()),
        ("problem", pa.string()),
        ("part", pa.string()),  # the listing partition (source_index.partition_id): its source index file
    ]
)


def _is_image(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_FILE_SUFFIXES


# ---- listing ---------------------------------------------------------------------------


def _walk_local(start: str, recursive: bool = True, root: str | None = None) -> Iterator[tuple[str, int, str, str]]:
    """(path, size, version, problem) of the image files under a local folder, in sorted order.

    Args:
        start: the folder to list.
        recursive: list subfolders too; False lists the folder's own files and the folders
            its symbolic links point to (real subfolders are other listing tasks).
        root: the folder the whole listing started from (a link back to it is a loop).

    Symlinked folders are followed once; a loop, a broken link or an unreadable entry is
    yielded with its problem instead of being skipped in silence.
    """
    seen: set[tuple[int, int]] = set()
    if root is not None and os.path.realpath(root) != os.path.realpath(start):
        with contextlib.suppress(OSError):
            st = os.stat(root)
            seen.add((st.st_dev, st.st_ino))

    def walk(d: str, deep: bool) -> Iterator[tuple[str, int, str, str]]:
        try:
            st = os.stat(d)
            if (st.st_dev, st.st_ino) in seen:
                yield d, 0, "", "symlink loop: this folder was already listed (skipped)"
                return
            seen.add((st.st_dev, st.st_ino))
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as e:
            yield d, 0, "", f"cannot list folder: {e.strerror or e}"
            return
        for e in entries:
            try:
                is_dir, is_link = e.is_dir(), e.is_symlink()
                if not is_dir and is_link and not os.path.exists(e.path):
                    yield e.path, 0, "", "broken symbolic link"
                    continue
            except OSError as err:
                yield e.path, 0, "", f"cannot read entry: {err.strerror or err}"
                continue
            if is_dir:
                if deep or is_link:
                    yield from walk(e.path, True)
            elif _is_image(e.name):
                try:
                    st = e.stat()
                except OSError as err:
                    yield e.path, 0, "", f"cannot read entry: {err.strerror or err}"
                    continue
                if stat.S_ISREG(st.st_mode):
                    yield e.path, st.st_size, str(st.st_mtime_ns), ""

    yield from walk(start, recursive)


def _object_version(info: dict[str, Any]) -> str:
    etag = info.get("ETag") or info.get("etag") or info.get("md5Hash")
    if etag:
        return str(etag).strip('"')
    mtime = info.get("mtime") or info.get("LastModified") or info.get("updated")
    return f"mtime:{mtime}" if mtime else ""


def _walk_url(url: str, recursive: bool = True) -> Iterator[tuple[str, int, str, str]]:
    """Object rows under a prefix, one "directory" (one paginated listing) at a time: the task
    holds one level's page of names, never the whole prefix's listing."""
    fs, root = storage.filesystem(url)
    for _, _dirs, files in fs.walk(root, maxdepth=None if recursive else 1, detail=True):
        for name in sorted(files):
            info = files[name]
            path = info.get("name") or name
            if info.get("type", "file") == "file" and _is_image(path):
                yield fs.unstrip_protocol(path), int(info.get("size") or 0), _object_version(info), ""


def _stat(loc: Any) -> tuple[str, int, str, str]:
    """One explicitly named file (kept whatever its extension: a bad one is quarantined)."""
    path = os.fspath(loc)
    try:
        if storage.is_url(loc) and not storage.is_local(loc):
            fs, p = storage.filesystem(loc)
            info = fs.info(p)
            return path, int(info.get("size") or 0), _object_version(info), ""
        st = os.stat(storage.local_path(loc) or path)
        return path, st.st_size, str(st.st_mtime_ns), ""
    except OSError as e:
        return path, 0, "", f"cannot read: {e.strerror or e}"


def _glob(pattern: Any) -> Iterator[tuple[str, int, str, str]]:
    if storage.is_url(pattern):
        fs, p = storage.filesystem(pattern)
        paths = [storage.like(pattern, fs.unstrip_protocol(x)) for x in sorted(fs.glob(p))]
    else:
        paths = sorted(p for p in glob.glob(os.fspath(pattern), recursive=True) if os.path.isfile(p))
    for p in paths:
        yield _stat(p)


def partitions(images: str | os.PathLike | list) -> list[tuple[str, Any]]:
    """How the listing is split into tasks: ("tree", folder), ("flat", folder), ("glob", pattern)
    or ("files", [paths]). Only a folder's top level is looked at here (its subfolders).

    Raises:
        MissingInputError: a local pattern that matches nothing, or a named input that is not
            there (``_check_named``): checked here, before Ray starts or anything is written.
    """
    if isinstance(images, (list, tuple)):
        out: list[tuple[str, Any]] = []
        files: list[str] = []
        remote_named = sum(1 for x in images if storage.is_url(os.fspath(x)) and not storage.is_local(os.fspath(x)))
        for x in images:
            if glob.has_magic(os.fspath(x)) or _is_dir(x):
                out += partitions(x)
            else:
                _check_named(x, remote=remote_named <= _CHECKED_URLS)
                files.append(x)
        for i in range(0, len(files), _FILES_PER_TASK):
            out.append(("files", files[i : i + _FILES_PER_TASK]))
        return out
    s = os.fspath(images)  # a Location stays one below: its options reach every listing and read
    if glob.has_magic(s):
        if not storage.is_url(s) and not glob.glob(s, recursive=True):
            raise MissingInputError(f"no file matches {s}")
        return [("glob", images)]
    if not _is_dir(images):
        _check_named(images)
        return [("files", [images])]
    subdirs = _subdirs(images)
    return [("flat", images)] + [("tree", (d, images)) for d in subdirs]


def _check_named(loc: str, remote: bool = True) -> None:
    """Fails, before anything starts, on an input the user named that is not there.

    Every local path is checked (one stat); a URL with one request, unless ``remote`` is False
    (a long list of URLs: its listing tasks stat each anyway, and quarantine a missing one).

    Raises:
        MissingInputError: no such file or folder, a symbolic link loop, a broken link.
    """
    if (p := storage.local_path(loc)) is None:
        if remote and not storage.exists(loc):
            raise MissingInputError(f"no image at {loc}: no such file or folder")
        return
    try:
        os.stat(p)
    except OSError as e:
        if e.errno == errno.ELOOP:
            why = "a symbolic link loop"
        elif e.errno == errno.ENOENT and os.path.islink(p):
            why = "a broken symbolic link"
        elif e.errno == errno.ENOENT:
            why = "no such file or folder"
        else:
            why = e.strerror or str(e)
        raise MissingInputError(f"no image at {loc}: {why}") from None


def _is_dir(loc: str) -> bool:
    if (p := storage.local_path(loc)) is not None:
        return os.path.isdir(p)
    fs, path = storage.filesystem(loc)
    return fs.isdir(path)


def _subdirs(loc: str) -> list[str]:
    if (p := storage.local_path(loc)) is not None:
        try:
            return sorted(e.path for e in os.scandir(p) if e.is_dir(follow_symlinks=False))
        except OSError:
            return []  # the flat task reports it
    fs, path = storage.filesystem(loc)
    urls = sorted(fs.unstrip_protocol(e["name"]) for e in fs.ls(path, detail=True) if e.get("type") == "directory")
    return [storage.like(loc, u) for u in urls]


def list_partition(kind: str, arg: Any) -> Iterator[tuple[str, int, str, str]]:
    """The rows of one listing task."""
    if kind in ("tree", "flat"):
        folder, root = arg if kind == "tree" else (arg, arg)
        if storage.local_path(folder) is not None:
            yield from _walk_local(storage.local_path(folder), kind == "tree", storage.local_path(root))
        else:
            yield from _walk_url(folder, kind == "tree")
    elif kind == "glob":
        yield from _glob(arg)
    else:
        for p in arg:
            yield _stat(p)


def _block(rows: list[tuple[str, int, str, str]], part: str) -> pa.Table:
    cols = [*(list(zip(*rows)) if rows else [[], [], [], []]), [part] * len(rows)]
    return pa.table([pa.array(c, t.type) for c, t in zip(cols, LISTING_SCHEMA)], schema=LISTING_SCHEMA)


class ListingDatasource(Datasource):
    """Ray Data source whose read tasks list the inputs, yielding blocks as they go."""

    def __init__(self, images: Any):
        self.parts = partitions(images)
        inputs = images if isinstance(images, (list, tuple)) else [images]
        # how every listed file is reached for reading: the inputs' own fsspec options, if any
        self.reach = next((x for x in inputs if storage.options_of(x)), None)

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(self, parallelism: int, **kwargs: Any) -> list[ReadTask]:
        tasks = []
        for kind, arg in self.parts:

            def read(kind: str = kind, arg: Any = arg) -> Iterator[pa.Table]:
                rows, part = [], partition_id(kind, arg)
                for row in list_partition(kind, arg):
                    rows.append(row)
                    if len(rows) >= _ROWS_PER_BLOCK:
                        yield _block(rows, part)
                        rows = []
                if rows:
                    yield _block(rows, part)

            meta = BlockMetadata(num_rows=None, size_bytes=None, input_files=None, exec_stats=None)
            tasks.append(ReadTask(read, meta, schema=LISTING_SCHEMA))
        return tasks

    def get_name(self) -> str:
        return "ListImages"


def as_rows(batch: dict[str, np.ndarray]) -> list[tuple[str, int, str]]:
    """(path, size, version) of a listing batch."""
    return list(zip(batch["path"].tolist(), batch["size"].tolist(), batch["version"].tolist()))


# ---- reading and hashing (a Ray Data task stage) ---------------------------------------


def read_and_hash(batch: dict[str, np.ndarray], ledger: Any, reach: Any = None) -> dict[str, list]:
    """Listed files -> the ones to annotate, with their bytes (a ``map_batches`` function).

    A file the source index knows unchanged is not read unless it must be annotated; every
    other file is read once, hashed, and its bytes go on with it. The ledger (a LedgerGroup,
    or a lone Ledger actor) drops what is done for this engine version and second copies of the
    same bytes. Files that cannot be listed or read go on with their problem, to be quarantined
    by the writer. ``reach``: a Location whose fsspec options every read takes (or None).
    """
    books = as_group(ledger)

    def _read(path: str) -> bytes:
        return storage.read_bytes(storage.like(reach, path) if reach is not None else path)

    parts = batch["part"].tolist() if "part" in batch else [""] * len(batch["path"])
    rows = list(
        zip(batch["path"].tolist(), batch["size"].tolist(), batch["version"].tolist(), batch["problem"].tolist(), parts)
    )
    ok = [r for r in rows if not r[3]]
    known = books.lookup([(p, size, v, part) for p, size, v, _, part in ok])
    out: dict[str, list] = {"path": [], "sha256": [], "data": [], "problem": []}
    claims, datas = [], []
    for (path, size, version, _, part), sha in zip(ok, known):
        data = None
        if sha is None:
            try:
                data = _read(path)
            except OSError as e:
                _emit(out, path, "", b"", f"cannot read: {e.strerror or e}")
                continue
            sha = hashlib.sha256(data).hexdigest()
        claims.append((path, sha, size, version, data is not None, part))
        datas.append(data)
    for (path, sha, *_), data, verdict in zip(claims, datas, books.claim(claims)):
        if verdict != "go":
            continue
        if data is None:  # unchanged file, but not done for this engine version
            try:
                data = _read(path)
            except OSError as e:
                _emit(out, path, sha, b"", f"cannot read: {e.strerror or e}")
                continue
        _emit(out, path, sha, data, "")
    for path, _, _, problem, _ in rows:
        if problem:
            _emit(out, path, "", b"", problem)
    return out


def _emit(out: dict[str, list], path: str, sha: str, data: bytes, problem: str) -> None:
    out["path"].append(path)
    out["sha256"].append(sha)
    out["data"].append(data)
    out["problem"].append(problem)


def images_fingerprint(images: str | os.PathLike) -> Any:
    """What identifies a set of unlabeled inputs for "is there anything new?" (the flows'
    stage markers): a local folder by its files' names, sizes and modification times;
    anything else (a URL, a glob) by its name, since listing it is the annotation's own
    first step (and the source index makes that cheap)."""
    s = os.fspath(images)
    if storage.is_url(s) or not os.path.isdir(s):
        return s
    return [(os.path.relpath(p, s), size, version) for p, size, version, _ in _walk_local(s)]
