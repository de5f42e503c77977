"""`evaluate` flow: a checkpoint over shard datasets -> metrics.json, report.md, overlays."""

from __future__ import annotations

from typing import Any, Optional

from prefect import flow, get_run_logger, task

from flows.artifacts import publish_files, publish_image, publish_metrics, publish_report
from flows.config import EvaluateStage, StorageOptions, unmask
from shards import storage
from shards.manifest import read_dataset_json
from unilseg.eval.evaluate import evaluate as evaluate_split
from unilseg.eval.report import OVERLAYS


@task(name="evaluate-dataset")
def evaluate_task(
    data: str, out: str, checkpoint: str, settings: dict[str, Any], storage_options: Optional[StorageOptions] = None
) -> dict[str, Any]:
    return evaluate_split(
        data, out, checkpoint=checkpoint, progress=False, storage_options=unmask(storage_options), **settings
    )


@flow(name="evaluate", log_prints=True)
def evaluate(
    checkpoint: str,
    datasets: list[str],
    out: str,
    stage: EvaluateStage,
    storage_options: Optional[StorageOptions] = None,
) -> dict[str, Any]:
    """Evaluates CHECKPOINT on the stage's split of each dataset; reports go to OUT/<dataset name>/.

    Args:
        checkpoint: our training checkpoint, or the released UniLSeg-20 file (with the stage's preset).
        datasets: dataset directories.
        out: report root.
        stage: split, limit, texts, ... (flows.config.EvaluateStage).
        storage_options: fsspec options for locations at URLs (masked in Prefect).
    """
    log = get_run_logger()
    so = unmask(storage_options)
    results = {}
    for data in datasets:
        name = storage.name(data)
        report_dir = storage.join(out, name)
        targets = read_dataset_json(storage.join(data, stage.split), so).get("counts", {}).get("targets", "?")
        limit = stage.limit
        log.info("evaluating %s/%s: %s targets%s", name, stage.split, targets, f" (at most {limit})" if limit else "")
        metrics = evaluate_task(data, report_dir, checkpoint, stage.settings(), storage_options)
        # as each dataset is scored: its table, report and best/worst sheet in the UI
        publish_metrics(name, metrics)
        publish_report(name, storage.join(report_dir, "report.md"), so)
        overlays = storage.join(report_dir, OVERLAYS)
        if storage.isfile(overlays, so):
            publish_image(
                f"overlays-{name}",
                overlays,
                f"Best and worst predictions on {name}",
                "Top row: the best by IoU; bottom row: the worst (report.md has the legend).",
                so,
            )
        publish_files(
            f"eval-files-{name}",
            {f: storage.join(report_dir, f) for f in storage.listdir(report_dir, so)},
            f"Evaluation files of {name}",
        )
        log.info("%s/%s: %s", name, stage.split, metrics)
        results[name] = {"report_dir": report_dir, "metrics": metrics}
    return results
