"""unilseg/loopback_ddp.py: DDP's rendezvous store listens on 127.0.0.1 only."""

from __future__ import annotations

import os
from datetime import timedelta

import psutil
import torch
import torch.distributed as dist

from common.processes import free_port
from unilseg.loopback_ddp import bind_rendezvous_to_loopback


def test_env_rendezvous_listens_on_loopback_only(monkeypatch):
    port = free_port()
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))
    bind_rendezvous_to_loopback()
    bind_rendezvous_to_loopback()  # idempotent
    dist.init_process_group("gloo", init_method="env://", rank=0, world_size=1, timeout=timedelta(seconds=30))
    try:
        t = torch.ones(3)
        dist.all_reduce(t)
        assert t.tolist() == [1.0, 1.0, 1.0]
        mine = [
            c for c in psutil.net_connections(kind="inet") if c.pid == os.getpid() and c.status == psutil.CONN_LISTEN
        ]
        assert port in {c.laddr.port for c in mine}
        assert {c.laddr.ip for c in mine} <= {"127.0.0.1", "::ffff:127.0.0.1", "::1"}, mine
    finally:
        dist.destroy_process_group()
