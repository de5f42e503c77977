"""One image through the engine: in this process, or alone in a child process.

``annotate_one`` is the per-image work every caller shares (a bare loop, a test, an engine
actor). ``annotate_isolated`` runs it in a freshly spawned child (safe after CUDA and torch
threads, which a fork is not): if the child dies, the image killed it. The engine actors use
it for images that were in flight when an actor died, so that a poison image is quarantined
with how it killed the engine, and an image that was merely in flight when something else
killed the actor is annotated normally. This module stays light: it is what the child imports.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from typing import Any

from annotation_engine.engine import Engine
from common.processes import die_with_parent
from shards.images import ImageError, prepare_image

log = logging.getLogger(__name__)
# kinds of quarantine records an annotation run writes (a sample row has kind "sample")
BAD_INPUT, ENGINE_ERROR, NO_TARGETS, CRASHED, UNREADABLE = (
    "bad_input",
    "engine_error",
    "no_targets",
    "crashed_engine",
    "unreadable",
)
_SANDBOX_TIMEOUT_S = 3600.0


def annotate_one(engine: Engine, data: bytes) -> tuple[bool, Any]:
    """Encoded image -> (True, result dict) or (False, (kind, reason)).

    The result holds the bytes to store, their extension, the size as seen and the targets;
    kinds of failure are ``bad_input`` (ImageError), ``engine_error`` (anything the engine
    raised, with its type) and ``no_targets``.
    """
    try:
        img = prepare_image(data, engine.config.max_pixels)
    except ImageError as e:
        return False, (BAD_INPUT, str(e))
    try:
        targets = engine.annotate(img.rgb)
    except Exception as e:  # one image must not stop the run; the reason is quarantined
        log.exception("engine failed on an image")
        return False, (ENGINE_ERROR, f"{type(e).__name__}: {e}")
    if not targets:
        return False, (NO_TARGETS, "no targets")
    return True, _result(img, targets)


def annotate_batch(engine: Engine, datas: list[bytes]) -> list[tuple[bool, Any]]:
    """Several encoded images -> one (ok, result) per image, in order, as ``annotate_one`` gives.

    The decodable images go through ``Engine.annotate_batch`` together (one image-encoder
    call for several images on a GPU); if that raises, each is retried alone so that only the
    image at fault is reported as ``engine_error``.
    """
    out: list[tuple[bool, Any] | None] = [None] * len(datas)
    images = []  # (position, prepared image)
    for i, data in enumerate(datas):
        try:
            images.append((i, prepare_image(data, engine.config.max_pixels)))
        except ImageError as e:
            out[i] = (False, (BAD_INPUT, str(e)))
    try:
        batch = engine.annotate_batch([img.rgb for _, img in images]) if len(images) > 1 else None
    except Exception:  # find the image at fault: one by one
        log.warning("a batch of %d images failed; annotating them one by one", len(images))
        batch = None
    for k, (i, img) in enumerate(images):
        if batch is not None:
            targets = batch[k]
        else:
            try:
                targets = engine.annotate(img.rgb)
            except Exception as e:  # one image must not stop the run; the reason is quarantined
                log.exception("engine failed on an image")
                out[i] = (False, (ENGINE_ERROR, f"{type(e).__name__}: {e}"))
                continue
        out[i] = (True, _result(img, targets)) if targets else (False, (NO_TARGETS, "no targets"))
    return out  # type: ignore[return-value]


def _result(img: Any, targets: list) -> dict[str, Any]:
    return {"data": img.data, "ext": img.ext, "width": img.width, "height": img.height, "targets": targets}


def _sandbox_main(config: dict[str, Any], data: bytes, conn: Any) -> None:
    """Child process: build the engine, annotate one image, send the result back."""
    die_with_parent()  # a killed actor takes its child along (not Linux: the child may outlive it by one image)
    conn.send(annotate_one(Engine(config), data))
    conn.close()


def annotate_isolated(config: dict[str, Any], data: bytes, timeout: float = _SANDBOX_TIMEOUT_S) -> tuple[bool, Any]:
    """``annotate_one`` in a fresh child process (spawned: safe after CUDA and torch threads).

    A child that dies is the image's doing: (False, ("crashed_engine", how it died))."""
    ctx = multiprocessing.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_sandbox_main, args=(config, data, send), daemon=True)
    child.start()
    send.close()
    try:
        if recv.poll(timeout):
            try:
                return recv.recv()
            except EOFError:
                pass
        else:
            child.kill()
    finally:
        child.join(30)
        recv.close()
    code = child.exitcode
    how = (
        f"signal {signal.Signals(-code).name}"
        if code is not None and code < 0
        else f"exit code {code}"
        if code is not None
        else f"no answer in {timeout:.0f} s"
    )
    return False, (CRASHED, f"the engine process died on this image ({how}) after it had killed its actor")
