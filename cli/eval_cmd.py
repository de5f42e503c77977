"""`unilseg eval --checkpoint CKPT | --predictions DIR --data DST --out REPORT_DIR`.

Every option but --data, --out, --checkpoint, --predictions and --no-progress is derived
from EvalConfig (one definition).
"""

from __future__ import annotations

from pathlib import Path

import click

from cli.options import pick, settings_options, verbose_option
from unilseg.eval.config import EvalConfig


@click.command("eval")
@click.option("--data", required=True, help="Dataset dir (DATA/SPLIT is read) or a split dir (with dataset.json).")
@click.option("--out", required=True, help="Report dir: metrics.json, report.md, overlays.png.")
@click.option(
    "--checkpoint", help="Our training checkpoint, or the released UniLSeg20_no_finetune.pth (with --preset)."
)
@click.option(
    "--predictions",
    help="Score saved masks instead of a model: DIR/<target id>.png for every target, where "
    "<target id> = <sample key>_<target index> (with --texts all: "
    "<sample key>_<target index>_<text index>); 8-bit 0/255 masks or probability maps "
    "(value/255) at the image's own size. A size mismatch is an error naming the target; a "
    "missing file counts as wrong in every metric (IoU 0 on a target; a false positive, not a "
    "correct rejection, on a no-target expression) unless --skip-missing.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@verbose_option
@settings_options(EvalConfig)
def command(
    data: str, out: str, checkpoint: str | None, predictions: str | None, no_progress: bool, **settings
) -> None:
    """Run a model (or score saved masks) over a shard split and report the field's metrics.

    Targets are grouped by task: res -> oIoU/mIoU/Prec@X, gres -> gIoU/cIoU/N-acc/T-acc,
    part -> RefCOCOm mIoU, semantic -> mIoU, sod/cod -> S-measure/maxF/MAE; other tasks are
    scored as referring segmentation. Published numbers are printed beside ours when the
    split is a known benchmark, scored whole.
    """
    import json

    from unilseg.eval.evaluate import evaluate  # shard reading, metrics, maybe torch: when it runs
    from unilseg.eval.report import METRICS_JSON

    if (checkpoint is None) == (predictions is None):
        raise click.UsageError("give exactly one of --checkpoint (run a model) or --predictions (saved masks)")
    metrics = evaluate(
        data,
        out,
        checkpoint=checkpoint,
        predictions=predictions,
        progress=not no_progress,
        **pick(settings, EvalConfig),
    )
    for task, m in metrics.items():
        shown = ", ".join(f"{k} {v:.4f}" for k, v in m.items() if k != "n")
        click.echo(f"{task} ({int(m['n'])}): {shown}")
    if predictions is not None:  # how many saved masks were missing, and what that did to the numbers
        missing = json.loads((Path(out) / METRICS_JSON).read_text())["missing"]
        how = (
            "left out of the score (--skip-missing)"
            if missing["counted_as"] == "skipped"
            else "counted as wrong (IoU 0; a no-target one as a false positive)"
        )
        nt = f" ({missing['no_target']} no-target)" if missing["no_target"] else ""
        click.echo(f"{missing['count']} prediction(s) missing{nt}" + (f": {how}" if missing["count"] else ""))
    click.echo(f"wrote {out}/metrics.json, {out}/report.md, {out}/overlays.png")
