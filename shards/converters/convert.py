"""The converter driver: source -> ShardWriter, with skipping, quarantine and progress.

``convert`` writes one split; ``convert_splits`` every split the source has (or those named),
each to ``out/<split>``.
"""

from __future__ import annotations

import inspect
import itertools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tqdm import tqdm

from common.errors import MissingInputError, describe
from shards import storage
from shards.converters import CONVERTERS, DEFAULT_SPLIT, ConvertError, Item, Rejected, get_converter
from shards.format import FormatError
from shards.images import ImageError
from shards.rle import RLEError
from shards.writer import DEFAULT_MAX_COUNT, ShardWriter

log = logging.getLogger(__name__)
# Errors that mean "this input is bad": quarantined, the run goes on. Anything else is a bug.
BAD_INPUT = (ConvertError, ImageError, FormatError, RLEError, OSError)


@contextmanager
def _missing_as_user_error() -> Iterator[None]:
    """A file a converter looks for and does not find is the user's to fix: one line, no traceback."""
    try:
        yield
    except MissingInputError:
        raise
    except FileNotFoundError as e:
        raise MissingInputError(str(e)) from e


def convert(
    fmt: str,
    src: str | Path,
    out: str | Path,
    split: str = "train",
    *,
    max_count: int = DEFAULT_MAX_COUNT,
    progress: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """Converts a source dataset into ``out/split``.

    Args:
        fmt: registered converter name (``unilseg convert --help`` lists them).
        src: the dataset folder as downloaded.
        out: the dataset directory (``DATA_ROOT/NAME``, a local path or fsspec URL); shards go
            to ``out/split``.
        split: split name to write (and, for sets that have splits, to select).
        max_count: samples per shard.
        progress: show a progress bar.
        **options: converter-specific options.

    Returns:
        dict: dataset.json of the split, plus ``written``/``skipped``/``quarantined`` of this run.
    """
    src = Path(src)
    if not src.exists():
        raise MissingInputError(f"source {src} does not exist")
    converter = get_converter(fmt)
    check_options(fmt, options)
    # Start the listing before the writer exists: a wrong split or a malformed annotation
    # file fails here and leaves no empty split marked complete behind.
    with _missing_as_user_error():
        items = iter(converter(src, split=split, **options))
        first = next(items, None)
    items = itertools.chain([first] if first is not None else [], items)
    written = skipped = rejected = 0
    with ShardWriter(storage.join(out, split), max_count=max_count) as writer:
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
                writer.quarantine(item.name, describe(e), format=fmt)
                rejected += 1
                continue
            written += 1
        summary = writer.close()
    summary.update(written=written, skipped=skipped, quarantined=rejected)
    return summary


def source_splits(fmt: str, src: str | Path, **options: Any) -> list[str] | None:
    """The splits a source holds, as the format's registered ``splits`` function finds them;
    None for a format (or an explicit annotation file) without splits of its own."""
    find = CONVERTERS.meta(fmt).get("splits")
    if find is None:
        return None
    with _missing_as_user_error():
        return find(Path(src), **options)


def convert_splits(
    fmt: str,
    src: str | Path,
    out: str | Path,
    splits: list[str] | None = None,
    *,
    max_count: int = DEFAULT_MAX_COUNT,
    progress: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """Converts every split of a source (or the ``splits`` named), each into ``out/<split>``.

    Args:
        fmt: registered converter name.
        src: the dataset folder as downloaded.
        out: the dataset directory; split S goes to ``out/S``.
        splits: the splits to convert; None = every split the source has (a format without
            splits of its own writes DEFAULT_SPLIT).
        max_count, progress, **options: as for ``convert``.

    Returns:
        dict: ``found`` (the source's splits, None for a format without them) and ``splits``
        (split -> ``convert``'s summary), in conversion order.

    Raises:
        MissingInputError: the source does not exist, or holds no split.
    """
    todo, found = plan_splits(fmt, src, splits, **options)
    done = {split: convert(fmt, src, out, split, max_count=max_count, progress=progress, **options) for split in todo}
    return {"found": found, "splits": done}


def plan_splits(
    fmt: str, src: str | Path, splits: list[str] | None = None, **options: Any
) -> tuple[list[str], list[str] | None]:
    """(the splits to convert, the splits the source has or None): ``splits`` when given, else
    every split found, else DEFAULT_SPLIT for a format without splits of its own.

    Raises:
        MissingInputError: the source does not exist, or holds no split.
    """
    if not Path(src).exists():
        raise MissingInputError(f"source {src} does not exist")
    check_options(fmt, options)  # an unknown format fails with the known ones listed, a bad option with its own
    found = source_splits(fmt, src, **options)
    if splits is None:
        if found is not None and not found:
            raise MissingInputError(f"no split of a {fmt} source found under {src}")
        splits = found if found is not None else [DEFAULT_SPLIT]
    return list(splits), found


def check_options(fmt: str, options: dict[str, Any]) -> None:
    """A converter option the format does not take (``--option k=v``, ``--images``, the YAML's
    ``options:``) is one line naming the options it does take, not a TypeError from inside.

    Raises:
        UnknownNameError: ``fmt`` is not a registered format.
        ConvertError: an option ``fmt`` does not take.
    """
    params = inspect.signature(get_converter(fmt)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    takes = [n for n in list(params)[1:] if n != "split"]  # the first parameter is the source folder
    unknown = sorted(set(options) - set(takes))
    if unknown:
        raise ConvertError(
            f"format {fmt} has no option {', '.join(unknown)}; its options: {', '.join(takes) or 'none'}"
        )
