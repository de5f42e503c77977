"""`evaluate` flow: a checkpoint over shard datasets -> metrics.json, report.md, overlays."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task

from flows.artifacts import publish_files, publish_image, publish_metrics, publish_report
from flows.config import EvaluateStage
from shards import storage
from shards.manifest import read_dataset_json
from shards.storage import Location
from unilseg.eval.evaluate import evaluate as evaluate_split
from unilseg.eval.report import OVERLAYS


@task(name="evaluate-dataset")
def evaluate_task(
    data: str | Location, out: str | Location, checkpoint: str | Location, settings: dict[str, Any]
) -> dict[str, Any]:
    return evaluate_split(data, out, checkpoint=checkpoint, progress=False, **settings)


@flow(name="evaluate", log_prints=True)
def evaluate(
    checkpoint: str | Location,
    datasets: list[str | Location],
    out: str | Location,
    stage: EvaluateStage,
) -> dict[str, Any]:
    """Evaluates CHECKPOINT on the stage's split of each dataset; reports go to OUT/<dataset name>/.

    Args:
        checkpoint: our training checkpoint, or the released UniLSeg-20 file (with the stage's preset).
        datasets: dataset directories.
        out: report root.
        stage: split, limit, texts, ... (flows.config.EvaluateStage).
    """
    log = get_run_logger()
    results = {}
    for data in datasets:
        name = storage.name(data)
        report_dir = storage.join(out, name)
        targets = read_dataset_json(storage.join(data, stage.split)).get("counts", {}).get("targets", "?")
        limit = stage.limit
        log.info("evaluating %s/%s: %s targets%s", name, stage.split, targets, f" (at most {limit})" if limit else "")
        metrics = evaluate_task(data, report_dir, checkpoint, stage.settings())
        # as each dataset is scored: its table, report and best/worst sheet in the UI
        publish_metrics(name, metrics)
        publish_report(name, storage.join(report_dir, "report.md"))
        overlays = storage.join(report_dir, OVERLAYS)
        if storage.isfile(overlays):
            publish_image(
                f"overlays-{name}",
                overlays,
                f"Best and worst predictions on {name}",
                "Top row: the best by IoU; bottom row: the worst (report.md has the legend).",
            )
        publish_files(
            f"eval-files-{name}",
            {f: storage.join(report_dir, f) for f in storage.listdir(report_dir)},
            f"Evaluation files of {name}",
        )
        log.info("%s/%s: %s", name, stage.split, metrics)
        results[name] = {"report_dir": str(report_dir), "metrics": metrics}
    return results
