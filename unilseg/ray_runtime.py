"""One way to reach Ray for every stage (annotation actors, Ray Train, flows).

Order of preference: an already initialised Ray in this process; the address passed in;
UNILSEG_RAY_ADDRESS (written to .env by `python -m cli.stack up`); otherwise a private
local Ray for this process, bound to 127.0.0.1, shut down at interpreter exit.
"""

from __future__ import annotations

import logging
import os

import ray
from ray._private import ray_constants

log = logging.getLogger(__name__)
ADDRESS_ENV = "UNILSEG_RAY_ADDRESS"


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> str:
    """Connects to (or starts) Ray once per process.

    Args:
        address (str | None): "HOST:PORT" of a running cluster, "auto", or None.
        num_cpus (int | None): CPUs for a private local Ray (ignored when connecting).

    Returns:
        str: the GCS address of the cluster in use.
    """
    # Ray reads the loopback switch when first imported; if something imported it before
    # unilseg did, apply the same choice now, before any Ray process is started.
    if os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0":
        ray_constants.ENABLE_RAY_CLUSTER = False

    if not ray.is_initialized():
        address = address or os.environ.get(ADDRESS_ENV) or None
        if address:
            log.info("connecting to Ray at %s", address)
            ray.init(address=address, namespace="unilseg", logging_level="WARNING", log_to_driver=True)
        else:
            # address="local": without it ray.init joins whatever cluster another process on this
            # machine started last (/tmp/ray/ray_current_cluster), whose workers have not this
            # process's environment (credentials, AWS_ENDPOINT_URL)
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                     namespace="unilseg", logging_level="WARNING")
    return ray.get_runtime_context().gcs_address


def dashboard_url() -> str | None:
    """The Ray dashboard of the connected cluster as http://HOST:PORT, or None without one."""
    if not ray.is_initialized():
        return None
    try:
        url = ray._private.worker.get_dashboard_url()  # not in Ray's public API (2.60)
    except Exception:  # noqa: BLE001 - best effort: a missing dashboard must not fail a run
        return None
    if not url:
        return None
    return url if url.startswith("http") else f"http://{url}"


def set_niceness(niceness: int | None) -> None:
    """Sets this process's OS priority (Ray starts its workers at 15, where they lose every core
    to ordinary processes on a shared machine); None keeps it. A value the process may not take
    (lowering it needs CAP_SYS_NICE) is logged and skipped."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness is None or niceness == current:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    except OSError as e:
        log.warning("cannot set niceness %s (%s); keeping %s", niceness, e, current)
