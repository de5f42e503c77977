"""The Label Studio side, through label-studio-sdk 2.x: reach the server, find or create the
review project, serve images to it, add tasks, read finished reviews.

Finding Label Studio: ``url`` / ``api_key`` when given, else the SDK's own variables
``LABEL_STUDIO_URL`` and ``LABEL_STUDIO_API_KEY`` (``unilseg stack up`` writes them to
``.state/stack.env``). Images of a local split are served by a local-files storage: the media
folder must lie under the server's ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` (the stack writes
that variable to stack.env too, so that this side knows it).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any
from urllib.parse import quote

from annotation_engine.review.labeling import LABEL_CONFIG
from common.errors import UniLSegError

URL_ENV, KEY_ENV = "LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"
FILES_ROOT_ENV = "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
_IMPORT_BATCH = 500  # tasks per import request


class StudioError(UniLSegError):
    """Label Studio cannot be reached, refuses the key, or answers what we cannot use."""


def connect(url: str | None = None, api_key: str | None = None, timeout: float = 60.0) -> tuple[Any, str]:
    """A client of the server, checked with one request; returns (client, base url).

    Raises:
        StudioError: no URL or key, the server does not answer, or it refuses the key.
    """
    from label_studio_sdk import LabelStudio

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
    url, api_key = url or os.environ.get(URL_ENV), api_key or os.environ.get(KEY_ENV)
    if not url or not api_key:
        raise StudioError(
            f"no Label Studio: give --url and --api-key, or set {URL_ENV} and {KEY_ENV} "
            "(`unilseg stack up` writes them to .state/stack.env)"
        )
    url = url.rstrip("/")
    client = LabelStudio(base_url=url, api_key=api_key, timeout=timeout)
    try:
        client.users.whoami()
    except Exception as e:  # httpx connection errors, the SDK's ApiError (401, 404, ...)
        status = getattr(e, "status_code", None)
        what = f"refused the API key (HTTP {status})" if status in (401, 403) else f"does not answer ({_short(e)})"
        raise StudioError(f"Label Studio at {url} {what}") from None
    return client, url


def _short(e: Exception) -> str:
    return " ".join(str(e).split())[:160] or type(e).__name__


def project_url(base: str, project_id: int) -> str:
    """Where a person reviews the project's tasks."""
    return f"{base}/projects/{project_id}/data"


def find_project(client: Any, title: str) -> Any | None:
    """The project with exactly this title (None: there is none)."""
    for p in client.projects.list(title=title):
        if p.title == title:
            return p
    return None


def ensure_project(client: Any, title: str) -> tuple[Any, bool]:
    """(project, created): the project named ``title``, created with the review label config.

    Raises:
        StudioError: a project of that name exists with another label config.
    """
    p = find_project(client, title)
    if p is not None:
        config = client.projects.get(p.id).label_config or ""
        if 'name="verdict"' not in config or 'name="mask"' not in config:
            raise StudioError(f"project {title!r} exists and is no review project (no mask/verdict controls)")
        return p, False
    if len(title) < 3:
        raise StudioError(f"project name {title!r}: Label Studio wants at least 3 characters")
    return client.projects.create(title=title, label_config=LABEL_CONFIG, description="unilseg review"), True


def exported_targets(client: Any, project_id: int) -> set[tuple[str, int]]:
    """(key, target) of every task already in the project."""
    out = set()
    for t in client.tasks.list(project=project_id, fields="task_only", page_size=1000):
        data = t.data or {}
        if "key" in data and data.get("target") is not None:
            out.add((data["key"], int(data["target"])))
    return out


def local_files_url(path: str, files_root: str | None = None) -> str:
    """The URL Label Studio serves a local file at (its local-files storage).

    Raises:
        StudioError: no document root is known, or the file is not under it.
    """
    root = files_root or os.environ.get(FILES_ROOT_ENV)
    if not root:
        raise StudioError(
            f"a local split's images are served by Label Studio's local-files storage: set {FILES_ROOT_ENV} to the "
            "server's document root (`unilseg stack up` does), or put the dataset at s3:// (presigned URLs)"
        )
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if rel.startswith(".."):
        raise StudioError(f"{path} is not under Label Studio's document root {root} ({FILES_ROOT_ENV})")
    return "/data/local-files/?d=" + quote(rel)


def ensure_local_storage(client: Any, project_id: int, folder: str) -> None:
    """A local-files storage of the project over ``folder`` (Label Studio serves only files
    under a storage's path). It is never synced: tasks are added by us, not by listing."""
    folder = os.path.abspath(folder)
    for s in client.import_storage.local.list(project=project_id):
        if os.path.abspath(s.path or "") == folder:
            return
    try:
        client.import_storage.local.create(project=project_id, path=folder, use_blob_urls=True, title="unilseg media")
    except Exception as e:
        raise StudioError(f"Label Studio refused a local-files storage over {folder}: {_short(e)}") from None


def add_tasks(client: Any, project_id: int, tasks: list[dict[str, Any]]) -> int:
    """Imports tasks (data and predictions) in batches; returns how many were added."""
    n = 0
    for i in range(0, len(tasks), _IMPORT_BATCH):
        r = client.projects.import_tasks(project_id, request=tasks[i : i + _IMPORT_BATCH], return_task_ids=True)
        n += r.task_count or 0
    return n


def export_tasks(client: Any, project_id: int) -> list[dict[str, Any]]:
    """Every task of the project with its annotations and predictions (Label Studio's JSON export)."""
    data = b"".join(client.projects.exports.download_sync(project_id, export_type="JSON", download_all_tasks=True))
    return json.loads(data)


def reviewer_emails(client: Any, ids: set[Any]) -> dict[Any, str]:
    """Label Studio user id -> e-mail (the id itself when the user cannot be read)."""
    out = {}
    for i in ids:
        try:
            out[i] = client.users.get(int(i)).email or str(i)
        except Exception:  # a deleted user, or a key without the right to read users
            out[i] = str(i)
    return out
