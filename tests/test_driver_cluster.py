"""The annotation pipeline on a Ray cluster of two worker nodes (simulated on this machine), with the
dataset on a moto S3: the same dataset as a single-process run (same keys, same targets), also
after a worker node is killed mid-run, and after the driver is killed mid-run, then run again."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import ray
from engine_fixtures import kill_annotation_driver, photo
from PIL import Image
from s3_fixtures import s3_bucket_module  # noqa: F401 (a fixture)

from annotation_engine.driver import RunStopped, annotate_images
from annotation_engine.engine import Engine, sample_key
from shards import storage
from shards.images import prepare_image
from shards.reader import ShardReader

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
N_IMAGES = 200
ENGINE = {
    "base": "weightfree",
    "max_side": 64,
    "generator": {"params": {"n_segments": 40}},
    "resources": {"num_cpus": 1, "batch_size": 4},
}
PINNED = {"annotate": 0.01}  # only the two worker nodes offer it: actors and writers land there
NAMES = ["astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "clock", "hubble_deep_field"]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for i in range(N_IMAGES):
        arr = np.roll(photo(NAMES[i % len(NAMES)], 64), 3 * (i // len(NAMES)), axis=1)
        Image.fromarray(arr).save(folder / f"img-{i:04d}.png")
    return folder


@pytest.fixture(scope="module")
def reference(images) -> dict[str, list[dict]]:
    """The single-process run: every image through one Engine in this process."""
    engine = Engine(ENGINE)
    out = {}
    for path in sorted(images.iterdir()):
        img = prepare_image(path.read_bytes())
        targets = engine.annotate(img.rgb)
        if targets:
            out[sample_key(img.sha256, engine.version)] = [_target_doc(t) for t in targets]
    return out


def _target_doc(t) -> dict:
    return json.loads(
        json.dumps({"texts": t.texts, "mask": t.mask, "task": t.task, "granularity": t.granularity, "scores": t.scores})
    )


@pytest.fixture(scope="module")
def cluster(s3_bucket_module):  # noqa: F811 - the endpoint must be in the environment before nodes start
    from ray.cluster_utils import Cluster

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(
            "PYTHONPATH",
            os.pathsep.join([str(Path(__file__).parent), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]).rstrip(
                os.pathsep
            ),
        )
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1"})
        workers = [c.add_node(num_cpus=1, resources={"annotate": 1}, node_ip_address="127.0.0.1") for _ in range(2)]
        c.wait_for_nodes()
        ray.init(address=c.address, namespace="unilseg")
        try:
            yield c, workers, s3_bucket_module
        finally:
            ray.shutdown()
            c.shutdown()


def _dataset(split: str) -> dict[str, list[dict]]:
    keys: Counter = Counter()
    out = {}
    for s in ShardReader(split).samples(decode_images=False):
        keys[s.key] += 1
        out[s.key] = [_target_doc(t) for t in s.targets]
    assert set(keys.values()) <= {1}, "a key was written twice"
    return out


def _run(images, out, **kw):
    return annotate_images(
        str(images), out, engine=ENGINE, actors=2, node_resources=PINNED, max_count=10, progress=False, **kw
    )


def test_two_nodes_give_the_single_process_dataset(cluster, images, reference):
    from ray.util.state import list_actors

    c, workers, bucket = cluster
    assert c.address.startswith("127.0.0.1:")  # nothing listens beyond loopback
    out = f"{bucket}/two-nodes"
    res = _run(images, out)
    assert res["status"] == "complete" and res["written"] == len(reference)
    assert _dataset(f"{out}/train") == reference
    nodes = {
        a.node_id for a in list_actors(filters=[("class_name", "=", "MapWorker(MapBatches(EngineActor))")], limit=100)
    }
    assert nodes >= {w.node_id for w in workers}  # an engine actor ran on each worker node
    shards = [n for n in storage.listdir(f"{out}/train") if n.startswith("shard-")]
    assert len({n.split("-")[1] for n in shards}) >= 2  # several writers, each with its own names


def test_a_killed_node_then_a_rerun_give_the_same_dataset(cluster, images, reference):
    c, workers, bucket = cluster
    out = f"{bucket}/node-kill"
    victim = workers[0]
    run_over = threading.Event()
    kill: dict = {}

    def kill_when_started():
        deadline = time.time() + 300
        while time.time() < deadline and not run_over.is_set():
            shards = [n for n in storage.listdir(f"{out}/train") if n.startswith("shard-") and n.endswith(".tar")]
            if shards:
                c.remove_node(victim)  # its actor, its tasks and the objects it held are gone
                kill.update(shards=len(shards), during_run=not run_over.is_set())
                return
            time.sleep(0.2)

    thread = threading.Thread(target=kill_when_started, daemon=True)
    thread.start()
    try:
        _run(images, out)
    except RunStopped:
        pass  # the run may stop; the next one finishes it
    finally:
        run_over.set()
    thread.join()
    # the node died while the run was in progress (a killer that gave up would leave nothing to test)
    assert kill.get("during_run"), kill
    assert not any(n["Alive"] for n in ray.nodes() if n["NodeID"] == victim.node_id)
    # a replacement node joins (as an autoscaler would add one); Ray can only add it from this thread
    workers[0] = c.add_node(num_cpus=1, resources={"annotate": 1}, node_ip_address="127.0.0.1")
    res = _run(images, out)
    assert res["status"] == "complete"
    assert _dataset(f"{out}/train") == reference


def test_a_killed_driver_then_a_rerun_give_the_same_dataset(cluster, images, reference):
    c, workers, bucket = cluster
    out = f"{bucket}/driver-kill"
    kill_annotation_driver(
        f"{str(images)!r}, {out!r}, engine={ENGINE!r}, actors=2, node_resources={PINNED!r}, "
        f"max_count=10, ray_address={c.address!r}, progress=False",
        f"{out}/train",
        timeout_s=300,
        poll_s=0.2,
    )
    assert not storage.exists(f"{out}/train/dataset.json")  # nothing committed: readers see no split
    res = _run(images, out)
    assert res["status"] == "complete" and res["skipped"] >= 20
    assert _dataset(f"{out}/train") == reference
