"""The settings of a review export: which targets go to people. The one definition the
command line (`unilseg review export`) and the pipeline's `review:` section derive from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.errors import UniLSegError
from common.settings import check_settings, from_dict, setting

PRESIGN_MAX_S = 7 * 24 * 3600  # S3's limit for a presigned URL (SigV4)


@dataclass
class ReviewConfig:
    """Which targets of a split are reviewed, and how their images reach the reviewers."""

    by: str | None = setting(
        None,
        "engine score that orders targets for --lowest / --below (predicted_iou, stability_score, "
        "clip, contrast, ...; the engine-quality report shows which predict IoU)",
    )
    lowest: int | None = setting(None, "the N targets with the lowest --by score", min=1)
    below: float | None = setting(None, "every target whose --by score is below T")
    sample: int = setting(
        0, "also N random targets of the rest, so that reviewers audit what the engine was sure of", min=0
    )
    seed: int = setting(0, "seed of the random sample", min=0)
    url_expiry: int = setting(
        PRESIGN_MAX_S,
        "lifetime (s) of presigned image URLs, for a split at s3:// and the like",
        min=60,
        max=PRESIGN_MAX_S,
    )

    def __post_init__(self) -> None:
        check_settings(self)
        if self.lowest is not None and self.below is not None:
            raise UniLSegError("give --lowest N or --below T, not both")
        if (self.lowest is not None or self.below is not None) and not self.by:
            raise UniLSegError("--lowest and --below need --by SCORE (the engine score that orders targets)")
        if self.lowest is None and self.below is None and not self.sample:
            raise UniLSegError("say which targets to review: --lowest N or --below T with --by SCORE; or --sample N")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReviewConfig:
        return from_dict(cls, d)
