"""Keep torch.distributed's rendezvous on 127.0.0.1 when Ray Train runs on one machine.

Ray Train starts DDP through torch's TCPStore, whose server listens on every interface
whatever host it is given (measured: `*:PORT` while training). When the master address is
loopback, the store's server socket is bound to 127.0.0.1 by us and handed over with
TCPStore's `master_listen_fd`; gloo itself already binds to the loopback address. On a real
cluster (a non-loopback master address) nothing changes.
"""

from __future__ import annotations

import importlib
import socket
from dataclasses import dataclass
from typing import Any

from ray.train.torch import TorchConfig
from ray.train.torch.config import _TorchBackend  # Ray's own backend; we only add a step before it

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_sockets: list[socket.socket] = []  # the bound sockets live as long as the worker process


def _loopback_store_factory(store_cls: Any) -> Any:
    def make(*args: Any, **kw: Any) -> Any:
        host = kw.get("host_name", args[0] if args else None)
        port = kw.get("port", args[1] if len(args) > 1 else None)
        if kw.get("is_master") and host in LOOPBACK_HOSTS and "master_listen_fd" not in kw:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(128)
            _sockets.append(sock)
            kw["master_listen_fd"] = sock.fileno()
        return store_cls(*args, **kw)

    return make


def bind_rendezvous_to_loopback() -> None:
    """Makes torch.distributed's env:// and tcp:// rendezvous bind their store to 127.0.0.1
    when the master address is loopback (idempotent; run in each worker before DDP starts)."""
    # `torch.distributed.rendezvous` is also a function name in torch.distributed: import the module
    rdzv = importlib.import_module("torch.distributed.rendezvous")
    if not getattr(rdzv, "_unilseg_loopback", False):
        rdzv.TCPStore = _loopback_store_factory(rdzv.TCPStore)
        rdzv._unilseg_loopback = True


class _LoopbackTorchBackend(_TorchBackend):
    def on_start(self, worker_group: Any, backend_config: TorchConfig) -> None:
        worker_group.execute(bind_rendezvous_to_loopback)
        super().on_start(worker_group, backend_config)


@dataclass
class LoopbackTorchConfig(TorchConfig):
    """TorchConfig whose rendezvous store listens on 127.0.0.1 on a single machine."""

    @property
    def backend_cls(self):  # noqa: D102 - Ray's hook for the backend class
        return _LoopbackTorchBackend
