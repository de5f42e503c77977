"""Mixing several datasets by weights, and naming them on the command line.

`--data DST[:WEIGHT]`: DST is a split directory (DATA_ROOT/NAME/SPLIT, it holds dataset.json)
or a dataset directory (DATA_ROOT/NAME, then its `train` split is used); WEIGHT (default 1)
is the relative share of training items drawn from it.

`weighted_mix` draws the source of each item at random with probability weight / sum, with its
own seeded generator (webdataset's RandomMix uses the global `random` state, which DataLoader
workers and Ray ranks would share).
"""

from __future__ import annotations

from typing import Iterable, Iterator, Sequence, TypeVar

import numpy as np

from common.errors import UniLSegError

T = TypeVar("T")


def parse_data_spec(spec: str) -> tuple[str, float]:
    """"DST[:WEIGHT]" -> (DST, weight). A suffix that is not a number stays part of the path.

    Raises:
        ValueError: a weight that is not positive.
    """
    path, weight = spec, 1.0
    if ":" in spec:
        head, tail = spec.rsplit(":", 1)
        try:
            weight = float(tail)
            path = head
        except ValueError:
            pass
    if not path:
        raise UniLSegError(f"empty dataset path in {spec!r}")
    if not weight > 0:
        raise UniLSegError(f"dataset weight must be > 0, got {weight} in {spec!r}")
    return path, weight


def normalize_weights(weights: Sequence[float]) -> np.ndarray:
    """Weights -> probabilities summing to 1 (each weight must be > 0)."""
    w = np.asarray(weights, np.float64)
    if w.ndim != 1 or w.size == 0 or not np.all(w > 0) or not np.all(np.isfinite(w)):
        raise ValueError(f"weights must be a non-empty list of positive numbers, got {list(weights)}")
    return w / w.sum()


def weighted_mix(streams: Sequence[Iterable[T]], weights: Sequence[float],
                 rng: np.random.Generator) -> Iterator[T]:
    """Items from several streams, each drawn from stream i with probability weights[i] / sum.

    A stream that ends is dropped and the others are drawn from in their remaining proportions,
    so finite streams yield everything; endless streams keep the ratios forever.
    """
    its = [iter(s) for s in streams]
    probs = normalize_weights(weights)
    live = list(range(len(its)))
    while live:
        p = probs[live] / probs[live].sum()
        k = live[int(rng.choice(len(live), p=p))] if len(live) > 1 else live[0]
        try:
            yield next(its[k])
        except StopIteration:
            live.remove(k)
