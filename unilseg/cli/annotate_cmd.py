"""`unilseg annotate IMAGES --out DST [--engine NAME|CONFIG.yaml] [--actors N] ...`."""

from __future__ import annotations

import click


@click.command("annotate")
@click.argument("images", nargs=-1, required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Dataset dir; shards go to OUT/SPLIT.")
@click.option("--engine", default="weightfree", show_default=True,
              help="Engine preset (weightfree, sam-tiny-hf, sam-blip) or a YAML config file.")
@click.option("--split", default="train", show_default=True, help="Split to write.")
@click.option("--actors", default=1, show_default=True, help="Engine actors in the Ray pool.")
@click.option("--gpus-per-actor", default=0.0, show_default=True, help="GPUs per actor (fractions share a GPU).")
@click.option("--ray-address", default=None, help="Ray cluster (default: UNILSEG_RAY_ADDRESS or a private local Ray).")
@click.option("--max-count", default=1000, show_default=True, help="Samples per shard.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def command(images: tuple[str, ...], out: str, engine: str, split: str, actors: int, gpus_per_actor: float,
            ray_address: str | None, max_count: int, no_progress: bool) -> None:
    """Annotate unlabeled IMAGES (files, folders, globs or fsspec URLs) with the engine.

    Images already annotated by the same engine version are skipped; unreadable ones go to
    OUT/SPLIT/quarantine.jsonl and the run goes on.
    """
    from annotation_engine.run import annotate_images

    try:
        summary = annotate_images(list(images), out, engine=engine, split=split, actors=actors,
                                  gpus_per_actor=gpus_per_actor, ray_address=ray_address, max_count=max_count,
                                  progress=not no_progress)
    except (FileNotFoundError, KeyError, TypeError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    c = summary["counts"]
    click.echo(f"{out}/{split}: {c['samples']} images, {c['targets']} targets in {c['shards']} shards "
               f"(engine {summary['engine_version']}; this run: {summary['written']} written, "
               f"{summary['skipped']} already done, {summary['quarantined']} quarantined -> quarantine.jsonl)")
