"""`evaluate` flow: a checkpoint over shard datasets -> metrics.json, report.md, overlays."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from prefect import flow, get_run_logger, task

from flows.artifacts import publish_files, publish_report
from shards.manifest import read_dataset_json


@task(name="evaluate-dataset")
def evaluate_task(data: str, out: str, checkpoint: str, preset: Optional[str], split: str,
                  limit: Optional[int]) -> dict[str, Any]:
    from unilseg.eval.run import evaluate as run_eval

    return run_eval(data, out, checkpoint=checkpoint, preset=preset, split=split, limit=limit, progress=False)


@flow(name="evaluate", log_prints=True)
def evaluate(checkpoint: str, datasets: list[str], out: str, split: str = "val", preset: Optional[str] = None,
             limit: Optional[int] = None) -> dict[str, Any]:
    """Evaluates CHECKPOINT on SPLIT of each dataset; reports go to OUT/<dataset name>/.

    Args:
        checkpoint: our training checkpoint, or the released UniLSeg-20 file with `preset`.
        datasets: dataset directories.
        out: report root.
        split: split to evaluate.
        preset: preset name for the released checkpoint.
        limit: targets per dataset at most.
    """
    log = get_run_logger()
    results = {}
    for data in datasets:
        name = Path(data).name
        report_dir = Path(out) / name
        targets = read_dataset_json(Path(data) / split).get("counts", {}).get("targets", "?")
        log.info("evaluating %s/%s: %s targets%s", name, split, targets, f" (at most {limit})" if limit else "")
        metrics = evaluate_task(data, str(report_dir), checkpoint, preset, split, limit)
        publish_report(name, report_dir / "report.md")
        publish_files(f"eval-files-{name}", {p.name: p for p in sorted(report_dir.iterdir())},
                      f"Evaluation files of {name}")
        log.info("%s/%s: %s", name, split, metrics)
        results[name] = {"report_dir": str(report_dir), "metrics": metrics}
    return results
