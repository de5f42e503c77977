"""Data loading for training: shards -> (image, token ids, mask) per target.

- `dataset.TargetDataset`: the IterableDataset (mixing, rank/worker split, augmentation).
- `split`: which shards/samples each Ray Train rank x DataLoader worker reads.
- `mixing`: `--data DST[:WEIGHT]` parsing and weighted mixing.
- `augment`: aligned image/mask augmentation with the left/right flip rule.

Import from the submodules: this package imports nothing itself, so that the light ones
(`mixing`, used by the command line) do not pull in torch.
"""
