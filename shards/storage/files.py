"""The storage functions: each reads or writes one location, a local path with plain file
calls or a URL through fsspec with the options its Location carries (see shards.storage)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from shards.storage.location import PathOrLocation, join, like, local_path, name, options_of, parent

READ_BLOCK = 8 << 20  # bytes per ranged GET when streaming a remote file (readahead cache)
_HASH_CHUNK = 1 << 20


def filesystem(loc: PathOrLocation) -> tuple[Any, str]:
    """(fsspec filesystem, path within it) of a location, built with its options."""
    import fsspec.core  # imported on first use: local-only runs never need it

    return fsspec.core.url_to_fs(os.fspath(loc), **options_of(loc))


def exists(loc: PathOrLocation) -> bool:
    if (p := local_path(loc)) is not None:
        return os.path.exists(p)
    fs, path = filesystem(loc)
    return fs.exists(path)


def isfile(loc: PathOrLocation) -> bool:
    """True if a file (not a directory or prefix) is there."""
    if (p := local_path(loc)) is not None:
        return os.path.isfile(p)
    fs, path = filesystem(loc)
    fs.invalidate_cache(path)
    return bool(fs.isfile(path))


def file_version(loc: PathOrLocation) -> list:
    """What changes when a file is rewritten: [size, mtime in ns] of a local file, [size,
    ETag or modification time] of a remote one (FileNotFoundError if there is none)."""
    if (p := local_path(loc)) is not None:
        st = os.stat(p)
        return [st.st_size, st.st_mtime_ns]
    fs, path = filesystem(loc)
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


def size(loc: PathOrLocation) -> int:
    """Bytes of a file (FileNotFoundError if there is none)."""
    if (p := local_path(loc)) is not None:
        return os.path.getsize(p)
    fs, path = filesystem(loc)
    return int(fs.size(path))


def open_read(loc: PathOrLocation) -> IO[bytes]:
    """A binary file open for reading, streamed: a remote file is fetched in READ_BLOCK
    ranges as it is read (bounded memory), never copied whole first."""
    if (p := local_path(loc)) is not None:
        return open(p, "rb", buffering=0)
    fs, path = filesystem(loc)
    return fs.open(path, "rb", block_size=READ_BLOCK, cache_type="readahead")


def read_bytes(loc: PathOrLocation) -> bytes:
    with open_read(loc) as f:
        return f.read()


def write_bytes(loc: PathOrLocation, data: bytes) -> None:
    """Writes a whole file so that it appears complete or not at all (temp + rename, or one PUT)."""
    if (p := local_path(loc)) is not None:
        tmp = p + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, p)
        return
    fs, path = filesystem(loc)
    fs.pipe_file(path, data)


def append_text(loc: PathOrLocation, text: str) -> None:
    """Appends text to a file. Object stores cannot append: the object is read and rewritten whole."""
    if (p := local_path(loc)) is not None:
        with open(p, "a", encoding="utf-8") as f:
            f.write(text)
        return
    old = read_bytes(loc) if exists(loc) else b""
    write_bytes(loc, old + text.encode("utf-8"))


def makedirs(loc: PathOrLocation) -> None:
    """Creates a directory and its parents (object stores have none: nothing to do there)."""
    if (p := local_path(loc)) is not None:
        os.makedirs(p, exist_ok=True)


def listdir(loc: PathOrLocation) -> list[str]:
    """Names of the entries directly in a directory or prefix ([] if there is none).

    Only writers, the commit step and verification list a split: readers never discover
    shards this way (dataset.json lists them)."""
    if (p := local_path(loc)) is not None:
        return sorted(os.listdir(p)) if os.path.isdir(p) else []
    fs, path = filesystem(loc)
    fs.invalidate_cache(path)  # another process may have written since this one last looked
    try:
        entries = fs.ls(path, detail=False)
    except FileNotFoundError:
        return []
    return sorted({e.rstrip("/").rsplit("/", 1)[-1] for e in entries} - {""})


def find(loc: PathOrLocation, filename: str) -> list:
    """Locations of every file called ``filename`` at or below ``loc``, sorted, in the form
    ``loc`` was given (Locations with its options, or strings)."""
    if (p := local_path(loc)) is not None:
        root = Path(p)
        found = sorted(root.rglob(filename)) if root.is_dir() else []
        return [join(loc, *f.relative_to(root).parts) for f in found]  # in the form loc was given
    fs, path = filesystem(loc)
    fs.invalidate_cache(path)
    found = [f for f in fs.find(path) if f.rsplit("/", 1)[-1] == filename]
    base = os.fspath(loc).rstrip("/")
    return [like(loc, u) for u in sorted(base + f[len(path.rstrip("/")) :] for f in found)]


def remove(loc: PathOrLocation) -> None:
    """Deletes a file if it exists."""
    if (p := local_path(loc)) is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)
        return
    fs, path = filesystem(loc)
    with contextlib.suppress(FileNotFoundError):
        fs.rm_file(path)


def sha256(loc: PathOrLocation) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open_read(loc) as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def staging_dir(loc: PathOrLocation) -> Path:
    """Local directory where files bound for a location are written before ``publish``:
    the location itself when local (a rename is then atomic), else a directory under the
    system temp dir named after the location, so that the next run on this machine finds
    (and removes) what a killed run left there."""
    if (p := local_path(loc)) is not None:
        return Path(p)
    digest = hashlib.sha1(os.fspath(loc).rstrip("/").encode("utf-8")).hexdigest()[:16]
    d = Path(tempfile.gettempdir()) / "unilseg-staging" / digest
    d.mkdir(parents=True, exist_ok=True)
    return d


def publish(staged: Path, loc: PathOrLocation) -> None:
    """Makes a finished local file visible at ``loc`` in one step, and drops the local copy.

    Local: a rename (``staged`` is in ``staging_dir``, on the same filesystem). Remote: one
    upload (s3fs sends a multipart upload for large files, completed only at the end)."""
    if (p := local_path(loc)) is not None:
        if os.path.dirname(os.path.abspath(staged)) == os.path.dirname(os.path.abspath(p)):
            os.replace(staged, p)
        else:
            shutil.move(str(staged), p)
        return
    fs, path = filesystem(loc)
    fs.put_file(str(staged), path)
    os.unlink(staged)


def put_file(src: str | os.PathLike, loc: PathOrLocation) -> None:
    """Makes a copy of the local file ``src`` visible at ``loc`` in one step; ``src`` is kept.

    Local: a copy under a temp name, then a rename. Remote: one upload."""
    if (p := local_path(loc)) is not None:
        tmp = p + ".tmp"
        shutil.copyfile(src, tmp)
        os.replace(tmp, p)
        return
    fs, path = filesystem(loc)
    fs.put_file(os.fspath(src), path)


def copy(src: PathOrLocation, dst: PathOrLocation) -> None:
    """Copies a file to another name on the same store so that ``dst`` appears complete.

    Local: a hard link (no bytes copied) or a copy, under a temp name, then a rename.
    Remote: a copy made by the store itself (S3 CopyObject: nothing passes through here)."""
    if (p := local_path(dst)) is not None:
        tmp = p + ".tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        try:
            os.link(local_path(src) or os.fspath(src), tmp)
        except OSError:
            shutil.copyfile(local_path(src) or os.fspath(src), tmp)
        os.replace(tmp, p)
        return
    fs, path = filesystem(dst)
    _, src_path = filesystem(src)
    fs.cp_file(src_path, path)


@contextlib.contextmanager
def staged_output_dir(loc: PathOrLocation) -> Iterator[Path]:
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
                put_file(f, join(loc, *f.relative_to(tmp).parts))


def same_filesystem(loc: PathOrLocation, path: str) -> Any:
    """The location of ``path``, a path within the filesystem of ``loc`` as a library that was
    handed that filesystem reports it (Ray Train's ``Checkpoint.path``): the path itself for a
    local ``loc``, else a URL of the same protocol (with the options of ``loc``)."""
    if local_path(loc) is not None:
        return like(loc, path)
    fs, _ = filesystem(loc)
    return like(loc, fs.unstrip_protocol(path))


def arrow_filesystem(loc: PathOrLocation) -> tuple[Any, str]:
    """(pyarrow filesystem or None, path) for libraries that take pyarrow filesystems (Ray
    Train's ``RunConfig(storage_path, storage_filesystem)``): None and the path for a local
    location; for a URL, the same fsspec filesystem (and the location's options) this module uses,
    wrapped for pyarrow, and the path within it."""
    if (p := local_path(loc)) is not None:
        return None, p
    import pyarrow.fs

    fs, path = filesystem(loc)
    return pyarrow.fs.PyFileSystem(pyarrow.fs.FSSpecHandler(fs)), path


@contextlib.contextmanager
def staged_output(loc: PathOrLocation) -> Iterator[Path]:
    """A local path to write a file to; published at ``loc`` when the block ends without error
    (removed otherwise)."""
    staged = staging_dir(parent(loc)) / (name(loc) + ".tmp")
    try:
        yield staged
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            staged.unlink()
        raise
    publish(staged, loc)
