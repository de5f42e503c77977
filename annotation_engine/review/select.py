"""Which targets of a split go to review: a rule on a named score, plus a random audit sample.

Works on the split's manifest (one row per target: key, target index, scores), never on the
shards. The order is deterministic (score, then key, then target index), so the same split and
settings always pick the same targets; exporting again skips those already in the project.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

from annotation_engine.review.config import ReviewConfig
from common.errors import UniLSegError
from shards.manifest import read_manifest


@dataclass(frozen=True)
class Pick:
    """One target chosen for review.

    Attributes:
        key (str): the sample key.
        target (int): the target's index in the sample.
        score (float | None): its ``--by`` score (None: no rule, or the target has none).
        why (str): "lowest", "below" or "sample".
    """

    key: str
    target: int
    score: float | None
    why: str


Row = tuple[str, int, dict[str, float]]  # (key, target index, scores)


def manifest_rows(split_dir: str | os.PathLike) -> list[Row]:
    """(key, target index, scores) of every target of a split, from its manifest."""
    t = read_manifest(split_dir, columns=["key", "target_index", "scores"])
    return [
        (k, int(i), dict(s or []))
        for k, i, s in zip(
            t.column("key").to_pylist(), t.column("target_index").to_pylist(), t.column("scores").to_pylist()
        )
    ]


def select_targets(rows: list[Row], cfg: ReviewConfig) -> list[Pick]:
    """The targets to review, ruled ones first (lowest score first), then the random sample.

    Raises:
        UniLSegError: ``cfg.by`` names a score no target has.
    """
    picked: list[Pick] = []
    if cfg.lowest is not None or cfg.below is not None:
        scored = [(r[2][cfg.by], r[0], r[1]) for r in rows if cfg.by in r[2]]
        if not scored:
            names = sorted({n for r in rows for n in r[2]})
            raise UniLSegError(
                f"no target has a score named {cfg.by!r} (scores in this split: {', '.join(names) or 'none'})"
            )
        scored.sort()
        if cfg.lowest is not None:
            picked = [Pick(k, i, float(s), "lowest") for s, k, i in scored[: cfg.lowest]]
        else:
            picked = [Pick(k, i, float(s), "below") for s, k, i in scored if s < cfg.below]
    if cfg.sample:
        chosen = {(p.key, p.target) for p in picked}
        rest = sorted((r for r in rows if (r[0], r[1]) not in chosen), key=lambda r: (r[0], r[1]))
        drawn = random.Random(cfg.seed).sample(rest, min(cfg.sample, len(rest)))
        picked += [Pick(k, i, _score(s, cfg.by), "sample") for k, i, s in sorted(drawn, key=lambda r: (r[0], r[1]))]
    return picked


def _score(scores: dict[str, float], by: str | None) -> float | None:
    return float(scores[by]) if by and by in scores else None
