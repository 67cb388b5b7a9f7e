"""Files a person or a tool reads later are written under a temporary name and renamed into
place: a kill, an exception or a full disk in the middle never leaves a file under the final
name that looks whole (seen: a 0-byte encoder.keras after a kill -9, a truncated weights
artifact after a full disk)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from optuna.artifacts import FileSystemArtifactStore

from search.errors import UsageError

PARTIAL_PREFIX = ".partial-"


def write_into_place(path: Path, write: Callable[[Path], object]) -> None:
    """`write(temporary)` beside `path`, then rename it to `path`. The temporary name keeps
    the extension, which Keras picks the format by. An OSError names `path` (a failed
    write names no file at all, and the temporary one would confuse)."""
    path = Path(path)
    temporary = path.with_name(f"{PARTIAL_PREFIX}{os.getpid()}-{path.name}")
    try:
        write(temporary)
        os.replace(temporary, path)
    except OSError as err:
        if err.filename is None or os.fspath(err.filename) == os.fspath(temporary):
            raise OSError(err.errno, err.strerror, os.fspath(path)) from err
        raise
    finally:
        temporary.unlink(missing_ok=True)


class AtomicArtifactStore(FileSystemArtifactStore):
    """Optuna's filesystem artifact store whose every artifact is written into place."""

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        def copy(temporary: Path) -> None:
            with open(temporary, "wb") as f:
                shutil.copyfileobj(content_body, f)

        write_into_place(self._get_filepath(artifact_id), copy)


def artifact_store(path: str | os.PathLike[str]) -> AtomicArtifactStore:
    """Optuna's filesystem artifact store at `path`, creating the folder; each artifact is
    written under a temporary name and renamed into place."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create the artifact folder {folder}: {err.strerror}") from err
    if not os.access(folder, os.W_OK):
        raise UsageError(f"the artifact folder {folder} is not writable")
    return AtomicArtifactStore(folder)
