"""Connecting to Ray and the few scheduling rules every distributed function shares."""

from __future__ import annotations

import ray


def connect(ray_address: str | None) -> None:
    """Use this process's Ray connection, or open one: ``ray.init(address=ray_address)``.

    With ``ray_address=None`` Ray itself reads ``RAY_ADDRESS`` and otherwise starts a local
    instance. An existing connection is kept as it is (Ray allows one per process).
    """
    if ray_address is not None and not isinstance(ray_address, str):
        raise TypeError(f"ray_address must be a str or None, got {type(ray_address).__name__}")
    if not ray.is_initialized():
        ray.init(address=ray_address)


def cluster_cpus() -> int:
    """CPUs of the whole cluster (at least 1)."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))
