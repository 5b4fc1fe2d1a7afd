"""The core CLI commands: `featherweight distill` end to end on the synthetic task, bad input (exit 2, one
`error:` line naming the value, nothing left in the output directory), and `featherweight analyze --json`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from featherweight_core.pipeline.checkpoint import load_checkpoint
from sweep.cli import main

BASE = ["distill", "--task", "synthetic", "--embedding", "hash", "--quiet", "--threads", "1"]


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("featherweight")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sweep.cli"]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def test_distill_end_to_end_subprocess(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [
            *_cli(),
            *BASE,
            "--arch",
            "bilstm",
            "--max-epochs",
            "2",
            "--output",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((out / "result.json").read_text())
    assert result["task"] == "synthetic"
    assert {
        "student",
        "distill",
        "best_epoch",
        "epochs",
        "metrics",
        "params",
        "disk_bytes",
        "gzip_bytes",
        "checkpoint",
    } <= set(result)
    assert result["student"]["arch"] == "bilstm" and result["student"]["embedding"] == "hash"
    assert 1 <= result["best_epoch"] <= result["epochs"] <= 2
    assert 0.5 < result["metrics"]["score"] <= 1.0
    assert result["params"]["total"] == 300_502  # thesis BiLSTM hash25 K=5000
    payload = torch.load(out / "student.pt", weights_only=True)
    assert payload["meta"]["task"] == "synthetic"
    model, cfg, meta = load_checkpoint(out / "student.pt")
    assert cfg.to_dict() == result["student"]
    ids = torch.tensor([[[1, 2, 3], [4, 5, 6]]])
    assert model(ids, torch.tensor([2])).shape == (1, 2)
    assert "best epoch" in proc.stdout  # the summary is printed; --quiet drops the per-epoch lines
    assert "epoch   1" not in proc.stderr


def test_bad_input_subprocess_exit_code(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [*_cli(), *BASE, "--alpha", "1.5", "--output", str(out)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "1.5" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not out.exists() or not any(out.iterdir())


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


BAD_DISTILL_INPUT = [
    (["--alpha", "-0.5"], "-0.5"),
    (["--alpha", "0.5"], "--teacher-logits"),
    (["--max-epochs", "0"], "--max-epochs: expected a positive integer, got '0'"),
    (["--batch-size", "0"], "--batch-size: expected a positive integer, got '0'"),
    (["--dim", "0"], "--dim: expected a positive integer, got '0'"),
    (["--vocab-size", "0"], "--vocab-size: expected a positive integer, got '0'"),
    (["--hidden", "0"], "--hidden: expected a positive integer, got '0'"),
    (["--lr", "inf"], "--lr: expected a number > 0, got 'inf'"),
    (["--weight-decay", "-1"], "--weight-decay: expected a number >= 0, got '-1'"),
    (["--seed", "-1"], "--seed: expected a seed in 0..4294967295, got '-1'"),
    (["--device", "tpu"], "--device: unknown device 'tpu'; expected cpu, cuda or cuda:N"),
    (["--lr", "-1"], "-1"),
    (["--dropout", "1.5"], "1.5"),
    (["--temperature", "0"], "temperature"),
    (["--task", "sst3"], "'sst3'"),
    (["--task", "sst2", "--data", "MISSING"], "MISSING"),
    (["--teacher-logits", "MISSING.npy", "--alpha", "0.5"], "MISSING.npy"),
    (["--embedding", "bpe", "--bpemb-dir", "EMPTY", "--vocab-size", "1000"], "en.wiki.bpe.vs1000.model"),
    (["--device", "cuda:7"], "cuda:7"),
    (["--teacher", "MISSING", "--teacher-logits", "MISSING.npy"], "not both"),
    (["--bootstrap", "MISSING.parquet"], "--teacher"),
]


def _core_parser():
    """The core's command modules under a bare parser: tests the commands' own errors without sweep/cli.py."""
    import argparse
    import importlib

    parser = argparse.ArgumentParser(prog="featherweight")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("distill", "analyze", "compress", "teacher", "augment"):
        importlib.import_module(f"featherweight_core.cli.{name}").add_parser(sub)
    return parser


@pytest.mark.parametrize(("extra", "expect"), BAD_DISTILL_INPUT)
def test_bad_input_is_a_one_line_user_error(extra, expect, tmp_path, capsys):
    """Every bad-input case raises a featherweight_core.errors.UserError: what the command line prints as one
    ``error:`` line with exit status 2 (anything else shows a traceback, as a bug) - or, for an option's value
    out of its range, is refused while parsing, with one such line."""
    from featherweight_core.errors import UserError

    if extra[:1] == ["--device"] and extra[1].startswith("cuda") and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    extra = [x.replace("MISSING", str(tmp_path / "missing")).replace("EMPTY", str(tmp_path)) for x in extra]
    expect = expect.replace("MISSING", str(tmp_path / "missing"))
    out = tmp_path / "run"
    try:
        args = _core_parser().parse_args(
            [*BASE, "--max-epochs", "1", "--output", str(out), "--cache-dir", str(tmp_path / "cache"), *extra]
        )
    except SystemExit as exc:  # the option's argparse type refused the value
        err = capsys.readouterr().err
        assert exc.code == 2 and err.count("\n") == 1 and err.startswith("error: ") and expect in err, err
        return
    with pytest.raises(UserError) as e:
        args.func(args)
    assert "\n" not in str(e.value).strip() and expect in str(e.value)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(("flag", "value"), [("--arch", "gru"), ("--embedding", "word2vec"), ("--optimizer", "lion")])
def test_unknown_choice_exits_2_listing_the_vocabulary(flag, value, capsys):
    from featherweight_core import vocab

    with pytest.raises(SystemExit) as exc:
        _core_parser().parse_args([*BASE, flag, value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"invalid choice: '{value}'" in err
    allowed = {"--arch": vocab.ARCHS, "--embedding": vocab.EMBEDDINGS, "--optimizer": vocab.OPTIMIZERS}[flag]
    assert all(f"'{c}'" in err for c in allowed)


@pytest.mark.parametrize(("extra", "expect"), BAD_DISTILL_INPUT)
def test_bad_input_one_line_error(extra, expect, tmp_path, capsys):
    if extra[:1] == ["--device"] and extra[1].startswith("cuda") and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    extra = [x.replace("MISSING", str(tmp_path / "missing")).replace("EMPTY", str(tmp_path)) for x in extra]
    expect = expect.replace("MISSING", str(tmp_path / "missing"))
    out = tmp_path / "run"
    # later flags win in argparse, so --task/--embedding overrides in `extra` replace the BASE ones
    try:
        rc = main([*BASE, "--max-epochs", "1", "--output", str(out), "--cache-dir", str(tmp_path / "cache"), *extra])
    except SystemExit as exc:  # refused while parsing the options
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [line for line in err.strip().splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expect in lines[0]
    assert not out.exists() or not any(out.iterdir())


def test_custom_task_bad_header_and_label(tmp_path, capsys):
    args = [
        "distill",
        "--task",
        "reviews",
        "--text-columns",
        "text",
        "--labels",
        "bad,good",
        "--embedding",
        "char",
        "--dim",
        "8",
        "--arch",
        "ffn",
        "--max-epochs",
        "1",
        "--quiet",
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    bad_header = _write(tmp_path / "h.tsv", "sentence\tlabel\nhi\tgood\n")
    assert main([*args, "--data", str(bad_header)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad_header}:1") and "'text'" in err
    bad_label = _write(tmp_path / "l.tsv", "text\tlabel\nhi\tgood\nho\tmeh\nha\tmeh\n")
    assert main([*args, "--data", str(bad_label)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {bad_label}:3") and "'meh'" in err
    assert main([*args[:2], "reviews", "--data", str(bad_label)]) == 2  # custom task without --text-columns
    assert "--text-columns" in capsys.readouterr().err


def test_custom_task_csv_runs(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = [f"{'great fun' if y else 'dull mess'} {rng.integers(100)},{y}" for y in rng.integers(0, 2, 120)]
    data = _write(tmp_path / "reviews.csv", "text,label\n" + "\n".join(rows) + "\n")
    out = tmp_path / "run"
    rc = main(
        [
            "distill",
            "--task",
            "reviews",
            "--text-columns",
            "text",
            "--labels",
            "neg,pos",
            "--data",
            str(data),
            "--embedding",
            "char",
            "--dim",
            "8",
            "--arch",
            "ffn",
            "--max-epochs",
            "2",
            "--lr",
            "0.01",
            "--output",
            str(out),
            "--json",
            "--cache-dir",
            str(tmp_path / "c"),
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["task"] == "reviews" and "f1" in summary["metrics"]
    assert sorted(p.name for p in out.iterdir()) == ["result.json", "student.pt"]


def test_analyze_json(capsys):
    assert main(["analyze", "--task", "sst2", "--arch", "bilstm", "--embedding", "bpe", "--dim", "25", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"task", "config", "params", "disk_bytes", "gzip_bytes"}
    assert set(report["params"]) == {"total", "embedding", "encoder", "classifier", "nonzero"}
    assert report["task"] == "sst2" and report["config"]["vocab_size"] == 5000
    assert report["params"]["total"] == 398_027 and report["gzip_bytes"] < report["disk_bytes"]
    assert (
        main(
            [
                "analyze",
                "--task",
                "qqp",
                "--arch",
                "ffn",
                "--embedding",
                "hash",
                "--dim",
                "25",
                "--vocab-size",
                "2500",
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["config"]["pair"] and report["params"]["classifier"] == 100 * 200 + 200 + 200 * 2 + 2


def test_analyze_text_output(capsys):
    assert main(["analyze", "--task", "mnli", "--arch", "rnn", "--embedding", "char", "--dim", "100"]) == 0
    out = capsys.readouterr().out
    assert "params total" in out and "gzip bytes" in out


@pytest.mark.skipif(shutil.which("true") is None, reason="needs a POSIX userland")
def test_help_is_fast_and_lists_commands():
    proc = subprocess.run([*_cli(), "--help"], capture_output=True, text=True, env=_env(), timeout=60)
    assert proc.returncode == 0 and "distill" in proc.stdout and "analyze" in proc.stdout


@pytest.mark.parametrize("command", [["distill", "--task", "synthetic"], ["compress", "x.pt"]])
def test_threads_must_be_positive(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--threads", "0"])
    assert exc.value.code == 2
    assert "argument --threads: expected a positive integer, got '0'" in capsys.readouterr().err


# ---------------------------------------------------------------- custom tasks travel with the checkpoint


def _mood_csv(path: Path) -> Path:
    words = ("good fine", "meh so so", "bad awful")
    rows = "".join(f"{i},{words[i % 3]} {i},{('pos', 'neu', 'neg')[i % 3]}\n" for i in range(90))
    path.write_bytes(("id,text,label\n" + rows).encode() + b"91,caf\xe9,pos\n")  # a latin-1 byte: not UTF-8
    return path


MOOD = [
    "--task",
    "mood",
    "--text-columns",
    "text",
    "--labels",
    "neg,neu,pos",
    "--metric",
    "macro_f1",
    "--test-fraction",
    "0.2",
    "--dev-fraction",
    "0.2",
    "--split-seed",
    "1",
]


@pytest.fixture(scope="module")
def mood_student(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mood")
    data = _mood_csv(tmp / "mood.csv")
    out = tmp / "run"
    rc = main(
        [
            "distill",
            *MOOD,
            "--data",
            str(data),
            "--embedding",
            "char",
            "--dim",
            "8",
            "--arch",
            "ffn",
            "--max-epochs",
            "2",
            "--lr",
            "0.01",
            "--output",
            str(out),
            "--quiet",
            "--cache-dir",
            str(tmp / "c"),
        ]
    )
    assert rc == 0
    return tmp, data, out / "student.pt"


def test_distill_custom_task_reports_test_and_macro_f1(mood_student, capsys):
    tmp, data, ckpt = mood_student
    result = json.loads((ckpt.parent / "result.json").read_text())
    assert result["task_spec"]["labels"] == ["neg", "neu", "pos"] and result["task_spec"]["metric"] == "macro_f1"
    assert set(result["test_metrics"]) == set(result["metrics"]) == {"accuracy", "macro_f1", "score"}
    assert set(result["class_metrics"]) == {"validation", "test"}
    assert result["split_info"]["test_fraction"] == 0.2 and result["split_info"]["seed"] == 1
    rc = main(
        [
            "distill",
            *MOOD,
            "--data",
            str(data),
            "--embedding",
            "char",
            "--dim",
            "8",
            "--arch",
            "ffn",
            "--max-epochs",
            "1",
            "--cache-dir",
            str(tmp / "c"),
            "--quiet",
        ]
    )
    assert rc == 0
    out = capsys.readouterr()
    assert "macro_f1" in out.out and "test (best epoch)" in out.out
    assert "undecodable bytes" in out.err  # the latin-1 byte in the last row is reported


def test_compress_custom_checkpoint_needs_no_task_options(mood_student, tmp_path):
    tmp, _, ckpt = mood_student
    proc = subprocess.run(
        [
            *_cli(),
            "compress",
            str(ckpt),
            "--prune",
            "magnitude",
            "--json",
            "--threads",
            "1",
            "--cache-dir",
            str(tmp / "c"),
            "--output",
            str(tmp_path / "pq"),
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout.strip().splitlines()[-1])
    assert s["task"] == "mood" and s["task_spec"]["labels"] == ["neg", "neu", "pos"]
    assert set(s["test_metrics"]) == set(s["metrics"]) == {"accuracy", "macro_f1", "score"}
    assert set(s["class_metrics"]) == {"validation", "test"} and s["float"]["test_metrics"]
    assert main(["analyze", "--checkpoint", str(ckpt), "--json"]) == 0


@pytest.mark.parametrize(
    "extra, expect",
    [
        (["--labels", "neg,pos,neu"], "labels ['neg', 'neu', 'pos'] vs ['neg', 'pos', 'neu']"),
        (["--metric", "accuracy"], "metric 'macro_f1' vs 'accuracy'"),
        (["--text-columns", "id"], "text_columns ['text'] vs ['id']"),
        (["--task", "other"], "name 'mood' vs 'other'"),
        (["--split-seed", "2"], "split"),
        (["--data", "OTHER"], "the data differs from the data checkpoint"),
    ],
)
def test_compress_mismatching_task_is_one_error_line(mood_student, extra, expect, capsys):
    tmp, data, ckpt = mood_student
    if "OTHER" in extra:
        other = tmp / "other.csv"
        other.write_bytes(data.read_bytes().replace(b"good fine 3", b"good 3"))
        extra = ["--data", str(other)]
    rc = main(["compress", str(ckpt), "--prune", "magnitude", "--cache-dir", str(tmp / "c"), *extra])
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if not line.startswith(("warning:", "data:", "all:"))]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert expect in lines[0]


def test_custom_task_flag_errors(tmp_path, capsys):
    args = [
        "analyze",
        "--arch",
        "ffn",
        "--embedding",
        "char",
        "--dim",
        "8",
        "--task",
        "mood",
        "--text-columns",
        "text",
        "--labels",
        "a,b,c",
    ]
    assert main([*args, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["num_labels"] == 3
    for extra, expect in (
        (["--dev-fraction", "1.5"], "error: --dev-fraction: expected a number in (0, 1)"),
        (["--encoding", "utf-9"], "error: --encoding: unknown text encoding"),
        (["--metric", "f1"], "error: --metric: 'f1' (of the positive class) needs a binary"),
    ):
        assert main([*args, *extra]) == 2
        assert capsys.readouterr().err.strip().startswith(expect)


def _all_core_actions():
    """(command, action) for every option of every single-run command (subcommands included)."""
    import argparse
    import importlib

    parser = argparse.ArgumentParser(prog="featherweight")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("distill", "analyze", "compress", "teacher", "augment", "theseus", "bertvision"):
        importlib.import_module(f"featherweight_core.cli.{name}").add_parser(sub)
    todo = [("featherweight", parser)]
    while todo:
        prog, p = todo.pop()
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.items())
            elif action.option_strings:
                yield prog, action


def test_every_numeric_option_rejects_non_finite_and_out_of_range_values():
    """No numeric option of a single-run command takes a bare int/float: each has a type that refuses NaN, inf and
    values outside its range, with a message naming the value."""
    import argparse

    bare = [(cmd, a.option_strings[-1]) for cmd, a in _all_core_actions() if a.type in (int, float)]
    assert not bare, f"options without a range-checked type: {bare}"
    numeric = [(cmd, a) for cmd, a in _all_core_actions() if getattr(a.type, "__name__", "") in ("int", "float")]
    assert len(numeric) > 60
    for cmd, action in numeric:
        for value in ("nan", "inf", "-inf"):
            with pytest.raises(argparse.ArgumentTypeError, match=f"got '{value}'"):
                action.type(value)
        if action.default is not None and not isinstance(action.default, str):
            assert action.type(str(action.default)) == action.default, (cmd, action.option_strings)


def test_seeds_are_numpys_range():
    from featherweight_core.cli.common import seed_int

    assert seed_int("0") == 0 and seed_int(str(2**32 - 1)) == 2**32 - 1
    for bad in ("-1", str(2**32), "1.5"):
        with pytest.raises(Exception, match="expected a seed in 0..4294967295"):
            seed_int(bad)


def test_device_option_accepts_what_the_code_runs_on():
    import argparse

    from featherweight_core.cli.common import device_arg, device_or_auto

    assert device_arg("cpu") == "cpu" and device_or_auto("auto") == "auto" and device_arg("CPU") == "cpu"
    for bad in ("tpu", "mps", "cuda:", "cuda:x", "gpu", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="unknown device"):
            device_arg(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="unknown device 'auto'"):
        device_arg("auto")  # distill's students run where they are told
    if not torch.cuda.is_available():
        for value in ("cuda", "cuda:0"):
            with pytest.raises(argparse.ArgumentTypeError, match="CUDA is not available on this machine; use cpu"):
                device_arg(value)
    else:
        assert device_arg("cuda:0") == "cuda:0"
        with pytest.raises(argparse.ArgumentTypeError, match="CUDA device"):
            device_arg(f"cuda:{torch.cuda.device_count()}")
