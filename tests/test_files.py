"""The one atomic-write helper: old or new file, never half; private files never readable by others."""
from __future__ import annotations

import stat

import pytest

from provenance.files import save_atomically, write_atomically


def test_write_replaces_whole_files_with_the_mode_asked(tmp_path):
    path = tmp_path / "key.pem"
    write_atomically(path, b"old")
    assert path.read_bytes() == b"old" and stat.S_IMODE(path.stat().st_mode) == 0o644
    (tmp_path / ".key.pem.tmp").write_text("left by a killed run")
    (tmp_path / ".key.pem.tmp").chmod(0o666)
    write_atomically(path, "secret", mode=0o600)
    assert path.read_text() == "secret" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.pem"]  # the stale temporary was reused


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "model.bin"
    write_atomically(path, b"good")

    def broken(temporary):
        temporary.write_bytes(b"hal")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_atomically(path, broken)
    assert path.read_bytes() == b"good" and sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]
