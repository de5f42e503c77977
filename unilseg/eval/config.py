"""The settings of an evaluation: the one definition the CLI and the flows derive from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.settings import check_settings, from_dict, setting

TEXT_MODES = ("first", "all")


@dataclass
class EvalConfig:
    """How a split is scored (what is scored: a checkpoint or saved masks, given beside it)."""

    split: str = setting("val", "split, when the data path is a dataset dir")
    texts: str = setting(
        "first",
        "score each target's first text, or every text as its own expression "
        "(RefCOCO's protocol; needed to compare with published RefCOCO numbers)",
        choices=TEXT_MODES,
    )
    limit: int | None = setting(
        None, "score only the first N expressions (then nothing is compared with published numbers)", min=1
    )
    threshold: float | None = setting(
        None, "foreground where probability > threshold [the model's config; 0.5 for saved PNG masks]", min=0, max=1
    )
    benchmark: str | None = setting(
        None,
        "published benchmark to compare with (refcoco-val, refcoco+-testa, "
        "refcocog-test, refcocom-val, ...) or 'none' [inferred from the targets' "
        "source and the split]",
    )
    overlay_k: int = setting(8, "best and worst predictions drawn on overlays.png (each)", min=1, cli="--overlays")
    preset: str | None = setting(None, "model preset, for a released checkpoint (unilseg-swin-b)")
    device: str | None = setting(None, "torch device for the model [cuda if available, else cpu]")
    skip_missing: bool = setting(
        False,
        "with saved masks: leave an expression whose PNG is missing out of the "
        "score (by default a missing PNG counts as wrong in every metric: IoU 0, a no-target "
        "expression as a false positive)",
    )

    def __post_init__(self) -> None:
        check_settings(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalConfig:
        return from_dict(cls, d)
