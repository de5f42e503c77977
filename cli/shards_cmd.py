"""`unilseg shards verify|stats|preview|export coco`.

On a damaged split every command exits non-zero: `verify` lists what is wrong, `stats` and
`preview` say in one line what they found (shards.integrity).

PATH is a local path or an fsspec URL (s3://bucket/data/NAME); a missing one is reported by
the library in one line.
"""

from __future__ import annotations

import json
import sys

import click


@click.group("shards")
def command() -> None:
    """Inspect shard datasets: verify, stats, preview."""


@command.command("verify")
@click.argument("path")
@click.option("--shallow", is_flag=True, help="Check checksums and counts only, not every sample.")
def verify(path: str, shallow: bool) -> None:
    """Check every split under PATH; exit 1 and say what is wrong if anything is."""
    from common.errors import ShardError
    from shards.integrity import as_shard_error, check_split
    from shards.verify import VerifyReport, find_splits, verify_split  # the reader imports webdataset: when it runs

    splits = find_splits(path)
    if not splits:
        raise click.ClickException(f"no split (dataset.json) under {path}")
    bad = 0
    for split in splits:
        try:
            rep = verify_split(split, deep=not shallow)
        except Exception as e:  # a shard so damaged that the check itself failed on it: a finding too
            err = as_shard_error(e, split)
            if err is e and not isinstance(e, (KeyError, ValueError)):
                raise
            rep = VerifyReport(str(split), errors=[f"cannot be verified: {err}"])
        if rep.ok:  # the metadata check the other commands run first (a deleted manifest, for one)
            try:
                check_split(split)
            except ShardError as e:
                rep.errors.append(str(e))
        click.echo(f"{'OK  ' if rep.ok else 'FAIL'} {split}")
        for w in rep.warnings:
            click.echo(f"  warning: {w}")
        for e in rep.errors:
            click.echo(f"  error: {e}")
        bad += not rep.ok
    if bad:
        click.echo(f"{bad} of {len(splits)} split(s) failed verification", err=True)
        sys.exit(1)


METADATA_ONLY_HELP = "Trust the shards: skip reading them (checksums, member names); metadata is checked either way."


def _check_whole(split: str, metadata_only: bool) -> None:
    """A damaged split is one error line: its metadata, then (unless metadata_only) every shard
    read once (sha256, member names)."""
    from shards.integrity import check_shards, check_split

    check_split(split)
    if not metadata_only:
        check_shards(split)


@command.command("stats")
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--metadata-only", is_flag=True, help=METADATA_ONLY_HELP)
def stats(path: str, as_json: bool, metadata_only: bool) -> None:
    """Counts of images and targets by task, granularity and source.

    A damaged split has no meaningful counts: it is one error line and exit 1. Every shard is
    read once for that (its sha256 and members), unless --metadata-only."""
    from shards.stats import dataset_stats, format_stats  # pyarrow: imported when it runs
    from shards.verify import find_splits

    for split in find_splits(path):
        _check_whole(split, metadata_only)
    try:
        result = dataset_stats(path)
    except FileNotFoundError as e:
        raise click.ClickException(str(e)) from e
    click.echo(json.dumps(result, indent=1) if as_json else format_stats(result))


@command.command("preview")
@click.argument("path")
@click.option("--out", required=True, help="PNG file to write (a local path or URL).")
@click.option("--limit", default=36, show_default=True, help="Targets to draw.")
@click.option("--task", "tasks", multiple=True, help="Only these tasks (repeatable).")
@click.option("--metadata-only", is_flag=True, help=METADATA_ONLY_HELP)
def preview(path: str, out: str, limit: int, tasks: tuple[str, ...], metadata_only: bool) -> None:
    """Contact sheet of images with masks overlaid and their texts.

    The sheet draws the first --limit targets of the first split under PATH, but the split is
    checked whole first, as `stats` does: a damaged shard the sheet would not reach is still one
    error line and exit 1 (every shard is read once for that, unless --metadata-only)."""
    from shards.preview import preview_split  # the reader imports webdataset: when it runs
    from shards.verify import find_splits

    splits = find_splits(path)
    if not splits:
        raise click.ClickException(f"no split (dataset.json) under {path}")
    _check_whole(splits[0], metadata_only)
    n = preview_split(splits[0], out, limit=limit, tasks=tasks or None)
    click.echo(f"wrote {out} ({n} targets from {splits[0]})")


@command.group("export")
def export() -> None:
    """Write a split in another tool's format."""


@export.command("coco")
@click.argument("path")
@click.option("--split", default="train", show_default=True, help="Split, when PATH is a dataset dir.")
@click.option("--out", required=True, help="COCO JSON file to write (local path or URL).")
def export_coco(path: str, split: str, out: str) -> None:
    """Any split as one COCO JSON file: images, targets as COCO RLE, expressions as refer-style
    sentences (`refs`), so that pycocotools, FiftyOne and CVAT open it. The split is checked first."""
    from shards.export_coco import export_coco as write_coco
    from shards.layout import resolve_split_dir

    split_dir = resolve_split_dir(path, split)
    _check_whole(split_dir, metadata_only=False)
    n = write_coco(split_dir, out)
    click.echo(f"wrote {out}: {n['images']} images, {n['annotations']} annotations, {n['refs']} refs")
