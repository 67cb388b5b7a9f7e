"""Output places, checked before anything is computed or written.

A command that will write into a folder (`train --save`, `report --out`, `run`'s artifacts
and report) asks here first, so a folder it cannot use is a one-line error at once, not a
crash after minutes of training, and a refused command creates nothing: the check walks up
to the nearest existing ancestor instead of creating the folder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from search import records
from search.errors import UsageError


def check_output_folder(
    folder: str | os.PathLike[str], option: str, files: Iterable[str] = ()
) -> Path:
    """`folder` as an absolute path if it is, or can be created as, a writable folder.

    `files` are the names the command will write there: one that exists as anything but a
    regular file (a folder, a FIFO) is refused too. Nothing is created.
    """
    text = os.fspath(folder)
    if not text.strip():
        raise UsageError(f"{option} is empty: give a folder")
    try:
        path = Path(text).absolute()
        nearest = path
        while not nearest.exists():
            if nearest.is_symlink():
                raise UsageError(f"{option} {text}: {nearest} is a broken symbolic link")
            nearest = nearest.parent
        if not nearest.is_dir():
            where = (
                "exists and is not a folder"
                if nearest == path
                else f"cannot be created: {nearest} is not a folder"
            )
            raise UsageError(f"{option} {text} {where}")
        if not os.access(nearest, os.W_OK | os.X_OK):
            raise UsageError(f"{option} {text}: {nearest} is not writable (permission denied)")
        if nearest == path:
            for name in files:
                target = path / name
                if target.exists() and not target.is_file():
                    raise UsageError(f"{option} {text}: {target} exists and is not a regular file")
    except (OSError, ValueError) as err:  # a name too long, a NUL byte
        reason = getattr(err, "strerror", None) or str(err)
        raise UsageError(f"{option} {text!r} cannot be used: {reason}") from None
    return path


def study_artifacts_dir(
    attrs: Mapping[str, Any],
    storage_url: str | None = None,
    default: str | os.PathLike[str] | None = None,
) -> Path | None:
    """The artifact folder of the study whose user attrs are `attrs`; nothing is created.

    The recorded folder (unless `own_artifacts_dir` refuses it), else `default` (None when
    neither is there). With `storage_url`, a
    relative path is resolved as `stored_artifacts_dir` does; without it, it is taken as it is.
    Every command that reads a study's artifacts finds them here.
    """
    recorded = records.read_artifacts_dir(attrs)
    if recorded is not None and own_artifacts_dir(
        found := _located(recorded, storage_url), storage_url
    ):
        return found
    return None if default is None else _located(os.fspath(default), storage_url)


def _located(path: str, storage_url: str | None) -> Path:
    return stored_artifacts_dir(path, storage_url) if storage_url is not None else Path(path)


def own_artifacts_dir(folder: Path, storage_url: str | None = None) -> bool:
    """Whether the stored `folder` can be a study's own artifact folder; warns when not.

    Not a filesystem root, nor a folder that holds the study's storage file: with a stored
    `artifacts_dir` of `/`, a stored artifact id could name any file on the machine (a report
    embedded a system image). Such a folder is not used: the caller's default is taken.
    """
    resolved = Path(os.path.realpath(folder))
    storage_file = _local_storage_file(storage_url) if storage_url else None
    holds_storage = storage_file is not None and Path(
        os.path.realpath(storage_file)
    ).is_relative_to(resolved)
    if resolved.parent != resolved and not holds_storage:
        return True
    why = (
        "a filesystem root" if resolved.parent == resolved else "the folder of the study's storage"
    )
    logging.getLogger(__name__).warning(
        "warning: the stored artifact folder %s is not used: it is %s, not a study's artifact "
        "folder (give --artifacts DIR to name the right one)",
        folder,
        why,
    )
    return False


class OutsideFolder(ValueError):
    """A stored artifact id that leads out of its artifact folder."""


def artifact_file(folder: Path, artifact_id: str) -> Path | None:
    """The regular file that `artifact_id` names in the artifact folder `folder`, with symbolic
    links followed; None when there is none. Raises `OutsideFolder` for an id that is not a
    plain file name (a path, `..`) or whose file lies outside the folder once links are
    followed: stored ids are data, and a report once embedded a system image through one."""
    if (
        not artifact_id
        or artifact_id in (".", "..")
        or any(ch in artifact_id for ch in "/\\\0")
        or os.path.isabs(artifact_id)
    ):
        raise OutsideFolder(artifact_id)
    base = Path(os.path.realpath(folder))
    target = Path(os.path.realpath(base / artifact_id))
    if target == base or not target.is_relative_to(base):
        raise OutsideFolder(artifact_id)
    return target if target.is_file() else None  # never a FIFO, which would block a read


def stored_artifacts_dir(stored: str, storage_url: str) -> Path:
    """The artifact folder a study records, as an absolute path; nothing is created.

    Studies record it absolute. Older ones recorded it relative to the folder `run` was started
    in, which a later command may not share: such a path is looked for in the current folder,
    then next to each ancestor folder of a local storage file (`studies/<study>.db` and
    `studies/<study>/artifacts` sit side by side), and the first that exists is taken.
    """
    path = Path(stored)
    if path.is_absolute():
        return path
    candidates = [Path.cwd() / path]
    storage_file = _local_storage_file(storage_url)
    if storage_file is not None:
        candidates += [folder / path for folder in storage_file.absolute().parents]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[0]


def _local_storage_file(url: str) -> Path | None:
    for prefix in ("sqlite:///", "journal:///"):
        if url.lower().startswith(prefix):
            return Path(url[len(prefix) :].split("?", 1)[0])
    if "://" not in url and url.lower().endswith((".log", ".journal")):
        return Path(url)
    return None
