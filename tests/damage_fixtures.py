"""Damaged copies of a small valid split, one per kind of damage the readers and `verify` must refuse.

Each builder takes a valid split dir (written by ShardWriter) and damages it in place. Member
damage (a symlink, an absolute name, a name with `..`, a `/` in the key) rewrites the first
shard with the same members but one, and recomputes its sha256 and size in dataset.json, so
that only the member itself is wrong.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path


def _info(split: Path) -> dict:
    return json.loads((split / "dataset.json").read_text())


def _write_info(split: Path, info: dict) -> None:
    (split / "dataset.json").write_text(json.dumps(info, indent=1))


def _first_shard(split: Path) -> Path:
    return split / _info(split)["shards"][0]["name"]


def _rewrite_members(split: Path, change: Callable[[tarfile.TarInfo, bytes], tuple[tarfile.TarInfo, bytes]]) -> str:
    """Rewrites the first shard; `change` edits the first .json member. Returns the new member name.
    The shard's sha256 and size are recomputed in dataset.json: the checksum matches."""
    shard = _first_shard(split)
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar.getmembers()]
    out, changed = io.BytesIO(), None
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for m, data in members:
            if changed is None and m.name.endswith(".json"):
                m, data = change(m, data)
                changed = m.name
            tar.addfile(m, io.BytesIO(data) if m.isfile() else None)
    shard.write_bytes(out.getvalue())
    info = _info(split)
    info["shards"][0].update(sha256=hashlib.sha256(out.getvalue()).hexdigest(), bytes=len(out.getvalue()))
    _write_info(split, info)
    return changed


def _renamed(prefix: str) -> Callable:
    def change(m: tarfile.TarInfo, data: bytes):
        m.name = prefix + m.name
        return m, data

    return change


def _symlink(m: tarfile.TarInfo, data: bytes):
    link = tarfile.TarInfo(m.name)
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/hostname"
    return link, b""


def delete_manifest(split: Path) -> str:
    (split / "manifest.parquet").unlink()
    return "manifest.parquet"


def wrong_counts(split: Path) -> str:
    info = _info(split)
    info["counts"]["samples"] += 5
    info["shards"][0]["samples"] += 5
    _write_info(split, info)
    return info["shards"][0]["name"]


def flip_bytes(split: Path) -> str:
    """Same size, other bytes in the middle of the first shard: a checksum mismatch."""
    shard = _first_shard(split)
    data = bytearray(shard.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 16] = bytes(b ^ 0xFF for b in data[mid : mid + 16])
    shard.write_bytes(bytes(data))
    return shard.name


def truncate(split: Path) -> str:
    shard = _first_shard(split)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 3])
    return shard.name


def delete_shard(split: Path) -> str:
    shard = _first_shard(split)
    shard.unlink()
    return shard.name


DAMAGE: dict[str, Callable[[Path], str]] = {
    "manifest deleted": delete_manifest,
    "counts disagree": wrong_counts,
    "checksum mismatch": flip_bytes,
    "truncated shard": truncate,
    "missing shard": delete_shard,
    "symlink member": lambda split: _rewrite_members(split, _symlink),
    "absolute member name": lambda split: _rewrite_members(split, _renamed("/")),
    "member name with ..": lambda split: _rewrite_members(split, _renamed("../")),
    "slash in the key": lambda split: _rewrite_members(split, _renamed("sub/")),
}


def damage_last_shard(split: Path, kind: str) -> str:
    """DAMAGE[kind] applied to the split's last shard instead of its first: a reader that stops
    early (a preview with a small --limit) never reaches it. Returns what DAMAGE[kind] returns."""
    info = _info(split)
    info["shards"].reverse()  # the builders damage the first listed shard
    _write_info(split, info)
    what = DAMAGE[kind](split)
    info = _info(split)  # a member rewrite updated the entry's sha256 and size
    info["shards"].reverse()
    _write_info(split, info)
    return what


BROKEN_KINDS = ("image", "size")  # bytes no decoder reads; an image of another size than its mask


def write_broken_targets_split(split: Path, n: int, broken: dict[int, str], side: int = 32) -> list[str]:
    """A valid split of `n` one-target samples (side x side noise, a box mask) in which
    ``broken[i]`` breaks sample i's target the way the training stream must skip: "image"
    stores bytes that decode to nothing, "size" an image larger than its mask. The shards,
    checksums and manifest are all consistent: only decoding finds these. Returns the keys."""
    import hashlib

    import numpy as np
    from conftest import encode

    from shards.format import ImageInfo, Sample, Target
    from shards.keys import make_key
    from shards.rle import mask_to_rle
    from shards.writer import ShardWriter

    keys = []
    mask = np.zeros((side, side), bool)
    mask[side // 4 : side // 2, side // 4 : 3 * side // 4] = True
    with ShardWriter(split, max_count=8) as w:
        for i in range(n):
            rng = np.random.default_rng(i)
            shape = (side + 8, side + 8, 3) if broken.get(i) == "size" else (side, side, 3)
            data = encode(rng.integers(0, 255, shape, dtype=np.uint8), "PNG")
            if broken.get(i) == "image":
                data = b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 255, 64, dtype=np.uint8))
            key = make_key("broken", f"img{i}.png")
            info = ImageInfo(str(i), side, side, hashlib.sha256(data).hexdigest(), "broken")
            w.write(
                Sample(key, info, data, "png", [Target(["the box"], mask_to_rle(mask), "res", "instance", "broken")])
            )
            keys.append(key)
    return keys
