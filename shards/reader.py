"""Shard reader: finished shards -> decoded samples, or one item per (image, target).

Built from webdataset's own pipeline stages (shard list, node/worker splitting, grouping
by key) around our tar expansion: each shard is read in large blocks and hashed while
it streams past, and a shard whose sha256 differs from dataset.json raises ChecksumError
when its end is reached, without a second read of the file.

The tar expansion (``_TarMembers``) is hand-written rather than webdataset's
tar_file_iterator (tarfile's stream mode) read through a hashing file object: that library
version read raw shards at well under half the speed of this one, over the 20 % issue 12
allows (BENCHMARKS.md, "Library tar code vs the hand-written one"): tarfile reads 10 KB at a
time and builds a TarInfo per member.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import webdataset as wds
from webdataset.filters import pipelinefilter
from webdataset.tariterators import group_by_keys

from common.errors import ShardError
from shards import storage
from shards.format import ImageInfo, Target, parse_metadata
from shards.images import decode_image
from shards.manifest import read_dataset_json

_BLOCK = 1 << 20  # bytes per read (and sha256 update) of a shard
_ZERO_BLOCK = bytes(tarfile.BLOCKSIZE)  # the end marker's first block
_PAX_RECORD = re.compile(rb"(\d+) ([^=]+)=")


class ChecksumError(ShardError):
    """A shard's bytes do not match the sha256 recorded in dataset.json."""


# Members of a shard: regular files named KEY.EXT, KEY as shards.keys.check_key allows.
_MEMBER = re.compile(r"([A-Za-z0-9_-]+)\.(jpg|png|json)")
_KINDS = {
    b"1": "hard link",
    b"2": "symlink",
    b"3": "character device",
    b"4": "block device",
    b"5": "directory",
    b"6": "FIFO",
    b"S": "sparse file",
}


def _member_problem(name: str) -> str | None:
    """What is wrong with a regular member's name, or None: the format allows only KEY.ext."""
    if name.startswith("/"):
        return "has an absolute name"
    if ".." in name.split("/"):
        return "has a '..' in its name"
    if "/" in name:
        return "has a '/' in its key"
    if not _MEMBER.fullmatch(name):
        return "is not KEY.jpg, KEY.png or KEY.json (KEY: letters, digits, _ and -)"
    return None


@dataclass
class DecodedSample:
    """A sample as training and evaluation see it.

    Attributes:
        key (str): the sample key.
        image (ImageInfo): metadata.
        rgb (np.ndarray | None): (H, W, 3) uint8 pixels; None when decode_images=False.
        image_bytes (bytes): the stored encoded image.
        targets (list[Target]): all targets; ``target.mask_array()`` decodes a mask.
    """

    key: str
    image: ImageInfo
    rgb: np.ndarray | None
    image_bytes: bytes
    targets: list[Target]


class _TarMembers:
    """The regular members of a tar file, read in _BLOCK-byte blocks and hashed as they pass.

    The same members as tarfile's stream mode (what webdataset reads with), for the ustar,
    GNU and PAX files tarfile writes (tests compare both), at a fraction of its per-member
    Python work: that saving pays for the sha256 check (BENCHMARKS.md,
    "Shards"). Sparse members and bad header checksums raise ReadError.

    Only what the format allows gets through: a member that is not a regular file named
    KEY.ext (symlinks, directories, absolute names, ``..``, a ``/`` in the key), a truncated
    tar and a bad header raise ShardError naming the shard and the member.

    Args:
        path (str): the tar file (a local path or URL: streamed, see shards.storage.open_read).
        hashed (bool): compute the file's sha256 (``drain_hexdigest``).

    Raises:
        FileNotFoundError: the shard does not exist.
    """

    def __init__(self, path: str, hashed: bool):
        self.path = path
        self._f = storage.open_read(path)
        self.sha256 = hashlib.sha256() if hashed else None
        self._buf, self._pos = b"", 0

    def _take(self, n: int) -> bytes:
        """The next n bytes (fewer only at the end of the file)."""
        buf, pos = self._buf, self._pos
        if pos + n <= len(buf):
            self._pos = pos + n
            return buf[pos : pos + n]
        parts, have = [buf[pos:]], len(buf) - pos
        self._buf, self._pos = b"", 0
        while have < n and (block := self._f.read(max(_BLOCK, n - have))):
            if self.sha256 is not None:
                self.sha256.update(block)
            if have + len(block) > n:
                parts.append(block[: n - have])
                self._buf, self._pos = block, n - have
                break
            parts.append(block)
            have += len(block)
        return b"".join(parts)

    def _need(self, n: int) -> bytes:
        data = self._take(n)
        if len(data) < n:
            raise tarfile.ReadError("truncated: unexpected end of data")
        return data

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        """(name, data) of each member, up to the end marker (ShardError for what the format refuses)."""
        try:
            yield from self._members()
        except ShardError:
            raise
        except (tarfile.ReadError, ValueError) as e:  # ValueError: a malformed number in a header
            raise ShardError(self.path, str(e)) from None

    def _members(self) -> Iterator[tuple[str, bytes]]:
        pax_global: dict[str, str] = {}
        pax: dict[str, str] = {}
        first = True
        while True:
            header = self._take(tarfile.BLOCKSIZE)
            if header == _ZERO_BLOCK:
                return
            if len(header) < tarfile.BLOCKSIZE:
                raise tarfile.ReadError(
                    "empty file" if first and not header else "truncated: ends without the end-of-archive marker"
                )
            first = False
            name, size, kind = _parse_header(header)
            over = {**pax_global, **pax}
            pax = {}
            name = over.get("path", name)
            size = int(over.get("size", size))
            if kind in b"0\x007" and not (kind == b"\0" and name.endswith("/")):
                if problem := _member_problem(name):
                    raise ShardError(self.path, f"member {name!r} {problem}")
                data = self._need(size)
                self._take(-size % tarfile.BLOCKSIZE)
                yield name, data
            elif kind in (b"x", b"g", b"L", b"K"):
                data = self._need(size)
                self._take(-size % tarfile.BLOCKSIZE)
                if kind == b"L":
                    pax["path"] = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                elif kind in (b"x", b"g"):
                    (pax if kind == b"x" else pax_global).update(_pax_records(data))
            else:  # links, directories, devices, sparse or unknown types: never in a shard
                kind_name = "directory" if kind in b"0\x00" else _KINDS.get(kind, f"member of type {kind!r}")
                raise ShardError(
                    self.path, f"member {name!r} is a {kind_name}; a shard holds only regular files named KEY.ext"
                )

    def drain_hexdigest(self) -> str | None:
        """Reads what is left (end padding); the file's sha256, or None if not hashed."""
        while self._take(_BLOCK):
            pass
        return None if self.sha256 is None else self.sha256.hexdigest()

    def close(self) -> None:
        self._f.close()


def _parse_header(h: bytes) -> tuple[str, int, bytes]:
    """(name, size, type flag) of a 512-byte tar header, as tarfile.TarInfo.frombuf reads them."""
    stored = _number(h[148:156])
    if stored != sum(h) - sum(h[148:156]) + 256 and stored != sum(struct.unpack_from("148b8x356b", h)) + 256:
        raise tarfile.ReadError("bad header checksum")
    name, kind = h[:100].split(b"\0", 1)[0], h[156:157]
    if h[257:265] == tarfile.POSIX_MAGIC and kind not in tarfile.GNU_TYPES:
        prefix = h[345:500].split(b"\0", 1)[0]
        name = prefix + b"/" + name if prefix else name
    return name.decode("utf-8", "surrogateescape"), _number(h[124:136]), kind


def _number(field: bytes) -> int:
    """A numeric header field: octal text, or base-256 with a leading 0x80/0xff byte (tarfile.nti)."""
    if field[0] in (0o200, 0o377):
        return tarfile.nti(field)
    return int(field.split(b"\0", 1)[0].strip() or b"0", 8)


def _pax_records(data: bytes) -> dict[str, str]:
    """The "LENGTH KEY=VALUE\\n" records of a PAX header (values as UTF-8 text)."""
    out, pos = {}, 0
    while pos < len(data) and (m := _PAX_RECORD.match(data, pos)):
        length = int(m.group(1))
        if length < 1:
            raise tarfile.ReadError("invalid PAX header")
        out[m.group(2).decode("utf-8")] = data[m.end() : pos + length - 1].decode("utf-8", "surrogateescape")
        pos += length
    return out


def _expand_checked(
    expected: dict[str, str], handler: Callable[[Exception], bool], located: dict[str, Any]
) -> Callable:
    """Pipeline stage: {"url"} -> {"fname", "data", "__url__"} per member, {} after each shard.

    webdataset passes URLs as strings: ``located`` gives each back its Location (its options).

    What webdataset's url_opener + tar_file_expander yield for a well-formed shard, except
    that a shard listed in ``expected`` is hashed while read. A damaged shard (missing,
    truncated, checksum mismatch, a member the format refuses) raises ShardError and is
    never passed to ``handler``: it is not a transient failure. Other errors (a network
    read failing) go to ``handler``.
    """

    def stage(src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for item in src:
            url = item["url"]
            want = expected.get(storage.name(url))
            try:
                tar = _TarMembers(located.get(url, url), hashed=want is not None)
            except FileNotFoundError:
                raise ShardError(url, "missing (dataset.json lists it)") from None
            try:
                for fname, data in tar:
                    yield {"fname": fname, "data": data, "__url__": url}
                digest = tar.drain_hexdigest()
            except ShardError:
                raise
            except Exception as exn:
                exn.args = exn.args + (url,)
                if handler(exn):
                    continue
                break
            finally:
                tar.close()
            if digest != want:
                raise ChecksumError(url, f"sha256 {digest} does not match dataset.json ({want})")
            yield {}

    return stage


def _complete_samples(src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Pipeline stage: refuses a sample without its KEY.json or without exactly one image."""
    for rec in src:
        images = [ext for ext in ("jpg", "png") if ext in rec]
        if "json" not in rec:
            raise ShardError(rec["__url__"], f"sample {rec['__key__']} has no json member")
        if len(images) != 1:
            raise ShardError(
                rec["__url__"], f"sample {rec['__key__']} has {len(images)} images (one KEY.jpg or KEY.png expected)"
            )
        yield rec


def shard_urls(split_dir: str | os.PathLike) -> list[str]:
    """Locations of the shards of a split, in order, as dataset.json lists them (the only
    shards a reader reads: a split is never listed to discover shards)."""
    info = read_dataset_json(split_dir)
    if not info:
        raise FileNotFoundError(f"{split_dir} has no dataset.json: not a shard split")
    return [storage.join(split_dir, s["name"]) for s in info["shards"]]


def _decode(record: dict[str, Any], decode_images: bool) -> DecodedSample:
    doc = json.loads(record["json"])
    image, targets = parse_metadata(doc)
    ext = "jpg" if "jpg" in record else "png"
    data = record[ext]
    return DecodedSample(record["__key__"], image, decode_image(data) if decode_images else None, data, targets)


def raw_pipeline(
    urls: list[storage.PathOrLocation],
    expected: dict[str, str] | None = None,
    *,
    distributed: bool = False,
    handler: Callable[[Exception], bool] = wds.reraise_exception,
    split: bool = True,
) -> wds.DataPipeline:
    """webdataset pipeline over shards yielding raw {"__key__", "jpg"/"png", "json"} records.

    Args:
        urls: shard locations (paths, URLs or Locations).
        expected: shard file name -> sha256 to check; None checks nothing.
        distributed: split shards by torch.distributed rank (Ray Train workers) as well as
            by DataLoader worker; a rank or worker with no shard yields nothing.
        handler: webdataset error policy (reraise by default).
        split: split shards by DataLoader worker (and rank when distributed); False reads every
            url given, for callers that choose each reader's shards themselves (unilseg.data).
    """
    located = {os.fspath(u): u for u in urls}
    if not located:  # a split with no shards (every image quarantined, every target filtered): nothing to read
        return wds.DataPipeline(lambda: iter(()))
    stages: list[Any] = [wds.SimpleShardList(list(located))]
    if split and distributed:
        stages.append(wds.split_by_node)
    if split:
        stages.append(wds.split_by_worker)
    stages.append(_expand_checked(expected or {}, handler, located))
    stages.append(pipelinefilter(group_by_keys)(handler=handler))
    stages.append(_complete_samples)
    return wds.DataPipeline(*stages)


class ShardReader:
    """Reads one split.

    Args:
        split_dir (str | Path): a split with dataset.json and shards (local path or fsspec URL).
        check_checksums (bool): hash each shard while reading and raise on mismatch.
        distributed (bool): split shards across torch.distributed ranks too.
    """

    def __init__(
        self,
        split_dir: str | os.PathLike,
        check_checksums: bool = True,
        distributed: bool = False,
    ):
        self.dir = storage.normalize(split_dir)
        self.info = read_dataset_json(self.dir)
        self.urls = shard_urls(self.dir)
        self.expected = {s["name"]: s["sha256"] for s in self.info["shards"]} if check_checksums else None
        self.distributed = distributed

    def __len__(self) -> int:
        return int(self.info["counts"]["samples"])

    def raw(self) -> wds.DataPipeline:
        """Raw webdataset records (bytes)."""
        return raw_pipeline(self.urls, self.expected, distributed=self.distributed)

    def samples(self, decode_images: bool = True) -> Iterator[DecodedSample]:
        """Every image with all its targets."""
        for record in self.raw():
            yield _decode(record, decode_images)

    def targets(self, decode_images: bool = True) -> Iterator[tuple[DecodedSample, int, Target]]:
        """One item per (image, target): (sample, target index, target)."""
        for sample in self.samples(decode_images):
            for i, t in enumerate(sample.targets):
                yield sample, i, t
