"""Atomic file writes: a reader (or a run resumed after a kill) sees the old file or the new one,
never half of one. The data is fsynced before the rename, so a power cut cannot leave an empty file
under the final name either."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def save_atomically(path: str | Path, write: Callable[[Path], None], mode: int = 0o644) -> Path:
    """``write(temporary_path)`` then fsync and rename onto ``path`` (for writers such as
    ``torch.save`` that want a path). ``mode`` is set before the rename: 0o600 for private keys.

    The temporary file is ``.NAME.tmp`` beside ``path``, created 0600 (a key is never readable by
    others, not even for an instant); one left by a killed run is reused, never accumulated."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # a stale temporary may carry another mode
    os.close(fd)
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


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (what a weights file is identified by)."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def provenance_home() -> Path | None:
    """``$PROVENANCE_HOME``, where keys and the trust store live when set (else ~/.config/provenance)."""
    home = os.environ.get("PROVENANCE_HOME")
    return Path(home).expanduser() if home else None
