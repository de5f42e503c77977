"""The annotation engine: mask generators, captioners, filters, the engine and its Ray actor."""

import unilseg as _unilseg  # noqa: F401  (keeps Ray on 127.0.0.1; must precede `import ray`)
