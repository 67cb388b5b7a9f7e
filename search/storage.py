"""The one place that opens study storage.

Accepted storage spellings (anything else is a `UsageError` that lists them):

- `sqlite:///relative/path.db`, `sqlite:////absolute/path.db` — SQLite through Optuna's RDB
  storage; the folder is created. The default is `sqlite:///studies/<study>.db` (relative to the
  current directory), which `optuna-dashboard` reads as is.
- `postgresql://user:password@host:port/db` (also `postgres://`, rewritten to `postgresql://`)
  — the storage for many machines, through psycopg 3, the driver SQLAlchemy 2.1 picks for the
  bare URL in every tool; `postgresql+psycopg2://` uses psycopg2 if installed, else psycopg 3.
- `grpc://host:port` — a `python -m search storage-proxy` that holds the database connections
  for many workers (search.grpc_storage, search.proxy).
- `mysql://...`, `mysql+pymysql://...` — MySQL through Optuna's RDB storage (driver not bundled).
- `journal:///relative/path.log`, `journal:////absolute/path.log`, or a plain path ending in
  `.log` or `.journal` — Optuna's journal file storage (`JournalFileBackend`); the folder is
  created. This is the storage for several worker processes on one machine (see below).
- `memory:` — Optuna's in-memory storage: nothing survives the process and it cannot be shared
  between workers (`is_shareable` says so); `sqlite://` and `sqlite:///:memory:` are likewise
  in-memory.

Reaching a database server is checked when the storage is opened, with a 5 s connection timeout,
so a wrong host or port is a one-line `UsageError` within seconds, never a hang. Opening never
migrates or rewrites stored data: an Optuna schema that is too old or too new is reported with
the `optuna storage upgrade` command, not changed.

Heartbeats (dead-worker detection and retry) are described in `search.heartbeat`; RDB
storages (SQLite, PostgreSQL, MySQL) use Optuna's own heartbeat table, the journal file
(`search.journal`, which also says why several local workers default to it) and the gRPC proxy
a trial attribute (`search.heartbeat.AttrHeartbeat`).
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import os
import random
import re
import shlex
import time
import urllib.parse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from search.atomic import artifact_store  # noqa: F401 (re-exported: run opens it from here)
from search.errors import UsageError
from search.grpc_storage import is_grpc_url, open_grpc
from search.heartbeat import (
    GRACE_PERIODS,
    HEARTBEAT_INTERVAL_S,  # noqa: F401 (re-exported: run reads it from here)
    MAX_RETRY,
    RetryStaleTrial,
    check_heartbeat,
    record_dead_worker,
    skipped_on_fault,
)
from search.integrity import check_rows
from search.journal import HeartbeatJournalStorage, journal_path, open_journal  # noqa: F401 (re-exported)
from search.shell_words import split_words

STUDY_NAME_MAX_LENGTH = 100
# Where commands look for the storage URL when `--storage` is absent: a password in an
# environment variable stays out of the process list and the shell history.
STORAGE_ENV = "VAE_SEARCH_STORAGE"
CONNECT_TIMEOUT_S = 5
# Defaults for `run`: a trial is declared dead 2 minutes after its last heartbeat, and a trial
ACCEPTED_FORMS = (
    "sqlite:///path.db, postgresql://user:password@host:port/db, mysql://..., "
    "journal:///path.log (or a path ending in .log/.journal), grpc://host:port (a proxy), memory:"
)

_STUDY_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_IN_MEMORY_SQLITE = {"sqlite://", "sqlite:///:memory:"}


def validate_study_name(name: str) -> str:
    """Return `name` if it is a safe study name (it becomes a file name), else raise UsageError."""
    rule = (
        f"use 1-{STUDY_NAME_MAX_LENGTH} letters, digits, '-', '_' or '.', "
        "starting with a letter or digit, without '..'"
    )
    if not isinstance(name, str) or not name:
        raise UsageError(f"the study name is empty: {rule}")
    if len(name) > STUDY_NAME_MAX_LENGTH:
        raise UsageError(f"the study name is {len(name)} characters long: {rule}")
    if not _STUDY_NAME_RE.fullmatch(name) or ".." in name:
        raise UsageError(f"invalid study name {name!r}: {rule}")
    return name


def default_storage_url(study_name: str, *, parallel: bool = False) -> str:
    """Where a study lives when no `--storage` is given.

    One process: `sqlite:///studies/<study>.db`. Several local worker processes
    (`parallel=True`): `journal:///studies/<study>.log`. A study created by a parallel run is
    found again by later single-process commands (resume, report, dashboard): when only the
    journal file exists, that is the default.
    """
    study_name = validate_study_name(study_name)
    sqlite_path = Path("studies") / f"{study_name}.db"
    journal_file = Path("studies") / f"{study_name}.log"
    if parallel:
        if sqlite_path.exists() and not journal_file.exists():
            raise UsageError(
                f"study {study_name!r} already lives in {sqlite_path}, and several workers "
                "default to a journal file: run without --workers, or pass --storage "
                f"sqlite:///{sqlite_path.as_posix()} to share the SQLite file (slow with "
                "many writers)"
            )
        return f"journal:///{journal_file.as_posix()}"
    if journal_file.exists() and not sqlite_path.exists():
        return f"journal:///{journal_file.as_posix()}"
    return f"sqlite:///{sqlite_path.as_posix()}"


def is_shareable(url: str) -> bool:
    """False when the storage lives in one process's memory, so other workers cannot see it."""
    url = url.strip()
    if url in _IN_MEMORY_SQLITE or url.lower() in {"memory:", "memory://"}:
        return False
    return not ((url.startswith("sqlite:") and ":memory:" in url) or "mode=memory" in url)


def storage_file(url: str) -> Path | None:
    """The file a SQLite or journal URL names, as given; None for a server or memory."""
    url = url.strip()
    journal = journal_path(url)
    if journal is not None:
        return journal
    if url.lower().startswith("sqlite:///") and is_shareable(url):
        return Path(url[len("sqlite:///") :].split("?", 1)[0])
    return None


def absolute_url(url: str) -> str:
    """`url` with a SQLite or journal file named by its absolute path (servers and memory
    as they are): what is stored or exported then names the same file from any folder."""
    file = storage_file(url)
    if file is None:
        return url
    absolute = Path(os.path.abspath(file)).as_posix()
    stripped = url.strip()
    if stripped.lower().startswith("sqlite:///"):
        query = stripped.split("?", 1)[1] if "?" in stripped else ""
        return f"sqlite:///{absolute}" + (f"?{query}" if query else "")
    return f"journal:///{absolute}"


def redact_url(url: str) -> str:
    """The URL with any password replaced by `***`, fit for logs and study records.

    The password runs from the first ':' after `scheme://` to the *last* '@': passwords are
    typed with '@', '/' or ':' in them unencoded, and a first-'@' split would show the rest.
    (An '@' in the query string makes this hide more than the password, never less.)
    """
    span = _password_span(url)
    redacted = url if span is None else url[: span[0]] + "***" + url[span[1] :]
    return re.sub(r"(?i)((?:password|passwd)=)[^&\s]*", r"\1***", redacted)


def redact_text(text: str, url: str) -> str:
    """`text` (a driver's message, say) with `url` redacted and its password hidden wherever
    it appears, raw or percent-decoded."""
    span = _password_span(url)
    if span is not None:
        password = url[span[0] : span[1]]
        for secret in {password, urllib.parse.unquote(password)}:
            if len(secret) >= 4:  # a shorter one would blank out ordinary words
                text = text.replace(secret, "***")
    return redact_url(text)


def _password_span(url: str) -> tuple[int, int] | None:
    """Start and end of the password in `scheme://user:password@host...`, if there is one."""
    scheme_end = url.find("://")
    at = url.rfind("@")
    if scheme_end < 0 or at < scheme_end:
        return None
    start = scheme_end + 3
    colon = url.find(":", start, at)
    if colon < 0 or "/" in url[start:colon]:
        return None
    return colon + 1, at


def _encode_password(url: str) -> str:
    """`url` with an unencoded '@' in its password percent-encoded, as SQLAlchemy needs.

    SQLAlchemy ends the password at the first '@', so `u:p@ss@host` would try the host
    `ss@host`, and the driver's error would show part of the password.
    """
    span = _password_span(url)
    if span is None:
        return url
    password = url[span[0] : span[1]]
    if "@" not in password or "/" in password or "?" in password:
        return url  # either no '@' or not clearly a password: leave the URL as typed
    encoded = password.replace("%", "%25").replace("@", "%40")
    return url[: span[0]] + encoded + url[span[1] :]


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line fit to store or show: every URL-looking value passes through `redact_url`.

    Handles `--storage URL` and `--storage=URL` alike, and any other argument that carries a
    URL or a `password=` parameter, so no option can smuggle a credential into a study record.
    """
    shown = []
    for arg in argv:
        option, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        if _looks_like_url(value):
            value = redact_url(value)
        shown.append(option + eq + value)
    return shown


def redact_command(command: str) -> str:
    """`redact_argv` for a command line already joined into one shell-quoted string."""
    try:
        argv = split_words(command)  # linear: shlex.split is quadratic in a word's length
    except ValueError:  # unbalanced quotes: show nothing rather than risk a secret
        return "(command not shown: it could not be parsed)"
    return " ".join(shlex.quote(arg) for arg in redact_argv(argv))


def _looks_like_url(value: str) -> bool:
    return "://" in value or bool(re.search(r"(?i)passw(or)?d=", value))


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    max_retry: int = MAX_RETRY,
    must_exist: bool = False,
) -> BaseStorage:
    """Open the storage named by `url` (see the module docstring for the accepted forms).

    `heartbeat_interval`/`grace_period` (seconds) switch on dead-worker detection; the grace
    period defaults to four intervals. `must_exist=True` (for commands that only read,
    such as `report`) refuses to create a new SQLite or journal file.
    Raises UsageError for a malformed URL, an unreachable or unusable database, or bad
    heartbeat settings; never modifies what is already stored.
    """
    check_heartbeat(heartbeat_interval, grace_period, max_retry)
    url = url.strip()
    if not url:
        raise UsageError(f"the storage URL is empty: use one of {ACCEPTED_FORMS}")
    callback = RetryStaleTrial(max_retry=max_retry) if heartbeat_interval else None
    if heartbeat_interval and grace_period is None:
        grace_period = GRACE_PERIODS * heartbeat_interval

    if url.lower() in {"memory:", "memory://"}:
        return optuna.storages.InMemoryStorage()
    journal_file = journal_path(url)
    if journal_file is not None:
        return open_journal(journal_file, heartbeat_interval, grace_period, callback, must_exist)
    if is_grpc_url(url):
        return open_grpc(url, heartbeat_interval, grace_period, callback)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "postgres":
        url = "postgresql" + url[len("postgres") :]
        scheme = "postgresql"
    dialect = scheme.split("+", 1)[0]
    url = _encode_password(url)
    url = _postgres_driver(url, scheme)
    if dialect == "sqlite":
        engine_kwargs = _prepare_sqlite(url, must_exist)
    elif dialect == "postgresql":
        engine_kwargs = {
            "pool_pre_ping": True,
            "connect_args": {
                "connect_timeout": CONNECT_TIMEOUT_S,
                # A server that vanishes mid-study is noticed in about a minute, not hours.
                "keepalives": 1,
                "keepalives_idle": 30,
                "keepalives_interval": 10,
                "keepalives_count": 3,
            },
        }
    elif dialect in {"mysql", "mariadb"}:
        engine_kwargs = {
            "pool_pre_ping": True,
            "connect_args": {"connect_timeout": CONNECT_TIMEOUT_S},
        }
    else:
        raise UsageError(f"unsupported storage {redact_url(url)!r}: use one of {ACCEPTED_FORMS}")
    return _open_rdb(url, engine_kwargs, heartbeat_interval, grace_period, callback)


# -- RDB (SQLite, PostgreSQL, MySQL) ---------------------------------------------------------


class _HeartbeatRDBStorage(RDBStorage):
    """Optuna's RDB storage that also writes `fail_reason` on a trial it is about to fail as
    heartbeat-stale, so the report can say why it failed."""

    # Optuna never fails a RUNNING trial that has no heartbeat row, and its heartbeat thread
    # writes the first one only after the objective has started, so a worker killed at once
    # would leave its trial RUNNING for ever. The first heartbeat is written here instead, the
    # moment the trial starts to run in this process.

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        trial_id = super().create_new_trial(study_id, template_trial)
        if self.heartbeat_interval and (
            template_trial is None or template_trial.state == TrialState.RUNNING
        ):
            self.record_heartbeat(trial_id)
        return trial_id

    def record_heartbeat(self, trial_id: int) -> None:
        with skipped_on_fault():
            super().record_heartbeat(trial_id)

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        claimed = super().set_trial_state_values(trial_id, state, values)
        if claimed and state == TrialState.RUNNING and self.heartbeat_interval:
            self.record_heartbeat(trial_id)
        return claimed

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        stale = super()._get_stale_trial_ids(study_id)
        stale += self._orphans(study_id, set(stale))
        record_dead_worker(self, stale, self.grace_period or 0)
        return stale

    def _orphans(self, study_id: int, known: set[int]) -> list[int]:
        """RUNNING trials with no heartbeat row that started more than the grace period ago:
        a worker killed between creating its trial and its first heartbeat (Optuna skips them,
        so they would stay RUNNING for ever). A live worker writes that row at once."""
        from optuna.storages._rdb import models

        grace = self.grace_period or GRACE_PERIODS * (self.heartbeat_interval or 0)
        cutoff = datetime.datetime.now() - datetime.timedelta(seconds=grace)  # naive local
        with self.scoped_session() as session:
            ids = [
                trial_id
                for (trial_id,) in session.query(models.TrialModel.trial_id)
                .outerjoin(models.TrialHeartbeatModel)
                .filter(models.TrialModel.study_id == study_id)
                .filter(models.TrialModel.state == TrialState.RUNNING)
                .filter(models.TrialHeartbeatModel.trial_heartbeat_id.is_(None))
                .all()
                if trial_id not in known
            ]
        orphans = []
        for trial_id in ids:
            started = self.get_trial(trial_id).datetime_start
            if started is not None and started < cutoff:
                orphans.append(trial_id)
        return orphans


def _prepare_sqlite(url: str, must_exist: bool) -> dict[str, Any]:
    if url in _IN_MEMORY_SQLITE or not is_shareable(url):
        return {}
    if not url.lower().startswith("sqlite:///"):
        raise UsageError(
            f"malformed SQLite URL {url!r}: use sqlite:///relative/path.db or "
            "sqlite:////absolute/path.db"
        )
    path = Path(url[len("sqlite:///") :].split("?", 1)[0])
    if must_exist and not path.is_file():
        raise UsageError(f"no study storage at {path} (from {url})")
    if must_exist and not _holds_optuna_tables(path):
        # Opening it would create Optuna's tables in it: a command that only reads must not.
        raise UsageError(f"{path.resolve()} holds no Optuna study storage (an empty or other file)")
    if path.is_dir():
        raise UsageError(f"the SQLite storage path {path} is a folder, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create the folder for {url}: {err.strerror}") from err
    # A writer waits up to 60 s for the database lock instead of failing after pysqlite's 5 s.
    return {"connect_args": {"timeout": 60}}


def _holds_optuna_tables(path: Path) -> bool:
    """Is `path` a SQLite database with Optuna's `studies` table? Read without writing."""
    import sqlite3

    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        ) as db:
            found = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'studies'"
            ).fetchone()
    except sqlite3.DatabaseError:  # not a database at all
        return False
    return found is not None


def _open_rdb(
    url: str,
    engine_kwargs: dict[str, Any],
    heartbeat_interval: int | None,
    grace_period: int | None,
    callback: Callable[[optuna.Study, FrozenTrial], None] | None,
) -> BaseStorage:
    import sqlalchemy.exc

    shown = redact_url(url)
    # Workers that start together on a fresh database race to create Optuna's tables; the
    # loser sees "already exists" and simply tries again.
    for attempt in range(5):
        try:
            storage = _HeartbeatRDBStorage(
                url,
                engine_kwargs=copy.deepcopy(engine_kwargs),
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=callback,
            )
            check_rows(storage.engine, shown)  # a row Optuna cannot read is named, not hit
            return storage
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as err:
            if attempt < 4 and _is_creation_race(err):
                time.sleep(0.2 + random.random())
                continue
            raise UsageError(f"cannot use the database {shown}: {_first_line(err, url)}") from err
        except sqlalchemy.exc.OperationalError as err:
            if attempt < 4 and _is_creation_race(err):
                time.sleep(0.2 + random.random())
                continue
            raise UsageError(f"cannot open the storage {shown}: {_first_line(err, url)}") from err
        except sqlalchemy.exc.ArgumentError as err:
            raise UsageError(
                f"malformed storage URL {shown}: {_first_line(err, url)}; "
                f"use one of {ACCEPTED_FORMS}"
            ) from err
        except sqlalchemy.exc.NoSuchModuleError as err:
            raise UsageError(
                f"unsupported storage {shown}: {_first_line(err, url)}; use one of {ACCEPTED_FORMS}"
            ) from err
        except sqlalchemy.exc.SQLAlchemyError as err:
            raise UsageError(f"cannot open the storage {shown}: {_first_line(err, url)}") from err
        except ImportError as err:
            driver = url.split("://", 1)[0]
            hint = (
                "`pip install pymysql` and use mysql+pymysql://..."
                if driver.startswith(("mysql", "mariadb"))
                else "`pip install 'psycopg[binary]'` and use postgresql://..."
            )
            raise UsageError(f"no database driver for {driver!r} is installed: {hint}") from err
        except RuntimeError as err:
            # Optuna's schema version check: the stored schema is left as it is.
            if "optuna storage upgrade" in str(err) or "schema" in str(err).lower():
                raise UsageError(
                    f"the storage {shown} was written by another Optuna version: "
                    + _first_line(err, url)
                ) from err
            raise
        except ValueError as err:
            raise UsageError(f"malformed storage URL {shown}: {_first_line(err, url)}") from err
    raise AssertionError("unreachable")


def _postgres_driver(url: str, scheme: str) -> str:
    """A bare `postgresql://` stays as it is: SQLAlchemy gives it psycopg 3, as it does in the
    user's own tools (optuna-dashboard, `optuna.load_study`). `postgresql+psycopg2://` becomes
    `postgresql+psycopg://` when psycopg2 is not installed, so URLs written for it still work."""
    rest = url.split("://", 1)[-1]
    if scheme == "postgresql+psycopg2" and not _installed("psycopg2") and _installed("psycopg"):
        return "postgresql+psycopg://" + rest
    if scheme == "postgresql" and not _installed("psycopg") and _installed("psycopg2"):
        return "postgresql+psycopg2://" + rest  # an older install that has psycopg2 only
    return url


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _is_creation_race(err: Exception) -> bool:
    text = str(err).lower()
    return "already exists" in text or "duplicate key" in text or "unique constraint" in text


def _first_line(err: BaseException, url: str = "") -> str:
    text = str(getattr(err, "orig", None) or err).strip()
    line = text.splitlines()[0] if text else type(err).__name__
    return redact_text(line, url) if url else redact_url(line)
