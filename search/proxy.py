"""`python -m search storage-proxy`: one process holds the database connections for many
workers, which pass `--storage grpc://host:port` (search.grpc_storage).

It serves an RDB storage (PostgreSQL, MySQL or SQLite), opened by `search.storage.open_storage`
and wrapped in Optuna's in-process cache as `optuna.storages.get_storage` wraps one, with
Optuna's own gRPC proxy service (`OptunaStorageProxyService`, what `run_grpc_proxy_server`
serves). The gRPC server is built here rather than by `run_grpc_proxy_server` for three
reasons: that function does not say which port `--port 0` got; gRPC's default SO_REUSEPORT
would let a second proxy share a port in use, so workers would be spread over two proxies
(perhaps of two databases) without a word; and a signal must stop it with one line, not a
traceback. The journal file is refused: Optuna's proxy does not support it (optuna/optuna
issue 6084), and on one machine the journal needs no proxy.

The proxy has no authentication and no TLS: whoever reaches the port can read and change
every study in the database. It listens on 127.0.0.1 unless `--host` says otherwise; give an
address only a trusted network reaches.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from search.arguments import whole
from search.errors import UsageError

# The CLI builds its parser from this module: what needs Optuna is imported when it runs.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 13000  # Optuna's own default for its proxy
THREADS = 10  # concurrent requests, as Optuna's run_grpc_proxy_server has them
STOP_GRACE_S = 5  # requests in flight may finish; then the server stops


def add_parser(commands: Any) -> None:
    """The `storage-proxy` subcommand, on the CLI's subparsers."""
    proxy = commands.add_parser(
        "storage-proxy",
        help="serve a database's studies to many workers over gRPC (workers: --storage grpc://)",
    )
    proxy.add_argument(
        "--storage",
        metavar="URL",
        help="the database to serve: postgresql://, mysql:// or sqlite:/// "
        "(default: $VAE_SEARCH_STORAGE)",
    )
    proxy.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}: this machine only; the proxy has "
        "no authentication)",
    )
    proxy.add_argument(
        "--port",
        type=whole(0, 65535, "a port"),
        default=DEFAULT_PORT,
        help=f"port (default {DEFAULT_PORT}; 0: any free port, printed)",
    )


def proxy_command(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT, then stop with one line (exit 0)."""
    # gRPC's C core writes its own log lines to stderr (a failed bind, say): the error line
    # below says it once. Read when gRPC is first imported, so set before anything imports it.
    if not args.verbose:
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    import optuna

    from search.grpc_storage import address
    from search.storage import open_storage, redact_url

    if not args.verbose:
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per study created
    url = (args.storage or "").strip()
    check_servable(url)
    storage = optuna.storages.get_storage(open_storage(url))
    server, port = start_server(storage, args.host, args.port)
    stopped = threading.Event()
    received: list[str] = []

    def stop(signum: int, _frame: object) -> None:
        received.append(signal.Signals(signum).name)
        stopped.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    reach = socket.gethostname() if args.host in {"0.0.0.0", "::", ""} else args.host
    print(
        f"storage-proxy: serving {redact_url(url)} on {address(args.host, port)}; workers: "
        f"--storage grpc://{address(reach, port)} (SIGTERM or Ctrl-C stops it)",
        flush=True,
    )
    while not stopped.wait(1.0):
        pass
    server.stop(STOP_GRACE_S).wait()
    print(f"storage-proxy: stopped by {received[0]}", flush=True)
    return 0


def check_servable(url: str) -> None:
    """Refuse what the proxy cannot or should not serve, before anything is opened."""
    from search.grpc_storage import is_grpc_url
    from search.journal import journal_path
    from search.storage import is_shareable, redact_url

    if not url:
        raise UsageError(
            "storage-proxy needs --storage URL (or $VAE_SEARCH_STORAGE): the database to serve"
        )
    if is_grpc_url(url):
        raise UsageError(
            f"{redact_url(url)} is a proxy, not a database: give storage-proxy the database URL "
            "(postgresql://...) and the workers the proxy's grpc:// URL"
        )
    if journal_path(url) is not None:
        raise UsageError(
            "Optuna's gRPC proxy does not serve the journal file storage: serve a database "
            "(postgresql://...), or let workers on one machine share the journal file directly"
        )
    if not is_shareable(url):
        raise UsageError(
            f"{redact_url(url)} lives in one process's memory and would be lost when the proxy "
            "stops: serve a database (postgresql://...)"
        )


def start_server(storage: Any, host: str, port: int) -> tuple[Any, int]:
    """A started gRPC server with Optuna's proxy service for `storage`, and its bound port."""
    import grpc
    from optuna.storages._grpc.auto_generated import api_pb2_grpc
    from optuna.storages._grpc.servicer import OptunaStorageProxyService

    from search.grpc_storage import address

    # SO_REUSEPORT off: a port already in use is an error, not a port shared with another proxy.
    server = grpc.server(
        ThreadPoolExecutor(max_workers=THREADS), options=[("grpc.so_reuseport", 0)]
    )
    api_pb2_grpc.add_StorageServiceServicer_to_server(OptunaStorageProxyService(storage), server)
    where = address(host, port)
    try:
        bound = server.add_insecure_port(where)
    except RuntimeError as err:  # "Failed to bind to address ...; set GRPC_VERBOSITY=..."
        bound, reason = 0, str(err).split(";", 1)[0].strip() or type(err).__name__
    else:
        reason = "gRPC could not bind it"
    if not bound:
        raise UsageError(
            f"cannot listen on {where}: {reason} (is the port in use, or the host "
            "not an address of this machine?)"
        )
    server.start()
    return server, bound
