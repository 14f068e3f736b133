"""Writing a file so that a reader sees the old content or the new, never a part of it.

Python's standard library has no atomic write (and the ``atomicwrites`` package is no longer
maintained), so this is the one place that does it: a unique temporary file beside the target
(so concurrent writers never share one), then ``os.replace``, atomic on POSIX.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: str | Path, data: bytes | str, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` (``str`` is written as UTF-8) in one step, with
    permissions ``mode`` (``0o600`` for anything private to its owner)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
