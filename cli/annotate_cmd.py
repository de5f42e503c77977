"""`unilseg annotate IMAGES --out DST [--engine NAME|CONFIG.yaml] [--actors N] ...`.

Every option but --out and --no-progress is derived from AnnotateConfig (one definition).
"""

from __future__ import annotations

import click

from annotation_engine.run_config import AnnotateConfig
from cli.options import pick, settings_options, verbose_option


@click.command("annotate")
@click.argument("images", nargs=-1, required=True)
@click.option("--out", required=True, help="Dataset dir; shards go to OUT/SPLIT.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@verbose_option
@settings_options(AnnotateConfig)
def command(images: tuple[str, ...], out: str, no_progress: bool, **settings) -> None:
    """Annotate unlabeled IMAGES (files, folders, globs or fsspec URLs) with the engine.

    Images already annotated by the same engine version are skipped; unreadable ones go to
    OUT/SPLIT/quarantine.jsonl and the run goes on.
    """
    from annotation_engine.driver import annotate_images  # Ray and the engine: imported when it runs

    run = pick(settings, AnnotateConfig)
    summary = annotate_images(list(images), out, progress=not no_progress, **run)
    c = summary["counts"]
    click.echo(
        f"{out}/{run['split']}: {c['samples']} images, {c['targets']} targets in {c['shards']} shards "
        f"(engine {summary['engine_version']}; this run: {summary['written']} written, "
        f"{summary['skipped']} already done, {summary['quarantined']} quarantined -> quarantine.jsonl)"
    )
