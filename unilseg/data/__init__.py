"""Data loading for training: shards -> (image, token ids, mask) per target.

- `dataset.TargetDataset`: the IterableDataset (mixing, rank/worker split, augmentation).
- `split`: which shards/samples each Ray Train rank x DataLoader worker reads.
- `mixing`: `--data DST[:WEIGHT]` parsing and weighted mixing.
- `augment`: aligned image/mask augmentation with the left/right flip rule.
"""

from .augment import AugmentConfig, augment_sample, letterbox_sample, mentions_left_right, swap_left_right_words
from .dataset import TargetDataset
from .mixing import parse_data_spec, resolve_split_dir, weighted_mix
from .split import ReaderPlan, plan_epoch, reader_identity

__all__ = ["AugmentConfig", "TargetDataset", "augment_sample", "letterbox_sample", "mentions_left_right",
           "swap_left_right_words",
           "parse_data_spec", "resolve_split_dir", "weighted_mix", "ReaderPlan", "plan_epoch", "reader_identity"]
