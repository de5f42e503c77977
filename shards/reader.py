"""Shard reader: finished shards -> decoded samples, or one item per (image, target).

Built from webdataset's own pipeline stages (shard list, node/worker splitting, tar
expansion with ``tar_file_iterator``, grouping by key). Each shard is read through a
file object that hashes what passes through it, in 1 MB blocks; a shard whose sha256
differs from dataset.json raises ChecksumError when its end is reached, without a second
read of the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import webdataset as wds
from webdataset.filters import pipelinefilter
from webdataset.tariterators import group_by_keys, tar_file_iterator

from shards.format import ImageInfo, Target, parse_metadata
from shards.images import decode_image
from shards.manifest import read_dataset_json

_BLOCK = 1 << 20  # bytes per read (and sha256 update) of a shard


class ChecksumError(IOError):
    """A shard's bytes do not match the sha256 recorded in dataset.json."""


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


class _HashingReader:
    """A binary input file that hashes every byte read through it.

    tarfile's stream mode asks for 10 KB at a time; this reads the file in _BLOCK-byte blocks
    (one syscall and one sha256 update each) and hands out slices.

    Args:
        path (str): the file.
        hashed (bool): compute the file's sha256 (``drain_hexdigest``).
    """

    def __init__(self, path: str, hashed: bool):
        self._f = open(path, "rb", buffering=0)
        self.sha256 = hashlib.sha256() if hashed else None
        self._block, self._pos = memoryview(b""), 0

    def _next_block(self) -> bool:
        block = self._f.read(_BLOCK)
        if self.sha256 is not None and block:
            self.sha256.update(block)
        self._block, self._pos = memoryview(block), 0
        return bool(block)

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = [bytes(self._block[self._pos:])]
            while self._next_block():
                parts.append(bytes(self._block))
            self._pos = len(self._block)
            return b"".join(parts)
        if self._pos >= len(self._block) and not self._next_block():
            return b""
        end = min(self._pos + n, len(self._block))
        data = bytes(self._block[self._pos:end])
        self._pos = end
        return data

    def drain_hexdigest(self) -> str | None:
        """Reads what is left (tar padding after the end marker); the file's sha256, or None."""
        while self._next_block():
            pass
        return None if self.sha256 is None else self.sha256.hexdigest()

    def close(self) -> None:
        self._f.close()


def _expand_checked(expected: dict[str, str], handler: Callable[[Exception], bool]) -> Callable:
    """Pipeline stage: {"url"} -> {"fname", "data", "__url__"} per member, {} after each shard.

    What webdataset's url_opener + tar_file_expander yield (tar_file_iterator's member
    filter), except that a shard listed in ``expected`` is hashed while read and raises
    ChecksumError (never passed to ``handler``) if its sha256 differs.
    """

    def stage(src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for item in src:
            url = item["url"]
            want = expected.get(os.path.basename(url))
            try:
                stream = _HashingReader(url, hashed=want is not None)
                try:
                    for member in tar_file_iterator(stream, handler=handler):
                        member["__url__"] = url
                        yield member
                    digest = stream.drain_hexdigest()
                finally:
                    stream.close()
            except Exception as exn:
                exn.args = exn.args + (url,)
                if handler(exn):
                    continue
                break
            if digest != want:
                raise ChecksumError(f"{url}: sha256 {digest} does not match dataset.json ({want})")
            yield {}

    return stage


def shard_urls(split_dir: str | os.PathLike) -> list[str]:
    """Paths of the finished shards of a split, in order, as listed in dataset.json."""
    split_dir = Path(split_dir)
    info = read_dataset_json(split_dir)
    if not info:
        raise FileNotFoundError(f"{split_dir} has no dataset.json: not a shard split")
    return [str(split_dir / s["name"]) for s in info["shards"]]


def _decode(record: dict[str, Any], decode_images: bool) -> DecodedSample:
    doc = json.loads(record["json"])
    image, targets = parse_metadata(doc)
    ext = "jpg" if "jpg" in record else "png"
    data = record[ext]
    return DecodedSample(record["__key__"], image, decode_image(data) if decode_images else None, data, targets)


def raw_pipeline(urls: list[str], expected: dict[str, str] | None = None, *, distributed: bool = False,
                 handler: Callable[[Exception], bool] = wds.reraise_exception,
                 split: bool = True) -> wds.DataPipeline:
    """webdataset pipeline over shards yielding raw {"__key__", "jpg"/"png", "json"} records.

    Args:
        urls: shard paths.
        expected: shard file name -> sha256 to check; None checks nothing.
        distributed: split shards by torch.distributed rank (Ray Train workers) as well as
            by DataLoader worker; a rank or worker with no shard yields nothing.
        handler: webdataset error policy (reraise by default).
        split: split shards by DataLoader worker (and rank when distributed); False reads every
            url given, for callers that choose each reader's shards themselves (unilseg.data).
    """
    stages: list[Any] = [wds.SimpleShardList(urls)]
    if split and distributed:
        stages.append(wds.split_by_node)
    if split:
        stages.append(wds.split_by_worker)
    stages.append(_expand_checked(expected or {}, handler))
    stages.append(pipelinefilter(group_by_keys)(handler=handler))
    return wds.DataPipeline(*stages)


class ShardReader:
    """Reads one split.

    Args:
        split_dir (str | Path): a directory with dataset.json and shards.
        check_checksums (bool): hash each shard while reading and raise on mismatch.
        distributed (bool): split shards across torch.distributed ranks too.
    """

    def __init__(self, split_dir: str | os.PathLike, check_checksums: bool = True, distributed: bool = False):
        self.dir = Path(split_dir)
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
