"""A worker's side of the gRPC storage proxy: `--storage grpc://host:port`.

The URL names a `python -m search storage-proxy` (search.proxy) that holds the database
connections for every worker. The worker talks to it through Optuna's `GrpcStorageProxy`.

Optuna's gRPC client has no heartbeat (it is not a `BaseHeartbeat`, so through it a dead
worker's trial would stay RUNNING for ever). `HeartbeatGrpcStorage` adds the same heartbeat as
the journal file (`search.heartbeat.AttrHeartbeat`): a trial system attribute written through
the proxy, read back by any worker, so dead-worker detection and retries work as on a direct
database connection. Its times are the workers' clocks (the RDB heartbeat uses the database
server's), so the machines' clocks must agree to well within the grace period (2 minutes by
default; NTP does) and run in the same time zone as the proxy (a trial's start time, used
before its first heartbeat, is the proxy's local time).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable

import optuna
from optuna.storages import GrpcStorageProxy
from optuna.trial import FrozenTrial

from search.errors import UsageError
from search.heartbeat import AttrHeartbeat

SCHEME = "grpc://"
READY_TIMEOUT_S = 5


def is_grpc_url(url: str) -> bool:
    return url.strip().lower().startswith(SCHEME)


def parse_grpc_url(url: str) -> tuple[str, int]:
    """(host, port) of `grpc://host:port`; anything else there is a UsageError."""
    shown = url.strip()
    usage = f"malformed proxy URL {shown!r}: use grpc://host:port (a storage-proxy's address)"
    try:
        parts = urllib.parse.urlsplit(shown)
        port = parts.port
    except ValueError as err:
        raise UsageError(f"{usage}; {err}") from err
    if (
        not parts.hostname
        or port is None
        or port == 0
        or parts.username
        or parts.password
        or parts.path not in {"", "/"}
        or parts.query
        or parts.fragment
    ):
        raise UsageError(usage)
    return parts.hostname, port


def address(host: str, port: int) -> str:
    """`host:port`, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class HeartbeatGrpcStorage(GrpcStorageProxy, AttrHeartbeat):
    """Optuna's gRPC storage client with the RDB storage's heartbeat contract."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        heartbeat_interval: int | None,
        grace_period: int | None,
        heartbeat_stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None,
    ) -> None:
        super().__init__(host=host, port=port)
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.heartbeat_stale_trial_callback = heartbeat_stale_trial_callback


def open_grpc(
    url: str,
    heartbeat_interval: int | None,
    grace_period: int | None,
    callback: Callable[[optuna.Study, FrozenTrial], None] | None,
) -> HeartbeatGrpcStorage:
    """Connect to the proxy at `url`; a proxy that does not answer within 5 s is a
    UsageError, never a hang."""
    host, port = parse_grpc_url(url)
    storage = HeartbeatGrpcStorage(
        host=host,
        port=port,
        heartbeat_interval=heartbeat_interval,
        grace_period=grace_period,
        heartbeat_stale_trial_callback=callback,
    )
    try:
        storage.wait_server_ready(timeout=READY_TIMEOUT_S)
    except ConnectionError as err:
        storage.close()
        raise UsageError(
            f"no storage proxy answers at {address(host, port)} within {READY_TIMEOUT_S} s: "
            f"start one there with `python -m search storage-proxy --storage URL --port {port}`"
        ) from err
    return storage
