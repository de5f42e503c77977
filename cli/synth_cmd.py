"""`unilseg synth shapes --out SRC`: the synthetic referring set, in refer's layout."""

from __future__ import annotations

import click


@click.group("synth")
def command() -> None:
    """Generate synthetic labeled sets (ground truth for tiny CPU models and tests)."""


@command.command("shapes")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Dataset folder to write (refs(unc).p, instances.json, images/).",
)
@click.option(
    "--images", "n_images", default=1000, show_default=True, type=click.IntRange(min=1), help="Number of images."
)
@click.option("--seed", default=0, show_default=True, help="Base seed: same seed, same files.")
@click.option("--size", default=128, show_default=True, type=click.IntRange(min=48), help="Image side in pixels.")
def shapes(out: str, n_images: int, seed: int, size: int) -> None:
    """Coloured shapes and objects with parts, with unambiguous referring expressions.

    Writes OUT in refer's layout (RefCOCO's), splits train/val/testA/testB; convert it with
    `unilseg convert refcoco OUT --out DST` (every split).
    """
    from shards.synth import generate_shapes  # scikit-image and PIL drawing: imported when it runs

    counts = generate_shapes(out, images=n_images, seed=seed, size=size)
    splits = ", ".join(f"{k} {v}" for k, v in counts["splits"].items())
    click.echo(
        f"{out}: {counts['images']} images ({splits}), {counts['refs']} refs, "
        f"{counts['sentences']} sentences, {counts['annotations']} annotations"
    )
