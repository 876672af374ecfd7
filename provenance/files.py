"""Atomic file writes: a reader (or a run resumed after a kill) sees the old file or the new one,
never half of one. The data is fsynced before the rename, so a power cut cannot leave an empty file
under the final name either."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def save_atomically(path: str | Path, write: Callable[[Path], None], mode: int = 0o644) -> Path:
    """``write(temporary_path)`` then fsync and rename onto ``path`` (for writers such as
    ``torch.save`` that want a path). ``mode`` is set before the rename: 0o600 for private keys."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # created 0600
    os.close(fd)
    temporary = Path(name)
    try:
        write(temporary)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        if mode != 0o600:
            os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def write_atomically(path: str | Path, data: bytes | str, mode: int = 0o644) -> Path:
    """Write ``data`` (text is UTF-8 encoded) to ``path`` atomically."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    return save_atomically(path, lambda temporary: temporary.write_bytes(payload), mode)
