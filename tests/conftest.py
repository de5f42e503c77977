"""Shared test helpers: tiny images written in memory, a module's private local Ray."""

from __future__ import annotations

import contextlib
import io
import os

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Ray reads its auth mode when first imported: tests that join a cluster they started
# (ray.cluster_utils.Cluster, subprocess drivers) need "token", which local Rays use too
os.environ.setdefault("RAY_AUTH_MODE", "token")
# ... and whether its processes listen beyond 127.0.0.1 (unilseg sets this too, on its import,
# but a test module may import ray first): nothing a test starts listens on other interfaces
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def encode(arr: np.ndarray, fmt: str = "PNG", **kw) -> bytes:
    """Encodes an array (H, W[, C]) with PIL."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests: with tiny models a second thread only adds OpenMP
    barriers (ruinous on a loaded machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@contextlib.contextmanager
def _private_ray():
    """A private local Ray (2 CPUs, 127.0.0.1); yields its GCS address. Ray's workers can
    import the test plug-ins beside this file (crash_generator)."""
    import ray

    from common.ray_runtime import ensure_ray

    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([os.path.dirname(__file__), *([old] if old else [])])
    try:
        yield ensure_ray(num_cpus=2)
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


@pytest.fixture(scope="module")
def ray_cluster():
    """A private local Ray for a module's tests; yields its GCS address."""
    with _private_ray() as address:
        yield address


@pytest.fixture
def ray_here():
    """A private local Ray for one test, started after the fixtures before it in the test's
    arguments have set the environment its workers inherit (the S3 fixtures)."""
    with _private_ray() as address:
        yield address


def pytest_collection_modifyitems(items):
    """Tests that need a Label Studio server run last (a stable sort: their order kept), so that
    its venv and template, built in the background from the start, are ready when they come."""
    items.sort(key=lambda item: "label_studio" in getattr(item, "fixturenames", ()))


def pytest_collection_finish(session):
    """When selected tests need a Label Studio server, build its venv and migrated template in
    the background now (tests/label_studio_fixtures.py), so that the other tests overlap it."""
    if any("label_studio" in getattr(item, "fixturenames", ()) for item in session.items):
        from label_studio_fixtures import start_background_build

        start_background_build()
