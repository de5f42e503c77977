"""`unilseg eval-engine ENGINE --data DATA --out REPORT [--grounding CKPT [--preset P]] [--limit N] ...`.

Every option but --data, --out, --grounding and --no-progress is derived from
EngineEvalConfig (one definition).
"""

from __future__ import annotations

import click

from annotation_engine.quality.config import EngineEvalConfig
from cli.options import pick, settings_options, verbose_option


@click.command("eval-engine")
@click.argument("engine")
@click.option("--data", required=True, help="Labeled dataset dir (DATA/SPLIT is read) or a split dir.")
@click.option(
    "--out",
    required=True,
    help="Report dir: report.md, metrics.json, recall.png, scores.png, proposals.png, "
    "proposals.json, ground_truth.json; the engine's shards in OUT/proposals.",
)
@click.option(
    "--grounding",
    help="UniLSeg checkpoint that reads each generated expression back (hit rate beside the ground "
    "truth's); without it, expressions are compared with the ground truth's by MiniLM similarity.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@verbose_option
@settings_options(EngineEvalConfig)
def command(engine: str, data: str, out: str, grounding: str | None, no_progress: bool, **settings) -> None:
    """Score ENGINE (what `unilseg annotate --engine` takes) against a labeled split.

    The engine runs over the split's images through the annotate pipeline (Ray actors; nothing
    is written into DATA) and its proposals are matched to the ground truth: class-agnostic
    recall (COCOeval, AR@1/10/100, by granularity and size), precision, how well each engine
    score predicts IoU, and whether generated expressions single out their masks.
    """
    from annotation_engine.quality.run import evaluate_engine  # Ray, pycocotools, torch: when it runs

    m = evaluate_engine(
        engine, data, out, grounding=grounding, progress=not no_progress, **pick(settings, EngineEvalConfig)
    )
    k = m["masks"]
    click.echo(
        f"AR@1 {k['AR@1']:.4f}, AR@10 {k['AR@10']:.4f}, AR@100 {k['AR@100']:.4f}, "
        f"recall@0.5 {k['recall@0.5']:.4f}, precision@0.5 {k['precision@0.5']:.4f} "
        f"({k['n_images']} images, {k['n_truth']} masks, {k['n_proposals']} proposals; "
        f"{m['images']['quarantined']} quarantined)"
    )
    click.echo(f"wrote {out}/report.md, {out}/metrics.json, pictures, proposals.json, ground_truth.json")
