"""What an earlier release wrote still loads with the current code.

The code of a fixed earlier commit (:data:`MADE_BEFORE`, taken from this checkout's git history) makes, offline on the
built-in synthetic task: a whole-study sweep (its teacher stage fine-tunes a small teacher directory, then bootstrap
data, soft targets, the distillation and the compression stage) with its database and storage, a student checkpoint
(``featherweight distill``) and a compressed one (``featherweight compress``), an augmented-data file labelled by the
sweep's teacher (``featherweight augment``), and exports (``featherweight export``: ONNX of the float student,
TorchScript of the int8 one). The current code then reads them: the sweep's rows and stages, ``sweep resume`` with
nothing left to do, exports of the old trials against their recorded sizes, the sweep grown by a seed (only the new
seed trains, no study stage runs again), its report; the old student compressed again; the old teacher's logits; a
student distilled from the old teacher with the old augmented file; the old exports checked against their models.
Where it is cheap, what the current code computes is compared with what the old code computed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from featherweight_core.export.exporter import verify_artefact

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# The last release layout the tests keep loading: the last commit before the packages were reorganised (modules moved
# into subpackages, sweep stages into sweep/stages). Its code writes the artefacts these tests read.
MADE_BEFORE = "2ba2f2c870faa2df10bce588ed65480710aa1a03"

SWEEP = "before"
CLI_TIMEOUT = 300
# the sweep's trial rows and study stages, one JSON object per row: what the current code must read back unchanged
STATE_SQL = f"""
SELECT 'trial' AS kind, to_json(t)::VARCHAR AS row FROM (
    SELECT trial_id, stage, status, arch, embedding, seed, score, params, disk_bytes, gzip_bytes, checkpoint_path,
        finished_at
    FROM trial_results WHERE sweep = '{SWEEP}') t
UNION ALL
SELECT 'stage', to_json(s)::VARCHAR FROM (
    SELECT task, stage, fingerprint, status, output, attempts, finished_at FROM stages WHERE sweep = '{SWEEP}') s
ORDER BY kind, row
"""


def _env(code: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FEATHERWEIGHT_FAULT", "FEATHERWEIGHT_DB"))}
    return {
        **env,
        "PYTHONPATH": str(code),
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def _cli(code: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``featherweight ARGS`` with the code in ``code`` (cwd is never a checkout: ``python -m`` puts it first on the
    path)."""
    return subprocess.run(
        [sys.executable, "-m", "sweep.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_env(code),
        timeout=CLI_TIMEOUT,
    )


def _ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, f"{r.args[3:]} exited {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    return r


def _json(r: subprocess.CompletedProcess):
    return json.loads(_ok(r).stdout.strip().splitlines()[-1])


def _new(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return _cli(ROOT, *args, cwd=cwd)


def _sweep_state(code: Path, db: Path, cwd: Path) -> dict[str, list[dict]]:
    """``{"trial": [rows], "stage": [rows]}`` of the sweep, read with ``featherweight query`` (read-only)."""
    state: dict[str, list[dict]] = {"trial": [], "stage": []}
    for r in _json(_cli(code, "query", "--db", db, "--format", "json", STATE_SQL, cwd=cwd)):
        state[r["kind"]].append(json.loads(r["row"]))
    return state


def _sweep_spec(work: Path, seeds: list[int], path: Path) -> Path:
    raw = {
        "name": SWEEP,
        "storage": str(work / "runs"),
        "cache_dir": str(work / "sweep-cache"),
        "tasks": {
            "synthetic": {
                "data_options": {"n_train": 200, "n_dev": 50},
                "teacher": {"model": "small", "finetune": {"epochs": 1}},
                "bootstrap": {"n": 2, "k": 4, "shards": 1},
            }
        },
        "grid": {
            "archs": ["ffn"],
            "embeddings": ["hash"],
            "dims": [8],
            "vocab_sizes": [100],
            "alphas": [0.5],
            "bootstrap": [True],
            "seeds": seeds,
        },
        "training": {"max_epochs": 1, "patience": 1, "optimizer": "adam", "lr": 0.003},
        "compress": {
            "parents": {"top_k": 1},
            "search": {"num_samples": 1, "seed": 0},
            "quantize": {"embedding": True, "encoder": True, "classifier": True},
        },
        "resources": {"cpus_per_trial": 1, "num_cpus": 2},
    }
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def old_code(tmp_path_factory) -> Path:
    """The tree of :data:`MADE_BEFORE`, extracted from the git history of this checkout."""
    reason = f"needs the git history with commit {MADE_BEFORE} (a full clone, not a shallow one or an sdist)"
    git = shutil.which("git")
    if git is None:
        pytest.skip(f"{reason}: git is not installed")
    found = subprocess.run([git, "-C", str(ROOT), "cat-file", "-e", f"{MADE_BEFORE}^{{commit}}"], capture_output=True)
    if found.returncode != 0:
        pytest.skip(reason)
    archive = subprocess.run([git, "-C", str(ROOT), "archive", MADE_BEFORE], capture_output=True, check=True)
    dest = tmp_path_factory.mktemp("made-before-code")
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python >= 3.10.12 / 3.11.4
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, **safe)
    probe = subprocess.run(
        [sys.executable, "-c", "import featherweight_core, sweep.cli; print(featherweight_core.__file__)"],
        capture_output=True,
        text=True,
        cwd=dest.parent,
        env=_env(dest),
        check=True,
    )
    assert Path(probe.stdout.strip()).is_relative_to(dest), probe.stdout  # the old code, not an installed one
    return dest


@pytest.fixture(scope="module")
def made_before(old_code, tmp_path_factory) -> SimpleNamespace:
    """Every artefact, made by the old code. The sweep runs in the background while the single commands run."""
    work = tmp_path_factory.mktemp("made-before")
    cache = work / "cache"
    spec = _sweep_spec(work, [0], work / "sweep.yaml")
    log = (work / "sweep.log").open("w")
    sweep = subprocess.Popen(
        [sys.executable, "-m", "sweep.cli", "sweep", "run", str(spec)],
        cwd=work,
        env=_env(old_code),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        old = SimpleNamespace(work=work, db=work / "runs" / "featherweight.duckdb")
        student = work / "student"
        old.distill = _json(
            _cli(
                old_code,
                *("distill", "--task", "synthetic", "--embedding", "hash", "--dim", "16", "--vocab-size", "500"),
                *("--hidden", "16", "--classifier-hidden", "16", "--max-epochs", "1", "--optimizer", "adam"),
                *("--lr", "0.003", "--threads", "1", "--cache-dir", cache, "--output", student, "--json"),
                cwd=work,
            )
        )
        old.student = student / "student.pt"
        compressed = work / "compressed"
        old.compress = _json(
            _cli(old_code, "compress", old.student, "--quantize", "all", "--output", compressed, "--json", cwd=work)
        )
        old.compressed = compressed / "compressed.pt"
        old.exports = {}
        for name, model in (("student", old.student), ("compressed", old.compressed)):
            artefact = work / f"export-{name}"
            report = _json(_cli(old_code, "export", "--model", model, "--output", artefact, "--json", cwd=work))
            old.exports[name] = (artefact, model, report)

        rc = sweep.wait(timeout=CLI_TIMEOUT)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sweep.pid, signal.SIGKILL)  # what the driver's Ray left, or the driver itself after a failure
        sweep.wait()
        log.close()
    out = (work / "sweep.log").read_text()
    assert rc == 0, out[-4000:]
    assert "sweep before finished" in out, out[-4000:]

    # the teacher directory the sweep's teacher stage fine-tuned: its logits and the augmented data it labels
    (old.teacher,) = (work / "runs" / SWEEP / "assets" / "synthetic").glob("teacher-*")
    old.teacher_logits = work / "teacher-logits.parquet"
    old.logits_report = _json(
        _cli(
            old_code,
            *("teacher", "logits", "--teacher", old.teacher, "--task", "synthetic", "--split", "validation"),
            *("--output", old.teacher_logits, "--cache-dir", cache, "--cpu", "--no-progress", "--json"),
            cwd=work,
        )
    )
    old.augmented = work / "augmented.parquet"
    old.augment = _json(
        _cli(
            old_code,
            *("augment", "--task", "synthetic", "--output", old.augmented, "-n", "2", "--max-examples", "100"),
            *("--teacher", old.teacher, "--cache-dir", cache, "--no-progress", "--json"),
            cwd=work,
        )
    )

    # the sweep's rows and stages as the old code reads them, before the current code opens the database
    old.state = _sweep_state(old_code, old.db, work)
    old.rows = old.state["trial"]
    assert {(r["stage"], r["status"]) for r in old.rows} == {("distill", "finished"), ("compress", "finished")}
    assert {r["stage"] for r in old.state["stage"]} == {"teacher", "bootstrap", "soft_targets"}
    old.distill_trial = next(r for r in old.rows if r["stage"] == "distill")
    old.compress_trial = next(r for r in old.rows if r["stage"] == "compress")
    return old


def test_sweep_database_and_storage_resume(made_before, tmp_path):
    old = made_before
    work = old.work
    # a read-only reader of a database from before the current schema is told how to upgrade it, in one line ...
    r = _new("query", "--db", old.db, "SELECT 1", cwd=tmp_path)
    assert r.returncode == 2 and "featherweight db migrate" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    # ... and once migrated, it reads the old rows unchanged
    _ok(_new("db", "migrate", "--db", old.db, cwd=tmp_path))
    assert _sweep_state(ROOT, old.db, tmp_path) == old.state

    # the spec stored in the storage, its trial ids and compression plan: nothing to do
    r = _ok(_new("sweep", "resume", SWEEP, "--storage", work / "runs", cwd=tmp_path))
    assert "nothing to do (1 distillation trials and the compression stage already finished)" in r.stderr, r.stderr

    # the old trials' checkpoints still have the sizes the database recorded, and export
    for row, source_kind in ((old.distill_trial, "student"), (old.compress_trial, "compressed_student")):
        artefact = tmp_path / row["trial_id"]
        report = _json(_new("export", row["trial_id"], "--db", old.db, "--output", artefact, "--json", cwd=tmp_path))
        assert report["source_kind"] == source_kind, report
        # ONNX (int8 ONNX for the compressed one), or TorchScript where the int8 graph's predictions differ too often
        assert report["format"] == "onnx" or (report["format"] == "torchscript" and report["fallback_reason"]), report
        assert report["predictions_agree"] == 1.0, report
        checked = report["recorded_size_check"]
        assert set(checked) == {"params", "disk_bytes", "gzip_bytes"}, report
        assert all(recorded == now for recorded, now in checked.values()), report
        assert checked["gzip_bytes"][0] == row["gzip_bytes"]

    # the grid grown by a seed: the old rows are found by their trial ids, the study stages are not redone
    spec = _sweep_spec(work, [0, 1], tmp_path / "sweep.yaml")
    r = _ok(_new("sweep", "run", spec, cwd=tmp_path))
    assert "2 distillation trials, 1 already finished" in r.stderr, r.stderr
    for stage in ("teacher", "bootstrap", "soft_targets"):
        assert f"{stage} synthetic: done already" in r.stderr, r.stderr
    assert re.search(r"1 distillation \+ [01] compression trials run, 0 failed", r.stderr), r.stderr
    state = _sweep_state(ROOT, old.db, tmp_path)
    assert state["stage"] == old.state["stage"]  # finished_at and attempts too: not run again
    rows = state["trial"]
    assert [r for r in rows if r["trial_id"] in {o["trial_id"] for o in old.rows}] == old.rows
    added = [(r["stage"], r["seed"], r["status"]) for r in rows if r not in old.rows]
    assert [a for a in added if a[0] == "distill"] == [("distill", 1, "finished")]  # only the new seed trained
    assert len(rows) == len({r["trial_id"] for r in rows}) in (3, 4)

    report = _ok(_new("report", SWEEP, "--db", old.db, "--output", tmp_path / "report", cwd=tmp_path))
    assert "chart synthetic:" in report.stdout, report.stdout
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert markdown.startswith(f"# Featherweight sweep report: {SWEEP}") and "## Task synthetic" in markdown


def test_student_checkpoint_loads(made_before, tmp_path):
    old = made_before
    new = _json(_new("compress", old.student, "--quantize", "all", "--json", cwd=tmp_path))
    # the float student evaluates and measures as it did when it was trained, and quantizes as it did
    assert new["float"]["metrics"] == old.distill["metrics"]
    assert new["float"]["sizes"]["params"] == old.distill["params"]
    assert new["float"]["sizes"]["gzip_bytes"] == old.distill["gzip_bytes"]
    for key in ("task", "student", "quant_label", "metrics", "sizes", "float"):
        assert new[key] == old.compress[key], key


def test_teacher_directory_and_augmented_file_load(made_before, tmp_path):
    old = made_before
    cache = tmp_path / "cache"  # not the old cache: the teacher itself must be loaded and run
    logits = tmp_path / "teacher-logits.parquet"
    report = _json(
        _new(
            *("teacher", "logits", "--teacher", old.teacher, "--task", "synthetic", "--split", "validation"),
            *("--output", logits, "--cache-dir", cache, "--cpu", "--no-progress", "--json"),
            cwd=tmp_path,
        )
    )
    (result,) = report["results"]
    (old_result,) = old.logits_report["results"]
    assert result["computed"] and result["rows"] == old_result["rows"] == 500
    assert result["accuracy"] == old_result["accuracy"]
    new_frame, old_frame = pd.read_parquet(logits), pd.read_parquet(old.teacher_logits)
    assert list(new_frame.key) == list(old_frame.key)
    np.testing.assert_allclose(np.stack(new_frame.logits), np.stack(old_frame.logits), atol=1e-5)

    # the old teacher labels the old augmented file; the student trains on both
    summary = _json(
        _new(
            *("distill", "--task", "synthetic", "--arch", "ffn", "--embedding", "hash", "--dim", "8"),
            *("--vocab-size", "100", "--alpha", "0.5", "--teacher", old.teacher, "--bootstrap", old.augmented),
            *("--cache-dir", cache, "--max-epochs", "1", "--threads", "1", "--json"),
            cwd=tmp_path,
        )
    )
    assert old.augment["kept"] > 0
    assert summary["bootstrap"] == str(old.augmented)
    assert summary["train_examples"] == 3000 + old.augment["kept"]  # the synthetic task's train split + the file
    assert 0 <= summary["metrics"]["score"] <= 1


def test_exports_check_against_their_models(made_before):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as `featherweight export` checks: one example at a time for the int8 model
    try:
        _check_exports(made_before)
    finally:
        torch.set_num_threads(threads)


def _check_exports(made_before) -> None:
    for name, fmt in (("student", "onnx"), ("compressed", "torchscript")):
        artefact, model, report = made_before.exports[name]
        meta = json.loads((artefact / "featherweight_export.json").read_text())
        assert meta["format"] == report["format"] == fmt, name
        checked, diff = verify_artefact(artefact, model)
        assert checked == report["examples_checked"] == 500, name
        assert diff <= 1e-3, name
