"""Output files written safely: into a temporary file beside the target, flushed to disk, then
renamed over it, so a failure (a full disk, Ctrl-C) leaves the old file untouched and no partial
file behind; a target that exists and is not a regular file (a device, a folder) is refused
before anything is written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from formats.errors import RsimError


def check_output_path(path: str | Path) -> Path:
    """`path` when a file may be written there, else one error saying why."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise RsimError(f"cannot write {path}: it exists and is not a regular file")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise RsimError(f"cannot write {path}: folder {folder} does not exist")
    return path


def write_atomically(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` (see the module docstring); returns the path."""
    path = check_output_path(path)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                             dir=path.parent if str(path.parent) else ".")
    except OSError as error:
        raise RsimError(f"cannot write {path}: {error.strerror or error}") from error
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise RsimError(f"cannot write {path}: {error.strerror or error}") from error
        raise
    return path
