"""Which shards and samples each reader (Ray Train rank x DataLoader worker) reads.

There are `readers = world_size * num_workers` readers; reader `r = rank * num_workers + worker`.
Every epoch, all readers shuffle the shard list with the same seed, so they agree on it:

- at least as many shards as readers: reader r takes shards r, r + readers, ... of that order
  (whole shards: no sample is read twice);
- fewer shards than readers: splitting shards would leave some readers with nothing, and a DDP
  rank with an empty stream blocks the others forever. Every reader then reads every shard and
  keeps samples whose running index in the epoch is r modulo `readers`: each sample once per
  epoch, every reader busy, at the price of each reader reading (not decoding) all bytes.

Training streams are endless (epoch after epoch), so ranks never run dry at different times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch.distributed as dist
import torch.utils.data

import numpy as np


@dataclass(frozen=True)
class ReaderPlan:
    """One reader's share of an epoch.

    Attributes:
        urls (list[str]): shards this reader opens, in order.
        index (int): this reader's id r.
        readers (int): number of readers.
        by_sample (bool): keep only samples whose running index % readers == index.
    """

    urls: list[str]
    index: int
    readers: int
    by_sample: bool

    def keeps(self, i: int) -> bool:
        """Whether the epoch's i-th sample (counted over `urls`) belongs to this reader."""
        return not self.by_sample or i % self.readers == self.index


def reader_identity(rank: int | None = None, world_size: int | None = None) -> tuple[int, int, int, int]:
    """(rank, world_size, worker, num_workers) of the calling process.

    Rank and world size come from the arguments (the train loop passes
    ray.train.get_context()'s), else from an initialised torch.distributed, else (0, 1);
    worker and num_workers from torch.utils.data.get_worker_info(), else (0, 1).
    """
    if rank is None or world_size is None:
        if dist.is_available() and dist.is_initialized():
            rank, world_size = dist.get_rank(), dist.get_world_size()
        else:
            rank, world_size = 0, 1
    info = torch.utils.data.get_worker_info()
    worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    return rank, world_size, worker, num_workers


def plan_epoch(urls: Sequence[str], epoch: int, seed: int, rank: int, world_size: int, worker: int,
               num_workers: int, shuffle: bool = True) -> ReaderPlan:
    """The shards (and sample filter) of one reader for one epoch.

    Args:
        urls: every shard of the split.
        epoch: epoch number (the shard order changes with it when shuffling).
        seed: shared seed: every reader must pass the same one.
        rank, world_size: the Ray Train (DDP) rank and number of ranks.
        worker, num_workers: the DataLoader worker and number of workers in this rank.
        shuffle: shuffle the shard order per epoch.
    """
    order = list(urls)
    if shuffle:
        perm = np.random.default_rng([seed, epoch]).permutation(len(order))
        order = [order[i] for i in perm]
    readers = world_size * num_workers
    index = rank * num_workers + worker
    if len(order) >= readers:
        return ReaderPlan(order[index::readers], index, readers, by_sample=False)
    return ReaderPlan(order, index, readers, by_sample=True)
