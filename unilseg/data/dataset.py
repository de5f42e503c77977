"""The training stream: shards of several datasets -> one (image, token ids, mask) item per target.

    ds = TargetDataset([("data/synth/train", 1.0), ("data/sod/train", 0.5)], model.tokenizer, 128,
                       augment=AugmentConfig(), rank=ctx.get_world_rank(), world_size=ctx.get_world_size())
    loader = DataLoader(ds, batch_size=8, num_workers=2)   # endless by default (epochs=None)

Per reader (rank x DataLoader worker; see unilseg.data.split) and per source: each epoch's
shards, read through shards.reader.raw_pipeline with checksum verification, expanded into one
entry per target; sources mixed by weight (unilseg.data.mixing); a shuffle buffer of
still-encoded entries; then decode, augment (or plain letterbox) and tokenize. A target with
a null mask (no-target expression) trains on an all-zero mask.

Broken targets (a record whose JSON does not parse, an image or RLE that does not decode, a
mask of another size than its image) are logged, skipped and counted in a SkipCounter that
every reader of one rank (its DataLoader processes) shares: the training loop reports the
counts, and a rank stops with a one-line ShardError once it has skipped more than
`max_skipped_fraction` of the targets it read (taken of at least SKIP_BASE targets), instead
of spinning forever over a split whose every target fails. A damaged shard (checksum
mismatch, unreadable tar, missing file, a sample without its json or image member) raises
ShardError at once, one line naming the shard: data that is wrong stays wrong, so training
stops rather than retrying.
"""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset

from common.errors import ShardError, describe
from shards.format import FormatError, Target, parse_metadata
from shards.images import decode_image
from shards.integrity import guarded
from shards.layout import resolve_split_dir
from shards.reader import ShardReader, raw_pipeline
from unilseg.data.augment import AugmentConfig, augment_sample, letterbox_sample, swap_left_right_words
from unilseg.data.mixing import normalize_weights, weighted_mix
from unilseg.data.split import plan_epoch, reader_identity

log = logging.getLogger(__name__)

# the skip limit is a fraction of at least this many targets: the first skips of a run (10 at
# 1 %) never stop it, and an all-broken split stops after that many
SKIP_BASE = 1000


class SkipCounter:
    """Targets read and targets skipped as broken by one rank's readers.

    The counts live in shared memory made before the DataLoader starts its processes, which
    inherit it (fork) or receive it as they start (spawn): every reader of the rank adds to
    them and the training loop reads them. A skip past the limit raises in the reader that
    made it, which is where an all-broken split would otherwise loop.

    Args:
        max_fraction (float | None): skips allowed, as a fraction of the targets read (taken
            of at least SKIP_BASE); None counts without a limit.
    """

    def __init__(self, max_fraction: float | None = None):
        self.max_fraction = max_fraction
        self._counts = multiprocessing.Array("q", 2)  # targets read, targets skipped

    def counts(self) -> tuple[int, int]:
        """(targets read, targets skipped) by every reader of this rank so far."""
        with self._counts.get_lock():
            return int(self._counts[0]), int(self._counts[1])

    def allowed(self, read: int) -> int:
        """Skips tolerated after `read` targets (unbounded without a limit)."""
        return (1 << 62) if self.max_fraction is None else int(self.max_fraction * max(read, SKIP_BASE))

    def add(self, skipped: bool, where: str = "", what: str = "") -> None:
        """Counts one target read (and skipped, when `skipped`).

        Raises:
            ShardError: the skips passed the limit; names `where` (the split) and `what` (the
                last broken target and why).
        """
        with self._counts.get_lock():
            self._counts[0] += 1
            self._counts[1] += int(skipped)
            read, n = int(self._counts[0]), int(self._counts[1])
        if skipped and n > self.allowed(read):
            raise ShardError(where, f"{n} of the {read} targets read were broken and skipped: more than the "
                             f"{self.allowed(read)} that max_skipped_fraction {self.max_fraction:g} allows (of at "
                             f"least {SKIP_BASE} targets); last: {what}")


class BrokenTarget(Exception):
    """A target that cannot be trained on; the message says why (internal: counted, then skipped)."""


@dataclass
class _Entry:
    """One target waiting in the shuffle buffer (image still encoded)."""

    source: int
    key: str
    index: int  # target index within the sample
    image_bytes: bytes
    target: Target


def _check_members(record: dict[str, Any]) -> None:
    """A sample is KEY.json and KEY.jpg|png; anything else means a damaged shard."""
    if "json" not in record or not ("jpg" in record or "png" in record):
        found = sorted(k for k in record if not k.startswith("__"))
        raise ShardError(f"{record.get('__url__', '?')}: sample {record.get('__key__')!r} has members {found}, "
                         "expected json and jpg or png (a member with an odd name or type: `unilseg shards "
                         "verify` names it)")


class TargetDataset(IterableDataset):
    """One item per (image, target) of one or more shard splits, mixed by weight.

    Args:
        sources (Sequence[tuple[str | PathLike, float]]): (split or dataset dir, weight) pairs;
            local paths or fsspec URLs (shards are streamed, never copied whole first).
        tokenizer (Callable): text(s) -> (B, L) int64 ids (a model's `tokenizer`).
        size (int): square input side S.
        augment (AugmentConfig | None): training augmentation; None = letterbox only.
        epochs (int | None): epochs per source; None = endless (training).
        seed (int): base seed, shared by every reader (shard order) and mixed with the reader id
            (mixing, shuffling, augmentation, text choice).
        shuffle (bool): shuffle shard order per epoch and items in a buffer.
        shuffle_buffer (int): items held for shuffling.
        random_text (bool): pick one of a target's texts at random (else the first).
        rank, world_size (int | None): the Ray Train rank and size; None = torch.distributed's.
        check_checksums (bool): verify every shard's sha256 against dataset.json.
        return_meta (bool): also yield a dict (key, target index, source, text, flipped).
        max_skipped_fraction (float | None): broken targets a rank may skip, as a fraction of
            the targets it read (at least SKIP_BASE counted); more raise ShardError. None:
            skipped and counted (``skips``) without a limit.

    Attributes:
        skips (SkipCounter): targets read and skipped by this rank's readers (shared with its
            DataLoader processes).

    Yields:
        tuple: image (3, S, S) float32 CLIP-normalised, token ids (L,) int64, mask (S, S)
        float32 in {0, 1}[, meta].
    """

    def __init__(self, sources: Sequence[tuple[str | os.PathLike, float]], tokenizer: Callable, size: int, *,
                 augment: AugmentConfig | None = None, epochs: int | None = None, seed: int = 0,
                 shuffle: bool = True, shuffle_buffer: int = 256, random_text: bool = True,
                 rank: int | None = None, world_size: int | None = None, check_checksums: bool = True,
                 return_meta: bool = False, max_skipped_fraction: float | None = None) -> None:
        super().__init__()
        if not sources:
            raise ValueError("no training data given")
        self.readers = [ShardReader(resolve_split_dir(p), check_checksums=check_checksums) for p, _ in sources]
        self.weights = normalize_weights([w for _, w in sources]).tolist()
        for r in self.readers:
            if not r.urls:
                raise ValueError(f"{r.dir} has no shards")
        self.tokenizer, self.size, self.augment = tokenizer, int(size), augment
        self.epochs, self.seed, self.shuffle = epochs, int(seed), shuffle
        self.shuffle_buffer = max(1, int(shuffle_buffer)) if shuffle else 1
        self.random_text, self.return_meta = random_text, return_meta
        self.rank, self.world_size = rank, world_size
        self.skips = SkipCounter(max_skipped_fraction)  # before any DataLoader process starts: shared

    def _entries(self, source: int, ident: tuple[int, int, int, int]) -> Iterator[_Entry]:
        """This reader's targets of one source, epoch after epoch."""
        reader = self.readers[source]
        epochs = itertools.count() if self.epochs is None else range(self.epochs)
        for epoch in epochs:
            plan = plan_epoch(reader.urls, epoch, self.seed * 1009 + source, *ident, shuffle=self.shuffle)
            n = 0
            records = guarded(raw_pipeline(plan.urls, reader.expected, split=False), reader.dir)
            for i, record in enumerate(records):
                if not plan.keeps(i):
                    continue
                _check_members(record)
                try:
                    _, targets = parse_metadata(json.loads(record["json"]))
                    image_bytes = record["jpg"] if "jpg" in record else record["png"]
                except (ValueError, FormatError) as e:
                    log.warning("%s: skipping %s: %s", reader.dir, record.get("__key__"), e)
                    self.skips.add(True, str(reader.dir), f"{record.get('__key__')}: {_one_line(e)}")
                    continue
                for k, t in enumerate(targets):
                    n += 1
                    yield _Entry(source, record["__key__"], k, image_bytes, t)
            if n == 0 and self.epochs is None:  # the same data would give the same nothing: not retried
                raise ShardError(reader.dir, f"reader {plan.index} of {plan.readers} found no target in a whole "
                                 "epoch (every record broken, or more readers than samples); an endless stream "
                                 "would spin forever")

    def _shuffled(self, items: Iterator[_Entry], rng: np.random.Generator) -> Iterator[_Entry]:
        buf: list[_Entry] = []
        for item in items:
            if len(buf) < self.shuffle_buffer:
                buf.append(item)
                continue
            j = int(rng.integers(len(buf)))
            buf[j], item = item, buf[j]
            yield item
        rng.shuffle(buf)
        yield from buf

    def _make_item(self, e: _Entry, rng: np.random.Generator) -> tuple[Any, ...]:
        """The training item of one entry.

        Raises:
            BrokenTarget: its image or RLE does not decode, or the mask's size is not the image's.
        """
        try:
            rgb = decode_image(e.image_bytes)
            mask = e.target.mask_array()
        except Exception as err:  # any decoder's error: the target is broken, not the run
            raise BrokenTarget(_one_line(err)) from err
        if mask is None:  # no-target expression: the model must predict nothing
            mask = np.zeros(rgb.shape[:2], np.uint8)
        if mask.shape != rgb.shape[:2]:
            raise BrokenTarget(f"mask {mask.shape} vs image {rgb.shape[:2]}")
        texts = e.target.texts
        text = texts[int(rng.integers(len(texts)))] if self.random_text else texts[0]
        flipped = False
        if self.augment is not None:
            x, m, flipped = augment_sample(rgb, mask, texts, self.size, rng, self.augment)
            if flipped and self.augment.swap_left_right:
                text = swap_left_right_words(text)
        else:
            x, m = letterbox_sample(rgb, mask, self.size)
        ids = self.tokenizer(text)[0]
        out = (torch.from_numpy(x), ids, torch.from_numpy(m.astype(np.float32)))
        if self.return_meta:
            out += ({"key": e.key, "target": e.index, "source": e.source, "text": text, "flipped": flipped},)
        return out

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        ident = reader_identity(self.rank, self.world_size)
        rank, world, worker, workers = ident
        rng = np.random.default_rng([self.seed, rank * workers + worker, 1])
        streams = [self._entries(s, ident) for s in range(len(self.readers))]
        items = weighted_mix(streams, self.weights, rng) if len(streams) > 1 else streams[0]
        for e in self._shuffled(items, rng):
            try:
                item = self._make_item(e, rng)
            except BrokenTarget as err:
                log.warning("skipping %s target %d: %s", e.key, e.index, err)
                self.skips.add(True, str(self.readers[e.source].dir), f"{e.key} target {e.index}: {err}")
                continue
            self.skips.add(False)
            yield item


def _one_line(e: BaseException) -> str:
    """An exception's message on one line (the skip error is printed as one)."""
    lines = describe(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"
