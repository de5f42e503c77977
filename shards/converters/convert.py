"""The converter driver: source -> ShardWriter, with skipping, quarantine and progress."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

from tqdm import tqdm

from shards import storage
from shards.converters import ConvertError, Item, Rejected, get_converter
from shards.errors import MissingInputError
from shards.format import FormatError
from shards.images import ImageError
from shards.rle import RLEError
from shards.writer import DEFAULT_MAX_COUNT, ShardWriter

log = logging.getLogger(__name__)
# Errors that mean "this input is bad": quarantined, the run goes on. Anything else is a bug.
BAD_INPUT = (ConvertError, ImageError, FormatError, RLEError, OSError)


def convert(fmt: str, src: str | Path, out: str | Path, split: str = "train", *,
            max_count: int = DEFAULT_MAX_COUNT, progress: bool = True, storage_options: storage.StorageOptions = None,
            **options: Any) -> dict[str, Any]:
    """Converts a source dataset into ``out/split``.

    Args:
        fmt: registered converter name (``unilseg convert --help`` lists them).
        src: the dataset folder as downloaded.
        out: the dataset directory (``DATA_ROOT/NAME``, a local path or fsspec URL); shards go
            to ``out/split``.
        split: split name to write (and, for sets that have splits, to select).
        max_count: samples per shard.
        progress: show a progress bar.
        storage_options: fsspec options for ``out`` at a URL (``src`` is a local folder).
        **options: converter-specific options.

    Returns:
        dict: dataset.json of the split, plus ``written``/``skipped``/``quarantined`` of this run.
    """
    src = Path(src)
    if not src.exists():
        raise MissingInputError(f"source {src} does not exist")
    converter = get_converter(fmt)
    # Start the listing before the writer exists: a wrong split or a malformed annotation
    # file fails here and leaves no empty split marked complete behind.
    items = iter(converter(src, split=split, **options))
    first = next(items, None)
    items = itertools.chain([first] if first is not None else [], items)
    written = skipped = rejected = 0
    with ShardWriter(storage.join(out, split), max_count=max_count, storage_options=storage_options) as writer:
        for item in tqdm(items, desc=f"convert {fmt}", unit="img", disable=not progress):
            if isinstance(item, Rejected):
                writer.quarantine(item.name, item.reason, format=fmt)
                rejected += 1
                continue
            assert isinstance(item, Item)
            if writer.has(item.key):
                skipped += 1
                continue
            try:
                sample = item.build()
                writer.write(sample)
            except BAD_INPUT as e:
                writer.quarantine(item.name, str(e), format=fmt)
                rejected += 1
                continue
            written += 1
        summary = writer.close()
    summary.update(written=written, skipped=skipped, quarantined=rejected)
    return summary
