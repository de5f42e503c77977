"""What a person looks at in the Prefect UI: tables of counts, evaluation tables, file links."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.config import StorageOptions, unmask
from shards import storage
from shards.preview import preview_split
from shards.stats import dataset_stats


def _key(text: str) -> str:
    # artifact keys: lowercase letters, digits and dashes only
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def publish_counts(name: str, stats: dict[str, dict[str, Any]]) -> None:
    """One table row per split: images, targets, no-target, quarantined, by task and granularity."""
    rows = []
    for split_dir, s in stats.items():
        rows.append({
            "split": f"{storage.name(storage.parent(split_dir))}/{storage.name(split_dir)}",
            "status": s["status"], "images": s["images"], "targets": s["targets"],
            "no_target": s["no_target"], "quarantined": s["quarantined"],
            "by_task": ", ".join(f"{k} {v}" for k, v in s["by_task"].items()),
            "by_granularity": ", ".join(f"{k} {v}" for k, v in s["by_granularity"].items()),
        })
    create_table_artifact(rows, key=_key(f"counts-{name}"), description=f"Shard counts of {name}")


def publish_files(name: str, files: dict[str, str | Path], description: str) -> None:
    """A markdown list of result files (preview sheets, reports, checkpoints): absolute paths or URLs."""
    lines = [f"## {description}", ""] + [f"- {label}: `{storage.absolute(p)}`" for label, p in files.items()]
    create_markdown_artifact("\n".join(lines), key=_key(f"files-{name}"), description=description)


def publish_report(name: str, report_md: str | Path, storage_options: storage.StorageOptions = None) -> None:
    """The evaluation report (paper-style tables, conventions) as a markdown artifact."""
    create_markdown_artifact(storage.read_bytes(report_md, storage_options).decode("utf-8"), key=_key(f"eval-{name}"),
                             description=f"Evaluation of {name}")


@task(name="summarize-dataset")
def summarize_dataset(name: str, dataset_dir: str, preview_dir: str,
                      storage_options: Optional[StorageOptions] = None) -> dict[str, Any]:
    """Counts per split as an artifact, a preview sheet per split, their paths as an artifact
    (the dataset and preview dir may be local paths or URLs)."""
    so = unmask(storage_options)
    stats = dataset_stats(dataset_dir, so)
    publish_counts(name, stats)
    sheets = {}
    for split_dir, s in stats.items():
        if s["targets"]:
            sheet = storage.join(preview_dir, f"{name}-{storage.name(split_dir)}.png")
            storage.makedirs(preview_dir, so)
            preview_split(split_dir, sheet, storage_options=so)
            sheets[f"{name}/{storage.name(split_dir)}"] = str(sheet)
    if sheets:
        publish_files(f"preview-{name}", sheets, f"Preview sheets of {name}")
    return {"stats": stats, "previews": sheets}
