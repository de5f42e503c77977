"""UniLSeg: the model, its data loading, training and evaluation (the library layer)."""

import common as _common  # noqa: F401  (keeps Ray's listeners on 127.0.0.1 before any import of ray)
