"""The settings of an annotation run: the one definition the CLI and the flows derive from.

What the engine computes is its EngineConfig (a preset or YAML file, named by ``engine``);
these settings say where it runs and how the output is cut into shards, which never
changes the targets written (so they are not part of the engine version).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from annotation_engine.engine_config import DEFAULT_ENGINE
from common.settings import check_settings, from_dict, setting
from shards.writer import DEFAULT_MAX_COUNT


@dataclass
class AnnotateConfig:
    """One annotation run (images and output location are given beside it)."""

    engine: str | dict = setting(
        DEFAULT_ENGINE,
        "engine preset (weightfree, sam-tiny-hf, sam-blip), a YAML config file, or (in code and YAML) a config mapping",
    )
    split: str = setting("train", "split to write")
    actors: int = setting(1, "engine actors in the Ray pool", min=1)
    gpus_per_actor: float = setting(0.0, "GPUs per actor (fractions share a GPU; 0: the engine config's)", min=0)
    max_count: int = setting(DEFAULT_MAX_COUNT, "samples per shard", min=1)
    ledgers: int = setting(
        1,
        "bookkeeping partitions (Ray actors, on the driver's node): one per million listed images "
        "keeps each near 500 MB (README: How far it scales)",
        min=1,
    )
    ray_address: str | None = setting(None, "Ray cluster [default: UNILSEG_RAY_ADDRESS or a private local Ray]")
    node_resources: dict = setting(
        help="custom Ray resources a node must offer to run the engine actors and the "
        "shard writers, e.g. {annotate: 1} to keep them off the head node",
        factory=dict,
        cli=False,
    )

    def __post_init__(self) -> None:
        check_settings(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnnotateConfig:
        return from_dict(cls, d)
