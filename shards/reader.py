"""Shard reader: finished shards -> decoded samples, or one item per (image, target).

Built from webdataset's own pipeline stages (shard list, node/worker splitting, tar
expansion, grouping by key). Each shard is hashed while it streams past, and a shard
whose sha256 differs from dataset.json raises ChecksumError when its end is reached,
without a second read of the file.
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
from webdataset.tariterators import group_by_keys, tar_file_expander

from shards.format import ImageInfo, Target, parse_metadata
from shards.images import decode_image
from shards.manifest import read_dataset_json


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
    """A read-only stream that hashes the bytes read through it."""

    def __init__(self, path: str):
        self._f = open(path, "rb")
        self.sha256 = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.sha256.update(data)
        return data

    def drain_hexdigest(self) -> str:
        """Reads what tarfile left (end padding), closes, and returns the file's sha256."""
        while block := self.read(1 << 20):
            pass
        self._f.close()
        return self.sha256.hexdigest()

    def close(self) -> None:
        self._f.close()


def _open_checked(expected: dict[str, str]) -> Callable:
    """Pipeline stage: {"url"} -> {"url", "stream"}, checking each shard once it is consumed."""

    def stage(src: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for item in src:
            url = item["url"]
            stream = _HashingReader(url)
            yield {"url": url, "stream": stream}
            # Resumed only when the expander asks for the next shard: this one is consumed.
            digest = stream.drain_hexdigest()
            want = expected.get(os.path.basename(url))
            if want is not None and digest != want:
                raise ChecksumError(f"{url}: sha256 {digest} does not match dataset.json ({want})")

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
    stages.append(_open_checked(expected or {}))
    stages.append(pipelinefilter(tar_file_expander)(handler=handler))
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
