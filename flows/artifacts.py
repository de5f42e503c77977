"""What a person looks at in the Prefect UI: tables of counts, evaluation tables, file links."""

from __future__ import annotations

import contextvars
from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import (create_markdown_artifact, create_progress_artifact, create_table_artifact,
                               update_progress_artifact)

from shards.preview import preview_split
from shards.stats import dataset_stats


def _key(text: str) -> str:
    # artifact keys: lowercase letters, digits and dashes only
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


class ProgressArtifact:
    """A Prefect progress artifact fed with an annotation run's counters while it runs (the
    annotate stage's bar in the UI: images done out of images listed so far, with the counts
    in its description)."""

    def __init__(self, name: str):
        self.name, self.artifact_id, self.last = name, None, -1.0
        # the driver calls back from its progress thread: publish in the task run's context
        self._context = contextvars.copy_context()

    def __call__(self, counts: dict[str, Any]) -> None:
        self._context.run(self._publish, counts)

    def _publish(self, counts: dict[str, Any]) -> None:
        done = counts.get("annotated", 0) + counts.get("quarantined", 0)
        todo = counts.get("listed", 0) - counts.get("skipped", 0) - counts.get("duplicates", 0)
        percent = round(100.0 * done / todo, 1) if todo > 0 else 0.0
        if percent == self.last:
            return
        self.last = percent
        text = (f"{self.name}: {done} of {todo} images through the engine ({counts.get('annotated', 0)} annotated, "
                f"{counts.get('quarantined', 0)} quarantined); {counts.get('listed', 0)} listed, "
                f"{counts.get('skipped', 0)} already done, {counts.get('duplicates', 0)} duplicates")
        if self.artifact_id is None:
            self.artifact_id = create_progress_artifact(percent, key=_key(f"annotate-{self.name}"), description=text)
        else:
            update_progress_artifact(self.artifact_id, percent, description=text)


def publish_counts(name: str, stats: dict[str, dict[str, Any]]) -> None:
    """One table row per split: images, targets, no-target, quarantined, by task and granularity."""
    rows = []
    for split_dir, s in stats.items():
        rows.append({
            "split": str(Path(split_dir).relative_to(Path(split_dir).parents[1])),
            "status": s["status"], "images": s["images"], "targets": s["targets"],
            "no_target": s["no_target"], "quarantined": s["quarantined"],
            "by_task": ", ".join(f"{k} {v}" for k, v in s["by_task"].items()),
            "by_granularity": ", ".join(f"{k} {v}" for k, v in s["by_granularity"].items()),
        })
    create_table_artifact(rows, key=_key(f"counts-{name}"), description=f"Shard counts of {name}")


def publish_files(name: str, files: dict[str, str | Path], description: str) -> None:
    """A markdown list of result files (preview sheets, reports, checkpoints) with absolute paths."""
    lines = [f"## {description}", ""] + [f"- {label}: `{Path(p).resolve()}`" for label, p in files.items()]
    create_markdown_artifact("\n".join(lines), key=_key(f"files-{name}"), description=description)


def publish_report(name: str, report_md: str | Path) -> None:
    """The evaluation report (paper-style tables, conventions) as a markdown artifact."""
    create_markdown_artifact(Path(report_md).read_text(encoding="utf-8"), key=_key(f"eval-{name}"),
                             description=f"Evaluation of {name}")


@task(name="summarize-dataset")
def summarize_dataset(name: str, dataset_dir: str, preview_dir: str) -> dict[str, Any]:
    """Counts per split as an artifact, a preview sheet per split, their paths as an artifact."""
    stats = dataset_stats(dataset_dir)
    publish_counts(name, stats)
    sheets = {}
    for split_dir, s in stats.items():
        if s["targets"]:
            sheet = Path(preview_dir) / f"{name}-{Path(split_dir).name}.png"
            sheet.parent.mkdir(parents=True, exist_ok=True)
            preview_split(split_dir, sheet)
            sheets[f"{name}/{Path(split_dir).name}"] = str(sheet)
    if sheets:
        publish_files(f"preview-{name}", sheets, f"Preview sheets of {name}")
    return {"stats": stats, "previews": sheets}
