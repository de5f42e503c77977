"""The settings of an engine evaluation: the one definition the CLI (and later the flow) derive from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.settings import check_settings, from_dict, setting


@dataclass
class EngineEvalConfig:
    """How an engine is scored against a labeled split (engine, data, report dir and the
    grounding checkpoint are given beside it)."""

    split: str = setting("val", "split, when the data path is a dataset dir")
    limit: int | None = setting(None, "evaluate only the first N images of the split", min=1)
    actors: int = setting(1, "engine actors in the Ray pool", min=1)
    preset: str | None = setting(None, "model preset of the --grounding checkpoint (for the released file)")
    rank_by: str | None = setting(
        None,
        "engine score that ranks an image's proposals for AR@1 and AR@10 (predicted_iou, "
        "stability_score, clip, ...) [the engine's own order]",
    )
    examples: int = setting(8, "best and worst proposals drawn on proposals.png (each)", min=1)
    ray_address: str | None = setting(None, "Ray cluster [default: UNILSEG_RAY_ADDRESS or a private local Ray]")

    def __post_init__(self) -> None:
        check_settings(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EngineEvalConfig:
        return from_dict(cls, d)
