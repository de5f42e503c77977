"""Prefect flows and deployments of the UniLSeg pipeline: wiring only, no model code."""

import unilseg as _unilseg  # noqa: F401  (keeps Ray on 127.0.0.1; must precede `import ray`)
