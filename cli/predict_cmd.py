"""`unilseg predict --checkpoint CKPT IMAGE "TEXT" --out mask.png [--overlay over.png]`."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("predict")
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.argument("text")
@click.option(
    "--checkpoint",
    required=True,
    help="Our training checkpoint (e.g. RUN/latest.pt) or the released UniLSeg20_no_finetune.pth.",
)
@click.option("--preset", default=None, help="Model preset; needed for the released file (unilseg-swin-b).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Mask PNG to write (0/255, image size).")
@click.option(
    "--overlay",
    "overlay_path",
    type=click.Path(dir_okay=False),
    help="Also write the image with the mask drawn over it.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1),
    default=None,
    help="Foreground probability threshold [the model's config].",
)
@click.option("--device", default="cpu", show_default=True, help="torch device.")
def command(
    image: str,
    text: str,
    checkpoint: str,
    preset: str | None,
    out: str,
    overlay_path: str | None,
    threshold: float | None,
    device: str,
) -> None:
    """Segment what TEXT refers to in IMAGE."""
    # torch and the model: imported when it runs (seconds)
    import numpy as np
    from PIL import Image

    from shards.format import check_expression
    from shards.images import ImageError, read_rgb
    from shards.preview import overlay
    from unilseg.model import predict
    from unilseg.model.loading import load_model

    check_expression(text)  # before the model loads
    try:
        rgb = read_rgb(Path(image).read_bytes())  # as the photo is shown: EXIF orientation applied
    except ImageError as e:
        raise ImageError(f"{image}: {e}") from e
    model = load_model(checkpoint, preset).to(device)
    mask = predict(model, rgb, text, threshold=threshold)  # (H, W) bool
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(out)
    msg = f"wrote {out} ({mask.shape[1]}x{mask.shape[0]}, {100 * mask.mean():.1f}% foreground)"
    if overlay_path:
        Path(overlay_path).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(overlay(rgb, mask, (255, 40, 40))).save(overlay_path)
        msg += f" and {overlay_path}"
    click.echo(msg)
