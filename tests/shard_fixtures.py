"""Builders of small valid samples for shard tests."""

from __future__ import annotations

import numpy as np
from conftest import encode

from shards.format import ImageInfo, Sample, Target
from shards.images import prepare_image
from shards.keys import make_key
from shards.rle import mask_to_rle


def make_sample(i: int, h: int = 24, w: int = 32, source: str = "test") -> Sample:
    """Sample i: a deterministic image, one instance target and one no-target expression."""
    rng = np.random.default_rng(i)
    st = prepare_image(encode(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), "PNG"))
    mask = np.zeros((h, w), bool)
    mask[i % h :, : (i % w) + 1] = True
    targets = [
        Target(
            [f"thing {i}", f"object number {i}"],
            mask_to_rle(mask),
            "res",
            "instance",
            source,
            scores={"iou": 0.5 + i % 5 / 10},
            provenance={"i": i},
        ),
        Target([f"nothing {i}"], None, "gres", "group", source),
    ]
    return Sample(
        make_key(source, f"img.{i}.png"),
        ImageInfo(str(i), st.width, st.height, st.sha256, source),
        st.data,
        st.ext,
        targets,
    )


def rewrite_shard(split, name: str, edit) -> None:
    """Rewrites a local shard through ``edit(members) -> members`` (a list of
    (tarfile.TarInfo, bytes | None)) and recomputes its sha256 and size in dataset.json, as
    someone who tampered with a dataset would: only the member checks can catch it then."""
    import hashlib
    import io
    import json
    import tarfile
    from pathlib import Path

    path = Path(split) / name
    with tarfile.open(path) as tf:
        members = [(m, tf.extractfile(m).read() if m.isreg() else None) for m in tf.getmembers()]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in edit(members):
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    path.write_bytes(buf.getvalue())
    doc = json.loads((Path(split) / "dataset.json").read_text())
    for entry in doc["shards"]:
        if entry["name"] == name:
            entry["sha256"], entry["bytes"] = hashlib.sha256(buf.getvalue()).hexdigest(), len(buf.getvalue())
    (Path(split) / "dataset.json").write_text(json.dumps(doc))


def extra_member(name: str, data: bytes | None = b"{}", kind: bytes = b"0", target: str = ""):
    """An edit for rewrite_shard appending one member (kind: tarfile type flag, e.g. SYMTYPE)."""
    import tarfile

    def edit(members):
        info = tarfile.TarInfo(name)
        info.type = kind
        if kind == tarfile.SYMTYPE:
            info.linkname, data_ = target, None
        else:
            data_ = data
        return members + [(info, data_)]

    return edit
