"""One way to reach Ray for every stage (annotation actors, Ray Train, flows).

Order of preference: an already initialised Ray in this process; the address passed in;
UNILSEG_RAY_ADDRESS (written to .state/stack.env by `unilseg stack up`); otherwise a private
local Ray for this process, bound to 127.0.0.1, shut down at interpreter exit. Ray starts
the processes of such a local cluster fate-shared with this one (prctl PR_SET_PDEATHSIG on
Linux), but that reaches only the processes the driver starts itself: after a kill -9 of the
driver, the raylet's own children (its dashboard and runtime-env agents) lived on for about a
minute, trying to tell the dead GCS that their raylet had died (4 of 8 trials, issue 21). So a
reaper (``common.processes.start_reaper``) guards the session: once the driver is gone,
however it ended, it SIGKILLs every process of the session within a second or so.

What Ray's processes print (worker and actor stdout/stderr, Ray Train's controller notices,
its internal retries and tracebacks) reaches the console only with UNILSEG_VERBOSE=1
(`unilseg --verbose`); our commands report progress themselves. A local Ray is started with
token authentication on, as Ray 2.60 would, but without its warning saying so on every command.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import ray
from ray._private import ray_constants

from common import JOB_NAME_ENV
from common.processes import free_port, start_reaper

log = logging.getLogger(__name__)
ADDRESS_ENV = "UNILSEG_RAY_ADDRESS"
_GCS_PORT_ENV = "RAY_GCS_SERVER_PORT"  # the GCS port a head node started by ray.init() takes
_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
VERBOSE_ENV = "UNILSEG_VERBOSE"  # "1": Ray's own output (workers, actors, controller) on the console


def verbose() -> bool:
    """Whether Ray's own output should reach the console (UNILSEG_VERBOSE=1, `unilseg --verbose`)."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def _job_config(job_name: str | None) -> ray.job_config.JobConfig:
    """The job's name is what the dashboard's Jobs page shows in its Name column (the
    ``job_name`` key of its metadata; without one, "-"): given by the flows (flow, deployment
    and flow run), else JOB_NAME_ENV (the command line sets it to the command), else "unilseg"."""
    return ray.job_config.JobConfig(metadata={"job_name": job_name or os.environ.get(JOB_NAME_ENV) or "unilseg"})


def ensure_ray(address: str | None = None, num_cpus: int | None = None, job_name: str | None = None) -> str:
    """Connects to (or starts) Ray once per process.

    Args:
        address (str | None): "HOST:PORT" of a running cluster, "auto", or None.
        num_cpus (int | None): CPUs for a private local Ray (ignored when connecting).
        job_name (str | None): the name of this driver's job on the dashboard [_job_config's default].

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
            ray.init(
                address=address,
                namespace="unilseg",
                logging_level="WARNING",
                log_to_driver=verbose(),
                job_config=_job_config(job_name),
            )
        else:
            start_local_ray(num_cpus=num_cpus, include_dashboard=False, job_name=job_name)
    return ray.get_runtime_context().gcs_address


def start_local_ray(job_name: str | None = None, reap: bool = True, **init_kwargs: Any) -> str:
    """``ray.init()`` of a new single-node cluster on 127.0.0.1 for this process; returns its GCS address.

    Args:
        job_name (str | None): the name of this driver's job on the dashboard [_job_config's default].
        reap (bool): a reaper kills every process of the session once this process is gone (see
            the module). Off for a cluster other drivers join (the local stack's): the reaper
            would take their processes too, since they write their driver logs in the session.
        **init_kwargs: more ray.init arguments (num_cpus, include_dashboard, _temp_dir, ...).
    """
    # Ray 2.60 turns token auth on for a new local cluster and logs a warning saying so, on
    # every command: auth stays on, the notice is dropped (shown with --verbose).
    auth_log = logging.getLogger(_AUTH_LOGGER)
    level = auth_log.level
    if not verbose():
        auth_log.setLevel(logging.ERROR)
    # Ray's processes that look the cluster up by themselves (Ray Train's placement-group
    # cleaner asks the state API whether its controller lives) would take whichever cluster
    # /tmp/ray/ray_current_cluster names: on a machine running several Rays, another one, where
    # our controller is unknown, i.e. "dead" -- seen here: the cleaner removed a running job's
    # placement group and killed its training. So the GCS port is chosen first and every
    # process of the job is told the address (RAY_ADDRESS). address="local": a new cluster even
    # when /tmp/ray/ray_current_cluster names a running one (without it ray.init() joins that).
    gcs = f"127.0.0.1:{free_port()}"
    os.environ[_GCS_PORT_ENV] = gcs.rsplit(":", 1)[1]
    kwargs = {"namespace": "unilseg", "logging_level": "WARNING", "log_to_driver": verbose(), **init_kwargs}
    reaper = start_reaper() if reap else None  # before ray.init: a kill during it is covered too
    try:
        context = ray.init(
            address="local",
            _node_ip_address="127.0.0.1",
            runtime_env={"env_vars": {"RAY_ADDRESS": gcs}},
            job_config=_job_config(job_name),
            **kwargs,
        )
    finally:
        auth_log.setLevel(level)
        os.environ.pop(_GCS_PORT_ENV, None)
    session = context.address_info["session_dir"]
    if reaper is not None and not reaper.guard(session):  # every process of the session writes its logs there
        log.warning(
            "the reaper of this Ray session is gone: a kill -9 of this process may leave Ray processes running (%s)",
            session,
        )
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
