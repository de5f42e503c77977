"""UniLSeg: the model, its training, evaluation and the command line."""

import os as _os

# Ray decides at import time whether its processes listen on all interfaces; this keeps
# every Ray listener we start on 127.0.0.1 (measured on these machines). Set before any
# `import ray`: annotation_engine and flows import this package first for that reason.
_os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
