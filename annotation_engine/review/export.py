"""A split's chosen targets -> tasks in a Label Studio project; finished reviews -> the reviewed split.

Images: a split keeps its images inside tar shards, which no browser can open, so the images of
the chosen targets alone (never the split) are written once each, named by their sha256, to a
media folder beside the split (``DATA/NAME/_review_media/SPLIT/``). Label Studio serves a local
folder through a local-files storage; for a split at a URL (``s3://``) the media are uploaded
beside it and each task gets a presigned URL that the reviewer's browser fetches directly.

Each task's data has ``image``, ``expression``, ``key``, ``target``, ``engine_version`` and
``score``, so that the import is exact; the engine's mask and expression are its prediction.
"""

from __future__ import annotations

from typing import Any

from annotation_engine.review import studio
from annotation_engine.review.config import ReviewConfig
from annotation_engine.review.decisions import read_decisions
from annotation_engine.review.labeling import brush_result, text_result
from annotation_engine.review.reviewed import image_ext, write_reviewed
from annotation_engine.review.select import Pick, manifest_rows, select_targets
from common.errors import UniLSegError
from shards import storage
from shards.format import Target
from shards.manifest import read_dataset_json, read_manifest
from shards.reader import ShardReader

MEDIA_DIR = "_review_media"


def media_dir(split_dir: Any) -> Any:
    """Where the reviewed images of a split are written: DATA/NAME/_review_media/SPLIT."""
    return storage.join(storage.parent(split_dir), MEDIA_DIR, storage.name(split_dir))


def build_task(key: str, index: int, target: Target, pick: Pick, image_url: str) -> dict[str, Any]:
    """One review task: its data, and the engine's mask and expression as the prediction."""
    engine_version = target.provenance.get("engine_version")
    data = {
        "image": image_url,
        "expression": target.texts[0],
        "key": key,
        "target": index,
        "engine_version": engine_version,
        "score": pick.score,
    }
    result = [text_result(target.texts[0])]
    mask = target.mask_array()
    if mask is not None:
        result.insert(0, brush_result(mask))
    prediction: dict[str, Any] = {"model_version": engine_version or target.source, "result": result}
    if pick.score is not None:
        prediction["score"] = pick.score
    return {"data": data, "predictions": [prediction]}


def _image_url(media, sample, files_root: str | None, expiry: int) -> str:
    """Writes the sample's image to the media folder (once) and returns the URL a reviewer gets."""
    loc = storage.join(media, f"{sample.image.sha256}.{image_ext(sample.image_bytes)}")
    if not storage.exists(loc):
        storage.write_bytes(loc, sample.image_bytes)
    if storage.is_local(loc):
        return studio.local_files_url(storage.local_path(loc), files_root)
    fs, path = storage.filesystem(loc)
    try:
        return fs.sign(path, expiration=expiry)
    except NotImplementedError:
        raise UniLSegError(f"{loc}: this store cannot presign URLs (use a local or s3:// split)") from None


def export_for_review(
    split_dir: Any,
    project: str,
    cfg: ReviewConfig,
    *,
    url: str | None = None,
    api_key: str | None = None,
    files_root: str | None = None,
) -> dict[str, Any]:
    """Puts the split's chosen targets into the project (created if needed); targets already in
    it are skipped, so exporting again adds only new ones.

    Returns:
        dict: {"project", "project_id", "url", "picked", "added", "already"}.

    Raises:
        UniLSegError: no such split, a score no target has, Label Studio unreachable.
    """
    split_dir = storage.normalize(split_dir)
    if not read_dataset_json(split_dir):
        raise UniLSegError(f"{split_dir} has no dataset.json: not a shard split")
    picks = select_targets(manifest_rows(split_dir), cfg)
    client, base = studio.connect(url, api_key)
    proj, _ = studio.ensure_project(client, project)
    have = studio.exported_targets(client, proj.id)
    todo = {(p.key, p.target): p for p in picks if (p.key, p.target) not in have}
    media = media_dir(split_dir)
    tasks: list[dict[str, Any]] = []
    if todo:
        storage.makedirs(media)
        if storage.is_local(media):
            studio.ensure_local_storage(client, proj.id, storage.local_path(media))
        keys = {k for k, _ in todo}
        for sample in ShardReader(split_dir).samples(decode_images=False):
            if sample.key not in keys:
                continue
            image = _image_url(media, sample, files_root, cfg.url_expiry)
            for i, t in enumerate(sample.targets):
                if (sample.key, i) in todo:
                    tasks.append(build_task(sample.key, i, t, todo[(sample.key, i)], image))
    order = {k: n for n, k in enumerate(todo)}  # the selection's order: least certain first
    tasks.sort(key=lambda t: order[(t["data"]["key"], t["data"]["target"])])
    added = studio.add_tasks(client, proj.id, tasks) if tasks else 0
    return {
        "project": project,
        "project_id": proj.id,
        "url": studio.project_url(base, proj.id),
        "picked": len(picks),
        "added": added,
        "already": len(picks) - len(todo),
    }


def import_reviews(
    project: str, split_dir: Any, out: Any, *, url: str | None = None, api_key: str | None = None
) -> dict[str, Any]:
    """Reads the project's finished reviews and writes OUT, the reviewed version of the split.

    Returns:
        dict: write_reviewed's result, plus "problems" (tasks whose answer could not be read).

    Raises:
        UniLSegError: no such split or project, Label Studio unreachable, OUT is the split.
    """
    split_dir = storage.normalize(split_dir)
    if not read_dataset_json(split_dir):
        raise UniLSegError(f"{split_dir} has no dataset.json: not a shard split")
    client, _ = studio.connect(url, api_key)
    proj = studio.find_project(client, project)
    if proj is None:
        raise UniLSegError(f"Label Studio has no project named {project!r}")
    tasks = studio.export_tasks(client, proj.id)
    t = read_manifest(split_dir, columns=["key", "height", "width"])
    sizes = dict(zip(t.column("key").to_pylist(), zip(t.column("height").to_pylist(), t.column("width").to_pylist())))
    users = {a.get("completed_by") for task in tasks for a in task.get("annotations") or []}
    who = studio.reviewer_emails(client, {u for u in users if u is not None and not isinstance(u, dict)})
    decisions, problems = read_decisions(tasks, sizes, who, project)
    return {**write_reviewed(split_dir, out, decisions, project=project), "problems": problems}
