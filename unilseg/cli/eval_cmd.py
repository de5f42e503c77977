"""`unilseg eval --checkpoint CKPT | --predictions DIR --data DST --out REPORT_DIR`."""

from __future__ import annotations

import click


@click.command("eval")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False),
              help="Dataset dir (DATA/SPLIT is read) or a split dir (with dataset.json).")
@click.option("--split", default="val", show_default=True, help="Split, when --data is a dataset dir.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Report dir: metrics.json, report.md, overlays.png.")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False),
              help="Our training checkpoint, or the released UniLSeg20_no_finetune.pth (with --preset).")
@click.option("--preset", help="Model preset for a released checkpoint, e.g. unilseg-swin-b.")
@click.option("--predictions", type=click.Path(exists=True, file_okay=False),
              help="Score saved masks instead of a model: DIR/<target id>.png for every target, where "
                   "<target id> = <sample key>_<target index> (with --texts all: "
                   "<sample key>_<target index>_<text index>); 8-bit 0/255 masks or probability maps "
                   "(value/255) at the image's own size. A size mismatch is an error naming the target; a "
                   "missing file is counted and reported.")
@click.option("--texts", type=click.Choice(["first", "all"]), default="first", show_default=True,
              help="Score each target's first text, or every text as its own expression (RefCOCO's "
                   "protocol; needed to compare with published RefCOCO numbers).")
@click.option("--benchmark", help="Published benchmark to compare with: refcoco-val, refcoco+-testa, "
              "refcocog-test, refcocom-val, ... or 'none'. Default: inferred from the targets' source "
              "(refcoco(unc), refcoco+(unc), refcocog(umd)) and the split name.")
@click.option("--limit", type=click.IntRange(min=1), help="Score only the first N expressions.")
@click.option("--threshold", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              help="Foreground where probability > threshold [model's config (0.35); 0.5 for PNGs].")
@click.option("--overlays", "overlay_k", default=8, show_default=True, type=click.IntRange(min=1),
              help="Best and worst predictions drawn on overlays.png (each).")
@click.option("--device", help="torch device for the model [cuda if available, else cpu].")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def command(data: str, split: str, out: str, checkpoint: str | None, preset: str | None, predictions: str | None,
            texts: str, benchmark: str | None, limit: int | None, threshold: float | None, overlay_k: int,
            device: str | None, no_progress: bool) -> None:
    """Run a model (or score saved masks) over a shard split and report the field's metrics.

    Targets are grouped by task: res -> oIoU/mIoU/Prec@X, gres -> gIoU/cIoU/N-acc/T-acc,
    part -> RefCOCOm mIoU, semantic -> mIoU, sod/cod -> S-measure/maxF/MAE; other tasks are
    scored as referring segmentation. Published numbers are printed beside ours when the
    split is a known benchmark, scored whole.
    """
    from unilseg.checkpoint import CheckpointError
    from unilseg.eval.run import EvalError, evaluate

    if (checkpoint is None) == (predictions is None):
        raise click.UsageError("give exactly one of --checkpoint (run a model) or --predictions (saved masks)")
    if (preset or device) and not checkpoint:
        raise click.UsageError("--preset and --device go with --checkpoint")
    try:
        metrics = evaluate(data, out, checkpoint=checkpoint, preset=preset, predictions=predictions, split=split,
                           limit=limit, benchmark=benchmark, progress=not no_progress, texts=texts,
                           threshold=threshold, overlay_k=overlay_k, device=device)
    except (EvalError, CheckpointError, FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    for task, m in metrics.items():
        shown = ", ".join(f"{k} {v:.4f}" for k, v in m.items() if k != "n")
        click.echo(f"{task} ({int(m['n'])}): {shown}")
    click.echo(f"wrote {out}/metrics.json, {out}/report.md, {out}/overlays.png")
