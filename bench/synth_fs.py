"""A generated bucket for bench_scale.py: ``synthimg://n<N>/dDDDD/sSS/img-<i>.png``, N tiny PNGs.

An fsspec filesystem that lists and reads like an object store (``ls`` per "directory", an
ETag per object) but holds nothing: each file is an 8x8 PNG made on request, distinct per index
(a tEXt chunk carries it), so every image has its own sha256. 50,000 images per top-level
prefix (the listing partitions), 1,000 per leaf prefix (one ``ls`` page each).

``setup_worker`` registers it in a Ray worker (``runtime_env={"worker_process_setup_hook":
"bench.synth_fs.setup_worker"}``) and swaps the engine's per-image work for a null engine: each
image becomes one fixed target (the whole image, "the whole image") without being decoded.
Everything else (listing, look-up, claims, the engine actor's ledger calls, sample building,
the shard writers, the commit) is the pipeline's own code.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

from fsspec.spec import AbstractFileSystem

PROTOCOL = "synthimg"
PER_TOP, PER_LEAF = 50_000, 1_000
VERSION = "etag-1"
SIDE = 8


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


_HEAD = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", SIDE, SIDE, 8, 2, 0, 0, 0))
_BODY = _chunk(b"IDAT", zlib.compress(b"".join(b"\x00" + bytes(range(SIDE * 3)) for _ in range(SIDE))))
_BODY += _chunk(b"IEND", b"")


def png(i: int) -> bytes:
    """The image at index i: an 8x8 RGB PNG whose tEXt chunk makes it unique."""
    return _HEAD + _chunk(b"tEXt", b"id\x00" + f"{i:012d}".encode()) + _BODY


SIZE = len(png(0))


class SynthFS(AbstractFileSystem):
    """N generated PNGs under ``n<N>/``: no storage, no state."""

    protocol = PROTOCOL
    root_marker = ""
    cachable = True

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        path = path[len(PROTOCOL) + 3 :] if path.startswith(PROTOCOL + "://") else path
        return path.strip("/")

    def _parse(self, path: str) -> tuple[int, list[str]]:
        parts = self._strip_protocol(path).split("/")
        if not parts[0].startswith("n") or not parts[0][1:].isdigit():
            raise FileNotFoundError(path)
        return int(parts[0][1:]), parts[1:]

    def _entry(self, name: str, is_dir: bool) -> dict[str, Any]:
        if is_dir:
            return {"name": name, "type": "directory", "size": 0}
        return {"name": name, "type": "file", "size": SIZE, "ETag": f'"{VERSION}"'}

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list:
        n, rest = self._parse(path)
        base = self._strip_protocol(path)
        if not rest:
            out = [self._entry(f"{base}/d{t:04d}", True) for t in range(-(-n // PER_TOP))]
        elif len(rest) == 1:
            top = int(rest[0][1:]) * PER_TOP
            leaves = -(-min(PER_TOP, n - top) // PER_LEAF)
            out = [self._entry(f"{base}/s{s:02d}", True) for s in range(leaves)]
        elif len(rest) == 2:
            first = int(rest[0][1:]) * PER_TOP + int(rest[1][1:]) * PER_LEAF
            out = [self._entry(f"{base}/img-{i:012d}.png", False) for i in range(first, min(first + PER_LEAF, n))]
        else:
            out = [self.info(path)]
        return out if detail else [e["name"] for e in out]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        n, rest = self._parse(path)
        name = self._strip_protocol(path)
        if len(rest) == 3:
            if self._index(rest) >= n:
                raise FileNotFoundError(path)
            return self._entry(name, False)
        return self._entry(name, True)

    @staticmethod
    def _index(rest: list[str]) -> int:
        return int(rest[2][len("img-") : -len(".png")])

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        n, rest = self._parse(path)
        if len(rest) != 3 or self._index(rest) >= n:
            raise FileNotFoundError(path)
        return png(self._index(rest))[start:end]

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        if mode != "rb":
            raise PermissionError("synthimg is read-only")
        return io.BytesIO(self.cat_file(path))


def register() -> None:
    import fsspec

    fsspec.register_implementation(PROTOCOL, SynthFS, clobber=True)


def _null_batch(engine: Any, datas: list[bytes]) -> list[tuple[bool, Any]]:
    """The null engine: one fixed target per image, no decoding, no model."""
    import numpy as np

    from shards.format import Target
    from shards.rle import mask_to_rle

    target = Target(
        texts=["the whole image"],
        mask=mask_to_rle(np.ones((SIDE, SIDE), bool)),
        task="auto",
        granularity="scene",
        source="auto/null",
        scores={},
        provenance={"engine": "null", "engine_version": engine.version},
    )
    return [(True, {"data": d, "ext": "png", "width": SIDE, "height": SIDE, "targets": [target]}) for d in datas]


def setup_worker() -> None:
    """Ray worker set-up hook: the generated bucket, and the null engine in the engine actors."""
    register()
    import annotation_engine.actor as actor

    actor.annotate_batch = _null_batch
