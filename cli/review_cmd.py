"""`unilseg review export|import|demo`: people review the least certain targets in Label Studio.

    unilseg review export DATA --split SPLIT --project NAME [--lowest N --by SCORE | --below T --by SCORE] [--sample N]
    unilseg review import --project NAME --data DATA --split SPLIT --out OUT
    unilseg review demo        # `make review`: after `make demo`, the 20 least certain photo targets

Label Studio is found with --url / --api-key, else LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY
(`unilseg stack up` writes them to .state/stack.env). Export's selection options are derived from
ReviewConfig (one definition, shared with the pipeline's `review:` section).
"""

from __future__ import annotations

import click

from annotation_engine.review.config import ReviewConfig
from cli.options import pick, settings_options

url_option = click.option("--url", help="Label Studio's URL [default: LABEL_STUDIO_URL].")
key_option = click.option("--api-key", help="Label Studio API key [default: LABEL_STUDIO_API_KEY].")


@click.group("review")
def command() -> None:
    """People in the loop: review the least certain targets in Label Studio, import the corrections."""


@command.command("export")
@click.argument("data")
@click.option("--split", default="train", show_default=True, help="Split, when DATA is a dataset dir.")
@click.option("--project", required=True, help="Label Studio project (created, or extended, by this name).")
@url_option
@key_option
@settings_options(ReviewConfig)
def export_cmd(data: str, split: str, project: str, url: str | None, api_key: str | None, **settings) -> None:
    """Put the chosen targets of a split into a Label Studio project; print where to review them.

    Each task shows the image, the expression (editable), the engine's mask as a pre-annotation
    with its score, and accept / reject. Exporting again adds only targets not yet in the project."""
    from annotation_engine.review.export import export_for_review
    from shards.layout import resolve_split_dir

    cfg = ReviewConfig(**pick(settings, ReviewConfig))
    r = export_for_review(resolve_split_dir(data, split), project, cfg, url=url, api_key=api_key)
    click.echo(f"{r['picked']} targets chosen: {r['added']} added to project {project!r}, {r['already']} already there")
    click.echo(f"Review them at {r['url']}")


@command.command("import")
@click.option("--project", required=True, help="The Label Studio project the split was exported to.")
@click.option("--data", required=True, help="The dataset dir (DATA/SPLIT is read) or the split dir.")
@click.option("--split", default="train", show_default=True, help="Split, when --data is a dataset dir.")
@click.option("--out", required=True, help="Where the reviewed split goes (a new split; the original stays).")
@url_option
@key_option
def import_cmd(project: str, data: str, split: str, out: str, url: str | None, api_key: str | None) -> None:
    """Write OUT, the reviewed version of the split, from the project's finished reviews.

    Accepted targets keep their mask and text (provenance: who verified them, when); corrected
    ones get the person's mask or text (provenance: human, the engine's original kept); rejected
    ones are left out and listed in OUT/rejected.jsonl; the rest are as they were. Importing
    again with no new reviews changes nothing."""
    from annotation_engine.review.export import import_reviews
    from shards.layout import resolve_split_dir

    r = import_reviews(project, resolve_split_dir(data, split), out, url=url, api_key=api_key)
    for p in r["problems"]:
        click.echo(f"warning: {p} (left out)", err=True)
    what = "wrote" if r["written"] else "unchanged (no new reviews):"
    click.echo(
        f"{what} {out}: {r['samples']} images, {r['targets']} targets; {r['decisions']} reviewed "
        f"({r['accept']} accepted or corrected, {r['reject']} rejected)"
    )


@command.command("demo")
@click.option("--data", default="data/auto", show_default=True, help="The demo's annotated photos.")
@click.option("--project", default="demo-review", show_default=True)
@click.option("--lowest", default=20, show_default=True, help="How many of the least certain targets.")
@click.option("--by", default="contrast", show_default=True, help="The weight-free engine's score.")
def demo_cmd(data: str, project: str, lowest: int, by: str) -> None:
    """`make review`: the demo's least certain photo targets into a project (the stack's Label
    Studio, started with the stack if it is not running); prints where to review them."""
    import os

    from annotation_engine.review.export import export_for_review
    from cli.stack import label_studio_hint, wait_label_studio
    from cli.stack_config import ROOT, StackConfig
    from shards.layout import resolve_split_dir

    cfg = StackConfig.from_env()
    split = resolve_split_dir(data if os.path.isabs(data) else ROOT / data, "train")  # before the wait: said at once
    os.environ.update(wait_label_studio(cfg))
    r = export_for_review(split, project, ReviewConfig(by=by, lowest=lowest))
    click.echo(f"{r['added']} of the {r['picked']} least certain targets by {by!r} added to {project!r}")
    click.echo(f"Review them at {r['url']}")
    click.echo(f"Label Studio: {label_studio_hint(cfg)}; `make down` stops it with the stack")
