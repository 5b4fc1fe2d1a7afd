"""Outputs: checked before work starts, and no temporary file survives a failed write (a full disk included)."""

from __future__ import annotations

import errno

import pytest
import torch

from featherweight_core.atomic import atomic_dir, atomic_write, check_output_dir, checked_output_dir
from featherweight_core.errors import OutputError, UserError


def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _listing(d):
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def test_a_full_disk_leaves_no_temp_file(tmp_path):
    (tmp_path / "keep.txt").write_text("old")
    with pytest.raises(OSError, match="No space left"):
        atomic_write(tmp_path / "keep.txt", _enospc)
    with pytest.raises(OSError, match="No space left"), atomic_dir(tmp_path / "model") as tmp:
        (tmp / "config.json").write_text("{}")
        _enospc()
    assert _listing(tmp_path) == ["keep.txt"] and (tmp_path / "keep.txt").read_text() == "old"


def test_a_checkpoint_save_that_fails_leaves_nothing(tmp_path, monkeypatch):
    from featherweight_core.pipeline.checkpoint import save_checkpoint
    from featherweight_core.students.models import StudentConfig, build_student

    cfg = StudentConfig("ffn", "hash", 8, 2, vocab_size=100)
    model = build_student(cfg)
    monkeypatch.setattr(torch, "save", _enospc)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "out" / "student.pt", model, cfg, 100)
    assert _listing(tmp_path) == ["out"]  # the directory the caller asked for, no temp file in it


def test_output_dir_is_created_probed_and_removed_on_failure(tmp_path):
    out = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError), checked_output_dir(out, "--output a/b"):
        assert out.is_dir() and _listing(out) == []  # the probe file is gone
        raise RuntimeError("the command failed")
    assert _listing(tmp_path) == []
    with checked_output_dir(out):
        pass
    assert out.is_dir()
    (out / "x").write_text("x")
    with pytest.raises(RuntimeError), checked_output_dir(out):
        raise RuntimeError
    assert (out / "x").is_file()  # an existing directory is never removed
    with checked_output_dir(None) as nothing:
        assert nothing is None


def test_output_dir_errors_are_one_line_user_errors(tmp_path, monkeypatch):
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match=r"^--output f/sub: .*f exists and is not a directory$"):
        check_output_dir(tmp_path / "f" / "sub", "--output f/sub")
    monkeypatch.setenv("FEATHERWEIGHT_MIN_FREE_MB", "1e15")
    with pytest.raises(OutputError, match="MB free on its filesystem, need at least 1e\\+15 MB") as e:
        check_output_dir(tmp_path / "new")
    assert isinstance(e.value, UserError) and "\n" not in str(e.value)
    assert _listing(tmp_path) == ["f"]
    monkeypatch.setenv("FEATHERWEIGHT_MIN_FREE_MB", "0")
    assert check_output_dir(tmp_path / "new") == [tmp_path / "new"]
    monkeypatch.setenv("FEATHERWEIGHT_MIN_FREE_MB", "-1")
    with pytest.raises(OutputError, match="FEATHERWEIGHT_MIN_FREE_MB='-1'"):
        check_output_dir(tmp_path / "new")
