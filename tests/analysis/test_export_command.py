"""``featherweight export``: a trial resolved through the database (checkpoint, task, recorded sizes), or --model;
one error line and exit 2 for a trial that is not there, has no checkpoint, or whose checkpoint changed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from analysis import export_commands
from analysis.views import open_store
from featherweight_core.data.encoders import build_encoder
from featherweight_core.data.loading import load_synthetic
from featherweight_core.data.tasks import get_task
from featherweight_core.export import exporter as export
from featherweight_core.export.exporter import EXPORT_META, ONNX_FILE
from featherweight_core.export.sources import load_source as _load_source
from featherweight_core.export.sources import measure_source
from featherweight_core.pipeline.checkpoint import save_checkpoint, save_compressed
from featherweight_core.pipeline.compress import QuantConfig, compress_student
from featherweight_core.pipeline.prepare import encode_split
from featherweight_core.students.models import StudentConfig, build_student
from sweep.cli import main
from tests.fakes import make_record

TASK = get_task("synthetic")
META = {"task": TASK.name, "task_spec": TASK.to_dict(), "data_source": "synthetic"}


@pytest.fixture(scope="module")
def sweep_db(tmp_path_factory):
    """A sweep with a distill trial (ffn, hash) and a compress trial of it saved as a sweep saves it (no task in its
    checkpoint: the parent's says), each with the sizes the trainables record."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("sweep")
    cfg = StudentConfig(
        arch="ffn", embedding="hash", emb_dim=8, num_labels=2, vocab_size=200, classifier_hidden=8
    ).resolved()
    torch.manual_seed(0)
    model = build_student(cfg).eval()
    parent = save_checkpoint(root / "d-1" / "student.pt", model, cfg, 200, META)
    data = load_synthetic(TASK, n_train=100, n_dev=20)
    enc = build_encoder("hash", 200)
    res = compress_student(
        model,
        cfg,
        None,
        QuantConfig(),
        encode_split(enc, data.train),
        {"validation": encode_split(enc, data.splits["validation"])},
        TASK,
    )
    child = save_compressed(root / "c-1" / "compressed.pt", res)
    db = root / "fw.duckdb"
    store = open_store(db)
    store.start_sweep("s", {}, "test", str(root))
    common = dict(task="synthetic", arch="ffn", embedding="hash", emb_dim=8, vocab_size=200)
    sizes = measure_source(_load_source(parent))
    store.record_trial(make_record("s", "d-1", checkpoint_path=str(parent), sizes=sizes, **common))
    csizes = {
        "params": res.sizes["params"]["total"],
        "disk_bytes": res.sizes["disk_bytes"],
        "gzip_bytes": res.sizes["gzip_bytes"],
    }
    store.record_trial(
        make_record(
            "s", "c-1", stage="compress", parent_trial_id="d-1", checkpoint_path=str(child), sizes=csizes, **common
        )
    )
    store.record_trial(make_record("s", "d-gone", checkpoint_path=str(root / "gone.pt"), **common))
    store.record_trial(make_record("s", "d-none", checkpoint_path=None, **common))
    store.record_trial(make_record("s", "d-err", status="error", error="boom", **common))
    store.start_sweep("s2", {}, "test", str(root))
    store.record_trial(make_record("s2", "d-1", checkpoint_path=str(parent), sizes=sizes, **common))
    return db, parent, child


def run_cli(argv, capsys):
    rc = main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_formats_match_the_core():
    assert export_commands.FORMATS == export.FORMATS


def test_export_a_distill_trial_as_onnx(sweep_db, tmp_path, capsys):
    db, parent, _ = sweep_db
    out = tmp_path / "art"
    rc, stdout, _ = run_cli(["export", "d-1", "--sweep", "s", "--db", str(db), "--output", str(out), "--json"], capsys)
    assert rc == 0
    rep = json.loads(stdout)
    assert rep["format"] == "onnx" and rep["source"] == str(parent) and rep["examples_checked"] == 500
    assert rep["predictions_agree"] == 1.0
    assert set(rep["recorded_size_check"]) == {"params", "disk_bytes", "gzip_bytes"}
    assert all(a == b for a, b in rep["recorded_size_check"].values())
    assert {ONNX_FILE, EXPORT_META, "encode.py"} <= {p.name for p in out.iterdir()}


def test_export_a_compress_trial_finds_its_task_through_the_parent(sweep_db, tmp_path, capsys):
    db, _, child = sweep_db
    out = tmp_path / "art"
    rc, stdout, err = run_cli(["export", "c-1", "--sweep", "s", "--db", str(db), "--output", str(out)], capsys)
    assert rc == 0, err
    assert f"exported compressed_student {child} as onnx" in stdout
    assert re.search(
        r"int8; checked on 500 dev examples \(batch size 1\): predictions differ on \d+ \(at most 0.01", stdout
    )
    assert "gzip_bytes" in stdout and "not ONNX" not in err
    assert (out / ONNX_FILE).is_file()


def test_export_a_model_path_without_a_database(sweep_db, tmp_path, capsys):
    _, parent, _ = sweep_db
    out = tmp_path / "art"
    rc, stdout, _ = run_cli(
        ["export", "--model", str(parent), "--output", str(out), "--format", "torchscript", "--json"], capsys
    )
    assert rc == 0
    rep = json.loads(stdout)
    assert rep["format"] == "torchscript" and rep["recorded_size_check"] == {} and rep["fallback_reason"] is None


@pytest.mark.parametrize(
    "argv,message",
    [
        (["d-nope", "--sweep", "s"], "trial 'd-nope' not found in sweep 's'"),
        (["d-1"], "trial 'd-1' is in several sweeps (s, s2): pass --sweep NAME"),
        (["d-gone"], "its checkpoint"),
        (["d-none"], "trial 'd-none' has no checkpoint recorded"),
        (["d-err"], "trial 'd-err' did not finish (status error)"),
        (["d-1", "--sweep", "s", "--model", "x.pt"], "give a TRIAL_ID or --model PATH (one of them)"),
        (["--sweep", "s"], "give a TRIAL_ID or --model PATH (one of them)"),
        (["d-1", "--sweep", "s", "--format", "tflite"], "invalid choice: 'tflite'"),
    ],
)
def test_bad_trial_is_one_error_line(sweep_db, tmp_path, capsys, argv, message):
    db = sweep_db[0]
    with pytest.raises(SystemExit) as e:
        raise SystemExit(main(["export", *argv, "--db", str(db), "--output", str(tmp_path / "art")]))
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "art").exists()


def test_a_checkpoint_changed_since_recorded_is_an_error(sweep_db, tmp_path, capsys):
    db, parent, _ = sweep_db
    changed = tmp_path / "student.pt"
    payload = torch.load(parent, weights_only=True)
    payload["state_dict"]["classifier.1.weight"][:, :3] = 0.0
    torch.save(payload, changed)
    store = open_store(db)
    store.start_sweep("s3", {}, "test", str(tmp_path))
    store.record_trial(
        make_record(
            "s3",
            "d-1",
            checkpoint_path=str(changed),
            sizes=measure_source(_load_source(parent)),
            task="synthetic",
            arch="ffn",
            embedding="hash",
            emb_dim=8,
            vocab_size=200,
        )
    )
    rc = main(["export", "d-1", "--sweep", "s3", "--db", str(db), "--output", str(tmp_path / "art")])
    err = capsys.readouterr().err
    assert rc == 2 and "changed since it was recorded" in err and "gzip_bytes recorded" in err
    assert not (tmp_path / "art").exists()


def test_data_moved_is_an_error_naming_the_option(tmp_path, capsys):
    """A custom task's data that is no longer where the checkpoint recorded it: --data names its new place."""
    csv = tmp_path / "mood.csv"
    csv.write_text(
        "text,label\n"
        + "".join(f"{'good day' if i % 2 else 'bad day'} {i},{'pos' if i % 2 else 'neg'}\n" for i in range(40))
    )
    from featherweight_core.data.tasks import custom_task

    task = custom_task("mood", ["text"], ["neg", "pos"])
    cfg = StudentConfig(arch="ffn", embedding="char", emb_dim=8, num_labels=2, classifier_hidden=8)
    ckpt = save_checkpoint(
        tmp_path / "s.pt",
        build_student(cfg),
        cfg,
        35,
        {"task": "mood", "task_spec": task.to_dict(), "data_source": str(tmp_path / "old.csv")},
    )
    rc = main(["export", "--model", str(ckpt), "--output", str(tmp_path / "a")])
    err = capsys.readouterr().err
    assert rc == 2 and "old.csv" in err and "--data" in err
    rc = main(["export", "--model", str(ckpt), "--output", str(tmp_path / "a"), "--data", str(csv), "--json"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["examples_checked"] >= 1
    assert Path(tmp_path / "a" / EXPORT_META).is_file()


def test_export_a_teacher_compression_trial(tmp_path, capsys):
    """A teacher_compression trial's checkpoint is its output directory (here a BERT-Vision model, k = 1)."""
    from featherweight_core.teacher.bertvision import train_bertvision
    from featherweight_core.teacher.bertvision_config import BertVisionConfig
    from featherweight_core.teacher.config import TeacherConfig
    from featherweight_core.teacher.finetune import finetune_teacher
    from featherweight_core.teacher.smallbert import SmallBertConfig, build_small_teacher

    torch.set_num_threads(1)
    data = load_synthetic(TASK, n_train=100, n_dev=20)
    tiny = SmallBertConfig(vocab_size=300, hidden=32, layers=2, heads=2, intermediate=64, max_length=64)
    init = build_small_teacher(data, tmp_path / "init", tiny)
    ft = TeacherConfig(epochs=1, batch_size=32, lr=3e-3, max_length=48, device="cpu", max_train_examples=64)
    finetune_teacher(init, data, tmp_path / "teacher", ft, progress=False, log=None)
    out = tmp_path / "t-1"
    res = train_bertvision(tmp_path / "teacher", data, out, BertVisionConfig(layers=1, epochs=1, device="cpu"))
    db = tmp_path / "fw.duckdb"
    store = open_store(db)
    store.start_sweep("s", {}, "test", str(tmp_path))
    sizes = {"params": res.params, "disk_bytes": res.disk_bytes, "gzip_bytes": res.gzip_bytes}
    store.record_trial(
        make_record(
            "s",
            "t-1",
            stage="teacher_compression",
            task="synthetic",
            arch="bertvision",
            embedding="transformer",
            emb_dim=32,
            vocab_size=None,
            checkpoint_path=str(out),
            sizes=sizes,
            teacher=str(tmp_path / "teacher"),
        )
    )
    rc, stdout, err = run_cli(["export", "t-1", "--db", str(db), "--output", str(tmp_path / "art"), "--json"], capsys)
    assert rc == 0, err
    rep = json.loads(stdout)
    assert rep["source_kind"] == "compressed_teacher" and rep["format"] == "onnx" and rep["predictions_agree"] == 1.0
    assert rep["recorded_size_check"] == {k: [v, v] for k, v in sizes.items()}
    assert "tokenizer.json" in rep["files"]
