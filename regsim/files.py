"""Writing a file whole or not at all: the one atomic-write helper of the project (core and app).

A file is written under a temporary name in the *same folder* and then renamed over the target with
`os.replace`, which POSIX and Windows both perform as one step within a file system. A reader — the
app loading a preset, a script polling a state file, a slide tool picking up a figure — sees the old
file or the complete new one, never half of one; a failure (disk full, a cancelled GIF, a writer
that raises) leaves the old file untouched and no temporary file behind.

Three ways in, for the three kinds of writer in the project:

* `atomic_write_bytes(path, data)` / `atomic_write_text(path, text)` / `atomic_write_json(path, obj)`
  for data already in memory (PNG and SVG bytes, presets, metrics, run records);
* `atomic_path(path)`, a context manager yielding a temporary *file name* for writers that insist on
  opening the file themselves (Pillow's animated GIF, `QImage.save`, `QSvgGenerator.setFileName`).
  The name keeps the target's suffix, because those writers pick the format from it.

Every failure is a ValueError whose message names the file (or the folder) and the reason, as the
house rules ask of bad input; exceptions other than OSError raised by a writer propagate unchanged,
after the clean-up. No Qt here: the core uses it too.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once at import: temporary files are created 0600, the result gets the usual mode


def check_parent(path: str | os.PathLike) -> Path:
    """`path`'s folder, if it exists and is a folder; otherwise a ValueError naming it."""
    folder = Path(path).parent
    if not folder.exists():
        raise ValueError(f"folder {str(folder)!r} does not exist")
    if not folder.is_dir():
        raise ValueError(f"{str(folder)!r} is not a folder")
    return folder


def _why(e: OSError) -> str:
    return e.strerror or str(e)


@contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = True) -> Iterator[Path]:
    """A temporary file name next to `path` (same folder, same suffix) to write to; on a normal exit
    it replaces `path` whole, on an exception it is removed and `path` is left as it was.

    `fsync` flushes the data to the disk before the rename, so a crash right after it cannot leave an
    empty file under the new name (ext4's delayed allocation); a scratch file rewritten twice a second
    can skip it.
    """
    path = Path(path)
    folder = check_parent(path)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=folder)
    except OSError as e:
        raise ValueError(f"cannot write to folder {str(folder)!r}: {_why(e)}") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except OSError as e:
        raise ValueError(f"cannot write {str(path)!r}: {_why(e)}") from None
    finally:
        try:
            tmp.unlink()
        except FileNotFoundError:  # renamed: the normal case
            pass
        except OSError:  # nothing more to do; the target is intact either way
            pass


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> Path:
    """Write `data` to `path` whole, or leave `path` as it was (see `atomic_path`)."""
    path = Path(path)
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8",
                      fsync: bool = True) -> Path:
    """Write `text` to `path` whole, or leave `path` as it was (see `atomic_path`)."""
    return atomic_write_bytes(path, text.encode(encoding), fsync=fsync)


def atomic_write_json(path: str | os.PathLike, data: Any, *, fsync: bool = True) -> Path:
    """`data` as indented JSON (NaN and ±inf kept as JavaScript's literals, as Python writes them),
    written whole. The encoding runs first: data that is not JSON raises before any file is touched."""
    text = json.dumps(data, indent=2, allow_nan=True) + "\n"
    return atomic_write_text(path, text, fsync=fsync)


def read_bundled_json(name_or_path: str | os.PathLike, folder: Path, kind: str,
                      available: Callable[[], Iterable[str]]) -> tuple[Any, Path]:
    """(data, path) of a bundled JSON file by name (`folder/<name>.json`) or of any JSON file by
    path, for presets and lessons alike. Errors are ValueErrors that say what (`kind`) and why:
    not found (with the names `available()` lists, read only then), unreadable, or not valid JSON
    (with the line)."""
    path = Path(name_or_path)
    if path.suffix != ".json":
        path = folder / f"{name_or_path}.json"
        if not path.exists():
            raise ValueError(f"{kind} {str(name_or_path)!r} not found; available: "
                             f"{', '.join(available())}")
    try:
        return json.loads(path.read_text("utf-8")), path
    except OSError as e:
        raise ValueError(f"{kind} {str(path)!r} cannot be read: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{kind} {str(path)!r} is not valid JSON: {e.msg} at line {e.lineno}") from None
