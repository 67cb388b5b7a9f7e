"""A real, throwaway PostgreSQL server for tests and benchmarks.

`PostgresServer` runs Debian's (or any) `initdb` and `postgres` in a temporary directory on a
free 127.0.0.1 port, with its unix socket inside that directory, and removes everything on
stop. PostgreSQL refuses to run as root, so under root the server runs as the `postgres` OS
user (which the `postgresql` package creates) and the directory is handed to that user.

Fixtures (registered in `tests/conftest.py`):

- `postgres_server` (session): the running server.
- `postgres_url` (session): `postgresql://vae:...@127.0.0.1:PORT/vae_search` (the bare URL:
  SQLAlchemy 2.1 gives it psycopg 3, the driver the package depends on).
- `fresh_postgres_url` (function): a new, empty database for one test, dropped after it.

Missing binaries fail the test with the install command; they are never skipped, because CI
installs the package and a silently skipped storage test proves nothing.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

ROLE = "vae"
PASSWORD = "vae-test-secret"
DATABASE = "vae_search"
START_TIMEOUT_S = 60.0


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are missing or the server would not start."""


def find_postgres_bindir() -> Path:
    """Return the folder holding `initdb` and `postgres` ($PG_BIN, $PATH, then Debian's layout)."""
    candidates: list[str] = []
    if os.environ.get("PG_BIN"):
        candidates.append(os.environ["PG_BIN"])
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(os.path.dirname(on_path))
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0,
        reverse=True,
    )
    candidates.extend(debian)
    for folder in candidates:
        if all(os.access(os.path.join(folder, b), os.X_OK) for b in ("initdb", "postgres")):
            return Path(folder)
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, postgres) not found: install them with "
        "`apt-get install postgresql` (or set PG_BIN to their folder)"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory; `start()`, then `stop()` removes it.

    `durable=False` (tests) turns fsync off for speed; benchmarks use `durable=True` so the
    numbers are what a real server costs.
    """

    def __init__(self, *, durable: bool = False) -> None:
        self.bindir = find_postgres_bindir()
        self.durable = durable
        self.root = Path(tempfile.mkdtemp(prefix="vae-pg-"))
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log_path = self.root / "postgres.log"
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._run_as: str | None = None
        if os.geteuid() == 0:
            try:
                import pwd

                pwd.getpwnam("postgres")
            except KeyError as err:
                raise PostgresUnavailable(
                    "running as root but there is no `postgres` OS user to run the server: "
                    "install it with `apt-get install postgresql`"
                ) from err
            self._run_as = "postgres"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> PostgresServer:
        self.socket_dir.mkdir()
        self.log_path.touch()
        if self._run_as:
            shutil.chown(self.root, self._run_as, self._run_as)
            for p in (self.socket_dir, self.log_path):
                shutil.chown(p, self._run_as, self._run_as)
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        last_error = ""
        for _ in range(3):  # the free port can be taken between probing and binding
            self.port = _free_port()
            try:
                self._launch()
                break
            except PostgresUnavailable as err:
                last_error = str(err)
        else:
            self.stop()
            raise PostgresUnavailable(last_error)
        self._create_role_and_database()
        return self

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # "fast" shutdown: ends sessions, no wait
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- URLs and databases ----------------------------------------------------------------

    def url(self, database: str = DATABASE) -> str:
        return f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database owned by the test role and return its URL."""
        name = name or "t_" + uuid.uuid4().hex[:12]
        with self._admin() as cur:
            cur.execute(f'CREATE DATABASE "{name}" OWNER {ROLE}')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with self._admin() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def connections(self, database: str) -> int:
        """Client connections open to `database` now (pg_stat_activity), this query's own
        connection (to another database) not counted."""
        with self._admin() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = %s AND backend_type = 'client backend'",
                (database,),
            )
            row = cur.fetchone()
        return int(row[0]) if row else 0

    # -- internals -------------------------------------------------------------------------

    def _run(self, argv: list[str]) -> None:
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            user=self._run_as,
            group=self._run_as,
            cwd=self.root,
            check=False,
        )
        if result.returncode != 0:
            raise PostgresUnavailable(
                f"{Path(argv[0]).name} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )

    def _launch(self) -> None:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "max_connections": "200",
            "shared_buffers": "32MB",
        }
        if not self.durable:
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        argv = [str(self.bindir / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        log = open(self.log_path, "ab")  # noqa: SIM115 - the server owns it until it exits
        self._process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            user=self._run_as,
            group=self._run_as,
            cwd=self.root,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                raise PostgresUnavailable(
                    "postgres exited at start: " + self.log_path.read_text()[-2000:]
                )
            try:
                psycopg.connect(
                    host=str(self.socket_dir),
                    port=self.port,
                    user="postgres",
                    dbname="postgres",
                    connect_timeout=2,
                ).close()
                return
            except psycopg.OperationalError:
                time.sleep(0.1)
        self.stop()
        raise PostgresUnavailable(
            f"postgres did not accept connections within {START_TIMEOUT_S:.0f} s: "
            + self.log_path.read_text()[-2000:]
        )

    @contextlib.contextmanager
    def _admin(self) -> Iterator[psycopg.Cursor[tuple[object, ...]]]:
        conn = psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user="postgres",
            dbname="postgres",
            connect_timeout=5,
            autocommit=True,
        )
        try:
            with conn.cursor() as cur:
                yield cur
        finally:
            conn.close()

    def _create_role_and_database(self) -> None:
        with self._admin() as cur:
            # A utility statement takes no server-side parameters: the password is quoted here.
            cur.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(ROLE), sql.Literal(PASSWORD)
                )
            )
            cur.execute(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")


# -- pytest fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer().start()
    except PostgresUnavailable as err:
        pytest.fail(str(err), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL of a database shared by the whole session (tests must use their own study names)."""
    return postgres_server.url()


@pytest.fixture
def fresh_postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a new empty database, dropped after the test."""
    name = "t_" + uuid.uuid4().hex[:12]
    url = postgres_server.create_database(name)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)
