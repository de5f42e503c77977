"""Where datasets live: a local path or an fsspec URL, behind one small set of functions.

A *location* is a string: a local path (relative or absolute, or ``file://...``) or a URL
of any fsspec filesystem (``s3://bucket/x`` through s3fs, ``gs://``, ``memory://``, ...).
Everything in ``shards`` that reads or writes a split goes through these functions; no
other module branches on "local or remote". Local paths keep their plain-file speed: they
use ``open``/``os`` directly (and lock files: ``shards.locks``), URLs go through fsspec.

Credentials and endpoints come from where each backend looks for them: for S3 the AWS
credential chain (environment, ``~/.aws``, instance roles) and ``AWS_ENDPOINT_URL`` for
S3-compatible stores; fsspec's configuration (``FSSPEC_<PROTOCOL>_<OPTION>`` variables,
``~/.config/fsspec``); and ``storage_options``, a dict handed to fsspec as is. Nothing here
writes any of them anywhere.

Visibility: a file appears under its final name complete or not at all. ``write_bytes``
writes a local temp name and renames it, or sends one PUT; ``publish`` renames a staged
local file into place, or uploads it (one PUT, or one multipart upload that the store
completes at the end). An interrupted upload leaves no object under the name (an
unfinished multipart upload is invisible; a bucket lifecycle rule reclaims its parts).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

StorageOptions = dict[str, Any] | None
_READ_BLOCK = 8 << 20  # bytes per ranged GET when streaming a remote file (readahead cache)
_HASH_CHUNK = 1 << 20


def _fspath(loc: str | os.PathLike) -> str:
    return os.fspath(loc)


def is_url(loc: str | os.PathLike) -> bool:
    """True for ``protocol://...`` locations (``file://`` included)."""
    return "://" in _fspath(loc)


def local_path(loc: str | os.PathLike) -> str | None:
    """The local file path of a location, or None if it is not on the local filesystem."""
    s = _fspath(loc)
    if not is_url(s):
        return s
    if s.startswith("file://"):
        return s[len("file://") :]
    return None


def is_local(loc: str | os.PathLike) -> bool:
    return local_path(loc) is not None


def absolute(loc: str | os.PathLike) -> str:
    """A location that means the same from any working directory: a URL as given, a local
    path made absolute (symlinks resolved)."""
    return _fspath(loc) if is_url(loc) else str(Path(loc).resolve())


def filesystem(loc: str | os.PathLike, storage_options: StorageOptions = None) -> tuple[Any, str]:
    """(fsspec filesystem, path within it) of a location."""
    import fsspec.core  # imported on first use: local-only runs never need it

    return fsspec.core.url_to_fs(_fspath(loc), **(storage_options or {}))


def join(loc: str | os.PathLike, *parts: str) -> str:
    """``loc/part/...``, with ``/`` for URLs and the OS separator for local paths."""
    s = _fspath(loc)
    if not is_url(s):
        return os.path.join(s, *parts)
    return "/".join([s.rstrip("/"), *parts])


def name(loc: str | os.PathLike) -> str:
    """The last component of a location (a file or directory name)."""
    return _fspath(loc).rstrip("/").rsplit("/", 1)[-1] if is_url(loc) else os.path.basename(_fspath(loc))


def exists(loc: str | os.PathLike, storage_options: StorageOptions = None) -> bool:
    if (p := local_path(loc)) is not None:
        return os.path.exists(p)
    fs, path = filesystem(loc, storage_options)
    return fs.exists(path)


def isfile(loc: str | os.PathLike, storage_options: StorageOptions = None) -> bool:
    """True if a file (not a directory or prefix) is there."""
    if (p := local_path(loc)) is not None:
        return os.path.isfile(p)
    fs, path = filesystem(loc, storage_options)
    fs.invalidate_cache(path)
    return bool(fs.isfile(path))


def file_version(loc: str | os.PathLike, storage_options: StorageOptions = None) -> list:
    """What changes when a file is rewritten: [size, mtime in ns] of a local file, [size,
    ETag or modification time] of a remote one (FileNotFoundError if there is none)."""
    if (p := local_path(loc)) is not None:
        st = os.stat(p)
        return [st.st_size, st.st_mtime_ns]
    fs, path = filesystem(loc, storage_options)
    fs.invalidate_cache(path)  # another process may have replaced it
    info = fs.info(path)
    stamp = next(
        (
            info[k]
            for k in ("ETag", "etag", "md5Hash", "generation", "LastModified", "mtime", "created")
            if info.get(k) is not None
        ),
        None,
    )
    return [int(info.get("size") or 0), str(stamp)]


def size(loc: str | os.PathLike, storage_options: StorageOptions = None) -> int:
    """Bytes of a file (FileNotFoundError if there is none)."""
    if (p := local_path(loc)) is not None:
        return os.path.getsize(p)
    fs, path = filesystem(loc, storage_options)
    return int(fs.size(path))


def open_read(loc: str | os.PathLike, storage_options: StorageOptions = None) -> IO[bytes]:
    """A binary file open for reading, streamed: a remote file is fetched in _READ_BLOCK
    ranges as it is read (bounded memory), never copied whole first."""
    if (p := local_path(loc)) is not None:
        return open(p, "rb", buffering=0)
    fs, path = filesystem(loc, storage_options)
    return fs.open(path, "rb", block_size=_READ_BLOCK, cache_type="readahead")


def read_bytes(loc: str | os.PathLike, storage_options: StorageOptions = None) -> bytes:
    with open_read(loc, storage_options) as f:
        return f.read()


def write_bytes(loc: str | os.PathLike, data: bytes, storage_options: StorageOptions = None) -> None:
    """Writes a whole file so that it appears complete or not at all (temp + rename, or one PUT)."""
    if (p := local_path(loc)) is not None:
        tmp = p + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, p)
        return
    fs, path = filesystem(loc, storage_options)
    fs.pipe_file(path, data)


def append_text(loc: str | os.PathLike, text: str, storage_options: StorageOptions = None) -> None:
    """Appends text to a file. Object stores cannot append: the object is read and rewritten whole."""
    if (p := local_path(loc)) is not None:
        with open(p, "a", encoding="utf-8") as f:
            f.write(text)
        return
    old = read_bytes(loc, storage_options) if exists(loc, storage_options) else b""
    write_bytes(loc, old + text.encode("utf-8"), storage_options)


def makedirs(loc: str | os.PathLike, storage_options: StorageOptions = None) -> None:
    """Creates a directory and its parents (object stores have none: nothing to do there)."""
    if (p := local_path(loc)) is not None:
        os.makedirs(p, exist_ok=True)


def listdir(loc: str | os.PathLike, storage_options: StorageOptions = None) -> list[str]:
    """Names of the entries directly in a directory or prefix ([] if there is none).

    Only writers, the commit step and verification list a split: readers never discover
    shards this way (dataset.json lists them)."""
    if (p := local_path(loc)) is not None:
        return sorted(os.listdir(p)) if os.path.isdir(p) else []
    fs, path = filesystem(loc, storage_options)
    fs.invalidate_cache(path)  # another process may have written since this one last looked
    try:
        entries = fs.ls(path, detail=False)
    except FileNotFoundError:
        return []
    return sorted({e.rstrip("/").rsplit("/", 1)[-1] for e in entries} - {""})


def find(loc: str | os.PathLike, filename: str, storage_options: StorageOptions = None) -> list[str]:
    """Locations of every file called ``filename`` at or below ``loc``, sorted."""
    if (p := local_path(loc)) is not None:
        root = Path(p)
        found = sorted(root.rglob(filename)) if root.is_dir() else []
        return [join(loc, *f.relative_to(root).parts) for f in found]  # in the form loc was given
    fs, path = filesystem(loc, storage_options)
    fs.invalidate_cache(path)
    found = [f for f in fs.find(path) if f.rsplit("/", 1)[-1] == filename]
    base = _fspath(loc).rstrip("/")
    return sorted(base + f[len(path.rstrip("/")) :] for f in found)


def remove(loc: str | os.PathLike, storage_options: StorageOptions = None) -> None:
    """Deletes a file if it exists."""
    if (p := local_path(loc)) is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)
        return
    fs, path = filesystem(loc, storage_options)
    with contextlib.suppress(FileNotFoundError):
        fs.rm_file(path)


def sha256(loc: str | os.PathLike, storage_options: StorageOptions = None) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open_read(loc, storage_options) as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def staging_dir(loc: str | os.PathLike) -> Path:
    """Local directory where files bound for a location are written before ``publish``:
    the location itself when local (a rename is then atomic), else a directory under the
    system temp dir named after the location, so that the next run on this machine finds
    (and removes) what a killed run left there."""
    if (p := local_path(loc)) is not None:
        return Path(p)
    digest = hashlib.sha1(_fspath(loc).rstrip("/").encode("utf-8")).hexdigest()[:16]
    d = Path(tempfile.gettempdir()) / "unilseg-staging" / digest
    d.mkdir(parents=True, exist_ok=True)
    return d


def publish(staged: Path, loc: str | os.PathLike, storage_options: StorageOptions = None) -> None:
    """Makes a finished local file visible at ``loc`` in one step, and drops the local copy.

    Local: a rename (``staged`` is in ``staging_dir``, on the same filesystem). Remote: one
    upload (s3fs sends a multipart upload for large files, completed only at the end)."""
    if (p := local_path(loc)) is not None:
        if os.path.dirname(os.path.abspath(staged)) == os.path.dirname(os.path.abspath(p)):
            os.replace(staged, p)
        else:
            shutil.move(str(staged), p)
        return
    fs, path = filesystem(loc, storage_options)
    fs.put_file(str(staged), path)
    os.unlink(staged)


def put_file(src: str | os.PathLike, loc: str | os.PathLike, storage_options: StorageOptions = None) -> None:
    """Makes a copy of the local file ``src`` visible at ``loc`` in one step; ``src`` is kept.

    Local: a copy under a temp name, then a rename. Remote: one upload."""
    if (p := local_path(loc)) is not None:
        tmp = p + ".tmp"
        shutil.copyfile(src, tmp)
        os.replace(tmp, p)
        return
    fs, path = filesystem(loc, storage_options)
    fs.put_file(os.fspath(src), path)


def copy(src: str | os.PathLike, dst: str | os.PathLike, storage_options: StorageOptions = None) -> None:
    """Copies a file to another name on the same store so that ``dst`` appears complete.

    Local: a hard link (no bytes copied) or a copy, under a temp name, then a rename.
    Remote: a copy made by the store itself (S3 CopyObject: nothing passes through here)."""
    if (p := local_path(dst)) is not None:
        tmp = p + ".tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        try:
            os.link(local_path(src) or _fspath(src), tmp)
        except OSError:
            shutil.copyfile(local_path(src) or _fspath(src), tmp)
        os.replace(tmp, p)
        return
    fs, path = filesystem(dst, storage_options)
    _, src_path = filesystem(src, storage_options)
    fs.cp_file(src_path, path)


@contextlib.contextmanager
def staged_output_dir(loc: str | os.PathLike, storage_options: StorageOptions = None) -> Iterator[Path]:
    """A local directory to write files into; they appear at ``loc`` when the block ends
    without error.

    Local: the directory itself (created), files written in place. Remote: a fresh temp
    directory whose files are uploaded one by one at the end (each appears complete; the
    set appears file by file) and which is removed afterwards, error or not."""
    if (p := local_path(loc)) is not None:
        os.makedirs(p, exist_ok=True)
        yield Path(p)
        return
    with tempfile.TemporaryDirectory(prefix="unilseg-out-") as tmp:
        yield Path(tmp)
        for f in sorted(Path(tmp).rglob("*")):
            if f.is_file():
                put_file(f, join(loc, *f.relative_to(tmp).parts), storage_options)


# Local copies of remote files for readers that need a real file (memory-mapped checkpoints):
# at most this many bytes are kept (least recently used go first; the file just fetched stays).
CACHE_BYTES = int(os.environ.get("UNILSEG_CACHE_BYTES", 8 << 30))


def cache_dir() -> Path:
    """Where local_copy keeps its files (UNILSEG_CACHE_DIR, else under the system temp dir)."""
    d = Path(os.environ.get("UNILSEG_CACHE_DIR") or Path(tempfile.gettempdir()) / "unilseg-cache")
    d.mkdir(parents=True, exist_ok=True)
    return d


def local_copy(loc: str | os.PathLike, storage_options: StorageOptions = None) -> Path:
    """A local file holding the bytes of ``loc``: the path itself when local; else a copy in
    a bounded cache (cache_dir, CACHE_BYTES), fetched once per version of the file (its
    size and ETag or modification time) and shared by the processes of a machine.

    Raises:
        FileNotFoundError: nothing is at ``loc``.
    """
    if (p := local_path(loc)) is not None:
        if not os.path.isfile(p):
            raise FileNotFoundError(p)
        return Path(p)
    version = file_version(loc, storage_options)
    key = hashlib.sha1(json.dumps([_fspath(loc), version]).encode("utf-8")).hexdigest()[:24]
    d = cache_dir()
    cached = d / f"{key}-{name(loc)}"
    if cached.is_file():
        os.utime(cached)  # most recently used
        return cached
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".fetch-")  # a unique name: processes may fetch at once
    try:
        with os.fdopen(fd, "wb") as out, open_read(loc, storage_options) as f:
            shutil.copyfileobj(f, out, _READ_BLOCK)
        os.replace(tmp, cached)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _trim_cache(d, keep=cached)
    return cached


def _trim_cache(d: Path, keep: Path) -> None:
    entries = []
    for f in d.iterdir():
        with contextlib.suppress(FileNotFoundError):
            if f.is_file() and not f.name.startswith(".fetch-") and f != keep:
                st = f.stat()
                entries.append((st.st_mtime, st.st_size, f))
    total = sum(s for _, s, _ in entries) + keep.stat().st_size
    for _, s, f in sorted(entries):  # oldest first
        if total <= CACHE_BYTES:
            break
        with contextlib.suppress(FileNotFoundError):  # a reader that has it open keeps its bytes
            f.unlink()
        total -= s


def same_filesystem(loc: str | os.PathLike, path: str, storage_options: StorageOptions = None) -> str:
    """The location of ``path``, a path within the filesystem of ``loc`` as a library that was
    handed that filesystem reports it (Ray Train's ``Checkpoint.path``): the path itself for a
    local ``loc``, else a URL of the same protocol."""
    if is_local(loc):
        return path
    fs, _ = filesystem(loc, storage_options)
    return fs.unstrip_protocol(path)


def arrow_filesystem(loc: str | os.PathLike, storage_options: StorageOptions = None) -> tuple[Any, str]:
    """(pyarrow filesystem or None, path) for libraries that take pyarrow filesystems (Ray
    Train's ``RunConfig(storage_path, storage_filesystem)``): None and the path for a local
    location; for a URL, the same fsspec filesystem (and storage_options) this module uses,
    wrapped for pyarrow, and the path within it."""
    if (p := local_path(loc)) is not None:
        return None, p
    import pyarrow.fs

    fs, path = filesystem(loc, storage_options)
    return pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(fs)), path


@contextlib.contextmanager
def staged_output(loc: str | os.PathLike, storage_options: StorageOptions = None) -> Iterator[Path]:
    """A local path to write a file to; published at ``loc`` when the block ends without error
    (removed otherwise)."""
    staged = staging_dir(parent(loc)) / (name(loc) + ".tmp")
    try:
        yield staged
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            staged.unlink()
        raise
    publish(staged, loc, storage_options)


def parent(loc: str | os.PathLike) -> str:
    """The directory or prefix holding a location."""
    s = _fspath(loc)
    if not is_url(s):
        return os.path.dirname(s)
    return s.rstrip("/").rsplit("/", 1)[0]


class Masked:
    """A value that never shows itself when printed: storage options (they may hold keys) on
    their way through code that records or displays its arguments, such as Ray Train's run
    state (its train_loop_config is shown on the dashboard). ``.value`` is the value."""

    def __init__(self, value: Any):
        self.value = value

    def __repr__(self) -> str:
        return "Masked(...)"

    __str__ = __repr__
