"""Project-wide helpers every layer may use: the one error type, settings, the registry class,
local processes and the way to reach Ray. This is the bottom package: it imports nothing of ours.

Ray decides when it is first imported whether its processes listen on all interfaces;
``LOOPBACK_ENV`` keeps every Ray listener we start on 127.0.0.1 (measured on these machines:
without it gcs, raylet and workers listened on ``*``). It is applied here, on import of the
package (every package of ours imports it), so that it precedes any ``import ray`` in our code;
the local stack (``cli/stack.py``) writes the same variables into ``.state/stack.env`` for other
shells.
"""

import os as _os

JOB_NAME_ENV = "UNILSEG_RAY_JOB_NAME"  # the Ray dashboard's name for this process's job (common.ray_runtime)
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}
for _k, _v in LOOPBACK_ENV.items():
    _os.environ.setdefault(_k, _v)
