"""Atomic file writes: write a temporary file in the same folder, fsync it, then rename over the target.

A write that fails for lack of room or permission raises `WriteFailed`, one line naming the folder,
the free space there and the space needed; the target keeps its previous content.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

#: errno values that mean "the output folder cannot take this write" rather than a bug.
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}


class WriteFailed(OSError):
    """A file could not be written under the output folder (disk full, read-only, no permission)."""


def write_failed(err: OSError, folder: Path, needed: int | None = None) -> OSError:
    """`err` as a one-line WriteFailed naming `folder`, its free space and `needed` bytes; other errors unchanged."""
    if err.errno not in _NO_ROOM:
        return err
    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:.1f} MiB free"
    except OSError:
        free = "free space unknown"
    need = f", about {needed / 2**20:.1f} MiB needed" if needed is not None else ""
    return WriteFailed(err.errno, f"cannot write to {folder}: {err.strerror} ({free}{need}); free some space or make the folder writable, "
                                  "or choose another output folder")


def umask() -> int:
    """The process's current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode `open()` gives a new file under the current umask (mkstemp's files are 0600)."""
    return 0o666 & ~umask()


def first_missing(path: str | os.PathLike) -> Path | None:
    """The outermost folder of `path` (itself or one of its parents) that does not exist yet; None if `path` exists."""
    path, missing = Path(path).absolute(), None
    while not path.exists():
        path, missing = path.parent, path
    return missing


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_path)` then rename the finished file to `path`; readers never see a partial file."""
    path = Path(path)
    tmp_path = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        write(tmp_path)
        os.chmod(tmp_path, file_mode())
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except OSError as err:
        raise write_failed(err, path.parent) from None
    finally:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_symlink(link: str | os.PathLike, target: str) -> None:
    """Point `link` at `target` (relative), replacing any previous link in one rename."""
    link = Path(link)
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)
