"""Input files that exist but cannot be read are one InputFileError naming the file, for every loader of data,
teacher logits, student checkpoints and augmented data.

Permission denied is tested for real: the loaders run as a user the file's mode 000 applies to - this process when
it is not root, else a forked child that drops to the ``nobody`` user (root reads any file whatever its mode).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featherweight_core.data.loading import load_task_data
from featherweight_core.data.tasks import task_from_options
from featherweight_core.errors import InputFileError, UserError
from featherweight_core.pipeline.checkpoint import load_checkpoint
from featherweight_core.pipeline.prepare import load_teacher_logits
from featherweight_core.readable import check_readable, read_input_bytes
from featherweight_core.teacher.augment import META_KEY, check_augmented

TASK = task_from_options("mine", {"text_columns": ["text"], "labels": ["neg", "pos"]})
CSV = "text,label\n" + "good film,pos\nbad film,neg\n" * 10


def _as_unprivileged(fn: Callable[[], object]) -> dict:
    """What ``fn()`` raised, run as a user that file modes apply to: {"type", "user_error", "message"} or {}."""

    def call() -> dict:
        try:
            fn()
        except Exception as e:
            return {"type": type(e).__name__, "user_error": isinstance(e, InputFileError), "message": str(e)}
        return {}

    if os.geteuid() != 0:
        return call()
    import pwd

    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("running as root, and there is no 'nobody' user to read as")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to nobody, call, report, exit without running pytest's teardown
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            with os.fdopen(w, "w") as out:
                out.write(json.dumps(call()))
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as f:
        reply = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and reply, "the unprivileged child failed"
    return json.loads(reply)


@pytest.fixture
def shared_dir():
    """A directory every user may enter (pytest's tmp_path is private to root when the tests run as root)."""
    d = Path(tempfile.mkdtemp(prefix="fw-readable-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _locked(path: Path) -> Path:
    path.chmod(0)
    return path


def _student(d: Path) -> Path:
    from featherweight_core.pipeline.checkpoint import save_checkpoint
    from featherweight_core.students.models import StudentConfig, build_student

    cfg = StudentConfig(arch="ffn", embedding="hash", emb_dim=4, num_labels=2, vocab_size=20).resolved()
    return save_checkpoint(d / "student.pt", build_student(cfg, 20), cfg, 20)


def test_a_data_file_without_read_permission(shared_dir):
    path = shared_dir / "d.csv"
    path.write_text(CSV)
    _locked(path)
    got = _as_unprivileged(lambda: load_task_data(TASK, path))
    assert got["user_error"], got
    assert got["message"] == f"{path}: cannot read the data file (Permission denied)"


def test_a_train_file_of_a_data_directory_without_read_permission(shared_dir):
    (shared_dir / "dev.csv").write_text(CSV)
    (shared_dir / "dev.csv").chmod(0o644)
    train = shared_dir / "train.csv"
    train.write_text(CSV)
    _locked(train)
    got = _as_unprivileged(lambda: load_task_data(TASK, shared_dir))
    assert got["user_error"] and got["message"].startswith(f"{train}: cannot read the data file"), got


@pytest.mark.parametrize("suffix", [".npy", ".parquet"])
def test_a_teacher_logits_file_without_read_permission(shared_dir, suffix):
    path = shared_dir / f"logits{suffix}"
    if suffix == ".npy":
        with path.open("wb") as f:
            np.save(f, np.zeros((4, 2), dtype=np.float32))
    else:
        pq.write_table(pa.table({"key": ["a"], "logits": [[0.0, 1.0]]}), path)
    _locked(path)
    got = _as_unprivileged(lambda: load_teacher_logits(path))
    assert got["user_error"] and got["message"].startswith(f"{path}: cannot read the teacher logits file"), got


def test_a_checkpoint_without_read_permission(shared_dir):
    path = _locked(_student(shared_dir))
    got = _as_unprivileged(lambda: load_checkpoint(path))
    assert got["user_error"] and got["message"].startswith(f"{path}: cannot read the checkpoint"), got


def test_an_augmented_file_without_read_permission(shared_dir):
    path = shared_dir / "a.parquet"
    table = pa.table({"text": ["x"], "source_label": [0], "key": ["a"]})
    pq.write_table(table.replace_schema_metadata({META_KEY: json.dumps({"text_fields": ["text"]})}), path)
    _locked(path)
    got = _as_unprivileged(lambda: check_augmented(path))
    assert got["user_error"] and got["message"].startswith(f"{path}: cannot read the augmented data file"), got


def test_check_readable_refuses_directories_and_pipes(tmp_path):
    with pytest.raises(InputFileError, match="a directory, not a data file"):
        check_readable(tmp_path, "data file")
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match="not a regular file"):  # and does not block opening it
        check_readable(fifo, "data file")
    with pytest.raises(UserError, match="a directory"):
        read_input_bytes(tmp_path, "data file")
    with pytest.raises(FileNotFoundError):  # absent: each loader words "not found" itself
        check_readable(tmp_path / "absent", "data file")


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="no /proc/self/mem here")
def test_an_io_error_on_the_first_read_names_the_file(tmp_path):
    """/proc/self/mem opens but cannot be read from its start (EIO), whoever reads it: every loader says so."""
    mem = Path("/proc/self/mem")
    for path_name, load, what in (
        ("d.csv", lambda p: load_task_data(TASK, p), "data file"),
        ("l.npy", load_teacher_logits, "teacher logits file"),
        ("s.pt", load_checkpoint, "checkpoint"),
        ("a.parquet", check_augmented, "augmented data file"),
    ):
        link = tmp_path / path_name
        link.symlink_to(mem)
        with pytest.raises(InputFileError, match=rf"^{link}: cannot read the {what} \(Input/output error\)$"):
            load(link)
