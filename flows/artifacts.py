"""What a person looks at in the Prefect UI: tables of counts, evaluation tables, pictures
(the loss curve, overlay sheets), file links. Each stage publishes its own as it finishes.

Pictures are markdown artifacts holding the PNG itself as a data URL (`![..](data:image/png;
base64,...)`): the UI renders it with no file server, and the database keeps the picture even
when the run directory is gone. Large sheets are scaled down first (MAX_SIDE).
"""

from __future__ import annotations

import base64
import contextvars
import io
import math
from pathlib import Path
from typing import Any

from PIL import Image
from prefect import task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from shards import storage
from shards.preview import preview_split
from shards.stats import dataset_stats
from shards.storage import Location


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
        text = (
            f"{self.name}: {done} of {todo} images through the engine ({counts.get('annotated', 0)} annotated, "
            f"{counts.get('quarantined', 0)} quarantined); {counts.get('listed', 0)} listed, "
            f"{counts.get('skipped', 0)} already done, {counts.get('duplicates', 0)} duplicates"
        )
        if self.artifact_id is None:
            self.artifact_id = create_progress_artifact(percent, key=_key(f"annotate-{self.name}"), description=text)
        else:
            update_progress_artifact(self.artifact_id, percent, description=text)


def publish_counts(name: str, stats: dict[str, dict[str, Any]]) -> None:
    """One table row per split: images, targets, no-target, quarantined, by task and granularity."""
    rows = []
    for split_dir, s in stats.items():
        rows.append(
            {
                "split": f"{storage.name(storage.parent(split_dir))}/{storage.name(split_dir)}",
                "status": s["status"],
                "images": s["images"],
                "targets": s["targets"],
                "no_target": s["no_target"],
                "quarantined": s["quarantined"],
                "by_task": ", ".join(f"{k} {v}" for k, v in s["by_task"].items()),
                "by_granularity": ", ".join(f"{k} {v}" for k, v in s["by_granularity"].items()),
            }
        )
    create_table_artifact(rows, key=_key(f"counts-{name}"), description=f"Shard counts of {name}")


def publish_files(name: str, files: dict[str, str | Path], description: str) -> None:
    """A markdown list of result files (preview sheets, reports, checkpoints): absolute paths or URLs."""
    lines = [f"## {description}", ""] + [f"- {label}: `{storage.absolute(p)}`" for label, p in files.items()]
    create_markdown_artifact("\n".join(lines), key=_key(f"files-{name}"), description=description)


MAX_SIDE = 1600  # pixels: a picture's longer side in the UI (a sheet of 16 cells is ~1800 wide)


def image_markdown(png: str | Path | Location, alt: str, max_side: int = MAX_SIDE) -> str:
    """A picture (a local path or URL) as markdown with the image inline (data URL), scaled so
    its longer side is at most ``max_side``."""
    img = Image.open(io.BytesIO(storage.read_bytes(png)))
    img.load()
    if max(img.size) > max_side:
        img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="PNG", optimize=True)
    return f"![{alt}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode('ascii')})"


def publish_image(name: str, png: str | Path | Location, title: str, caption: str = "") -> None:
    """A picture (a loss curve, an overlay sheet) as a markdown artifact, with its location."""
    text = [
        f"## {title}",
        "",
        image_markdown(png, title),
        "",
        caption,
        "",
        f"File: `{storage.absolute(png)}`",
    ]
    create_markdown_artifact("\n".join(text), key=_key(name), description=title)


def publish_metrics(name: str, metrics: dict[str, dict[str, float]]) -> None:
    """One table row per task: its metric family's numbers (fractions; empty where undefined)."""
    rows = []
    for task_name, m in metrics.items():
        row = {"task": task_name, "n": int(m.get("n", 0))}
        row.update(
            {
                k: (None if isinstance(v, float) and math.isnan(v) else round(float(v), 4))
                for k, v in m.items()
                if k != "n"
            }
        )
        rows.append(row)
    columns = list(dict.fromkeys(k for r in rows for k in r))  # one header for every task's metrics
    create_table_artifact(
        [{c: r.get(c) for c in columns} for r in rows],
        key=_key(f"metrics-{name}"),
        description=f"Metrics of {name} (report.md says each convention)",
    )


def publish_report(name: str, report_md: str | Path | Location) -> None:
    """The evaluation report (paper-style tables, conventions) as a markdown artifact."""
    create_markdown_artifact(
        storage.read_bytes(report_md).decode("utf-8"),
        key=_key(f"eval-{name}"),
        description=f"Evaluation of {name}",
    )


@task(name="summarize-dataset")
def summarize_dataset(name: str, dataset_dir: str | Location, preview_dir: str | Location) -> dict[str, Any]:
    """Counts per split as an artifact, a preview sheet per split, their paths as an artifact
    (the dataset and preview dir may be local paths or URLs)."""
    stats = storage.urls_only(dataset_stats(dataset_dir))
    publish_counts(name, stats)
    sheets = {}
    for split_dir, s in stats.items():
        if s["targets"]:
            sheet = storage.join(preview_dir, f"{name}-{storage.name(split_dir)}.png")
            storage.makedirs(preview_dir)
            preview_split(storage.like(dataset_dir, split_dir), sheet)
            sheets[f"{name}/{storage.name(split_dir)}"] = str(sheet)
    if sheets:
        publish_files(f"preview-{name}", sheets, f"Preview sheets of {name}")
    return {"stats": stats, "previews": sheets}
