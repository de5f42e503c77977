"""`convert` flow: labeled sets in their own layouts -> shards, one task per (set, split)."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task

from flows.artifacts import summarize_dataset
from flows.config import SYNTH_FORMAT, LabeledSet
from flows.paths import resolve
from flows.stages import retry_unless_user_error
from shards import storage
from shards.converters.convert import convert as convert_set
from shards.storage import Location
from shards.synth import ensure_shapes


@task(name="generate-synth-shapes")
def generate_synth(src: str, images: int, seed: int = 0) -> str:
    """The synthetic referring set in refer's layout; kept when a complete one is there."""
    ensure_shapes(src, images=images, seed=seed)
    return src


# Reading a network share or an object store can fail transiently; the writer skips what
# is already written, so a retry continues instead of starting over.
@task(name="convert-split", retries=2, retry_delay_seconds=10, retry_condition_fn=retry_unless_user_error)
def convert_split(
    fmt: str,
    src: str,
    out: str | Location,
    split: str,
    images: str | None,
    options: dict[str, Any],
) -> dict[str, Any]:
    kwargs = dict(options)
    if images:
        kwargs["images"] = images
    summary = convert_set(fmt, src, out, split, progress=False, **kwargs)
    return {k: summary[k] for k in ("written", "skipped", "quarantined", "counts")}


@flow(name="convert", log_prints=True)
def convert(
    sets: list[LabeledSet],
    data_root: str | Location = "data",
    preview_dir: str | Location | None = None,
) -> dict[str, Any]:
    """Converts every split of every labeled set into DATA_ROOT/<name>/<split>.

    Args:
        sets: the labeled sets (format, source folder, splits, options); sources are local.
        data_root: dataset root (relative paths from the project root; or an fsspec URL; a
            Location carries its storage options).
        preview_dir: where preview sheets go (default DATA_ROOT/previews).
    """
    log = get_run_logger()
    root = resolve(data_root)
    results: dict[str, Any] = {}
    for s in sets:
        fmt, src = s.format, s.src
        if fmt == SYNTH_FORMAT:
            # generated sources are local files: DATA_ROOT/sources/<name>, or for a data root at a
            # URL, the local folder shards.storage stages that location in
            local_src = resolve(src) if src else str(storage.staging_dir(storage.join(root, "sources", s.name)))
            src = generate_synth(local_src, s.synth_images, s.synth_seed)
            fmt = "refcoco"  # the synthetic set is written in refer's layout
        if src is None:
            raise ValueError(f"labeled set {s.name}: `src` is required for format {fmt}")
        out = storage.join(root, s.name)
        for split in s.splits:
            r = convert_split(fmt, resolve(src), out, split, s.images and resolve(s.images), s.options)
            log.info(
                "%s/%s: %d written, %d already there, %d quarantined",
                s.name,
                split,
                r["written"],
                r["skipped"],
                r["quarantined"],
            )
        summary = summarize_dataset(s.name, out, preview_dir or storage.join(root, "previews"))
        results[s.name] = {"dataset": str(out), "splits": s.splits, "weight": s.weight, "previews": summary["previews"]}
    return results
