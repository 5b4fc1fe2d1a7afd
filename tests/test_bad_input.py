"""A corpus of bad inputs: every one must fail as exactly one ``error:`` line naming the bad file or value, exit
status 2, and leave nothing behind in the directory the command ran in.

Each case runs the command line in a process of its own, in a fresh directory holding only the files the case
needs; the test compares that directory's full listing (hidden temp files included) before and after. Starting a
Python that imports torch takes seconds, so the cases run in processes forked from one warm ``sweep.cli`` process
(``_Runner``): each is still its own process with its own exit status and stderr, run through
``sweep.cli.main`` as ``python -m sweep.cli`` runs it. A few cases (``REAL_SUBPROCESS``) also run as a plain
``python -m sweep.cli`` subprocess, to check that the two agree. One tiny student is trained once per module for
the cases that corrupt a checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# The runner: imports the CLI and the heavy libraries once, then forks one child per request (a JSON line on stdin:
# argv, cwd, env, where to write stdout/stderr) and answers with the child's exit status (a JSON line on stdout).
RUNNER = r"""
import json, os, sys, traceback
import sweep.cli
import torch, pyarrow.parquet, yaml  # noqa: F401  (warm: the children need them)
import featherweight_core.pipeline.checkpoint, featherweight_core.pipeline.prepare, featherweight_core.pipeline.run  # noqa: F401
import featherweight_core.teacher.augment, featherweight_core.teacher.softtargets, featherweight_core.pipeline.compress  # noqa: F401
import sweep.spec  # noqa: F401
out = sys.stdout
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        try:
            os.chdir(req["cwd"])
            os.environ.update(req["env"])
            for fd, name in ((1, req["stdout"]), (2, req["stderr"])):
                f = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(f, fd)
                os.close(f)
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", closefd=False)
            try:
                rc = sweep.cli.main(req["argv"])
            except SystemExit as e:
                if isinstance(e.code, str):
                    print(e.code, file=sys.stderr)
                rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:
                traceback.print_exc()
                rc = 1
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc if isinstance(rc, int) else 1)
    _, status = os.waitpid(pid, 0)
    out.write(json.dumps({"rc": os.waitstatus_to_exitcode(status)}) + "\n")
    out.flush()
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env.pop("FEATHERWEIGHT_MIN_FREE_MB", None)
    return env


class _Runner:
    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RUNNER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_env(),
            cwd=scratch,
            text=True,
        )
        self.n = 0

    def run(self, argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        self.n += 1
        so, se = self.scratch / f"{self.n}.out", self.scratch / f"{self.n}.err"
        req = {"argv": argv, "cwd": str(cwd), "env": env or {}, "stdout": str(so), "stderr": str(se)}
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        assert reply, "the runner process died"
        return json.loads(reply)["rc"], so.read_text(), se.read_text()

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    r = _Runner(tmp_path_factory.mktemp("runner"))
    yield r
    r.close()


@pytest.fixture(scope="module")
def assets(runner, tmp_path_factory) -> dict[str, Path]:
    """Built once: a tiny trained student, a teacher directory whose files pass the header checks, an augmented
    file's worth of Parquet without featherweight metadata."""
    import torch
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("assets")
    rc, _, err = runner.run(
        [
            "distill",
            "--task",
            "synthetic",
            "--data",
            "synthetic",
            "--arch",
            "ffn",
            "--embedding",
            "hash",
            "--dim",
            "8",
            "--vocab-size",
            "100",
            "--max-epochs",
            "1",
            "--output",
            "student",
            "--cache-dir",
            "cache",
            "--quiet",
        ],
        d,
    )
    assert rc == 0, err
    teacher = d / "teacher"
    teacher.mkdir()
    (teacher / "config.json").write_text(json.dumps({"model_type": "bert"}))
    save_file({"w": torch.zeros(2)}, str(teacher / "model.safetensors"))
    from analysis.views import open_store
    from tests.fakes import make_record

    store = open_store(d / "good.duckdb")
    store.start_sweep("s", {}, "test", str(d / "runs" / "s"))
    store.record_trial(make_record(sweep="s", trial_id="d-1"))
    store.finish_sweep("s", "finished")
    return {"student": d / "student" / "student.pt", "teacher": teacher, "db": d / "good.duckdb"}


# ----------------------------------------------------------------------------------------------------------------
# the corpus


@dataclass
class Case:
    id: str
    argv: list[str]
    names: str  # what the one error line must contain: the bad file or value
    files: dict[str, Callable[[Path, dict[str, Path]], None] | bytes | str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


def _copy(key: str, mutate: Callable[[bytes], bytes] = lambda b: b):
    def make(path: Path, assets: dict[str, Path]) -> None:
        path.write_bytes(mutate(assets[key].read_bytes()))

    return make


def _teacher(mutate: Callable[[Path], None] | None = None):
    def make(path: Path, assets: dict[str, Path]) -> None:
        shutil.copytree(assets["teacher"], path)
        if mutate:
            mutate(path)

    return make


def _parquet(metadata: dict[bytes, bytes] | None, columns: dict[str, list] | None = None):
    def make(path: Path, assets: dict[str, Path]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(columns or {"key": ["a"], "source_label": [0], "text": ["hello"]})
        pq.write_table(table.replace_schema_metadata(metadata), path)

    return make


def _torch_file(obj):
    def make(path: Path, assets: dict[str, Path]) -> None:
        import torch

        torch.save(obj, path)

    return make


def _zip_of_text(path: Path, assets: dict[str, Path]) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hello.txt", "not a checkpoint")


def _corrupt_pickle(data: bytes) -> bytes:
    """The checkpoint with the start of its pickle stream overwritten (the zip itself still reads)."""
    import io

    with zipfile.ZipFile(io.BytesIO(data)) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("data.pkl"))
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    return data[:start] + b"\x80\x02\xff\xfe\xfd" * 4 + data[start + 20 :]


def _mkdir(path: Path, assets: dict[str, Path]) -> None:
    path.mkdir()


def _at(text: str):
    """A file whose parent directories are made first (``runs/t/spec.yaml``)."""

    def make(path: Path, assets: dict[str, Path]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    return make


def _unreadable(text: str):
    """A file its owner cannot read (mode 000); root reads any file, so the case is skipped there."""

    def make(path: Path, assets: dict[str, Path]) -> None:
        if os.geteuid() == 0:
            pytest.skip("running as root, which reads a file whatever its mode")
        path.write_text(text)
        path.chmod(0)

    return make


SPEC_OK = """name: t
storage: runs/t
tasks:
  synthetic:
    data: synthetic
grid:
  archs: [ffn]
  embeddings: [hash]
  dims: [8]
  vocab_sizes: [100]
training:
  max_epochs: 1
"""

CSV_OK = "text,label\n" + "good film,pos\nbad film,neg\n" * 20
CUSTOM = ["--task", "mine", "--text-columns", "text", "--labels", "neg,pos"]
DISTILL = ["distill", "--arch", "ffn", "--embedding", "hash", "--dim", "8", "--vocab-size", "100", "--max-epochs", "1"]
DISTILL_OUT = [*DISTILL, "--output", "out", "--cache-dir", "cache"]
COMPRESS = ["compress", "student.pt", "--quantize", "all", "--output", "out", "--cache-dir", "cache"]
LOGITS = ["teacher", "logits", "--teacher", "teacher", "--task", "synthetic", "--cache-dir", "cache"]
AUG_META = b"featherweight"

SPEC_CASES = [
    Case(
        "spec-yaml-mapping",
        ["sweep", "validate", "s.yaml"],
        "s.yaml:3:12: not valid YAML (mapping values",
        {"s.yaml": "name: t\nstorage: x\ngrid: archs: [ffn]\n"},
    ),
    Case(
        "spec-yaml-bracket",
        ["sweep", "validate", "s.yaml"],
        "s.yaml:3:1: not valid YAML (expected ','",
        {"s.yaml": "name: t\narchs: [ffn\n"},
    ),
    Case(
        "spec-yaml-tab",
        ["sweep", "validate", "s.yaml"],
        "s.yaml:2:1: not valid YAML (found character '\\t'",
        {"s.yaml": "name: t\n\tstorage: x\n"},
    ),
    Case("spec-yaml-quote", ["sweep", "validate", "s.yaml"], "s.yaml:2:1: not valid YAML", {"s.yaml": 'name: "t\n'}),
    Case(
        "spec-yaml-control-char",
        ["sweep", "validate", "s.yaml"],
        "s.yaml: not valid YAML (unacceptable character",
        {"s.yaml": "name: t\n\x01\n"},
    ),
    Case(
        "spec-not-utf8",
        ["sweep", "validate", "s.yaml"],
        "s.yaml: not valid UTF-8 (byte 6",
        {"s.yaml": b"name: \xff\xfe\n"},
    ),
    Case(
        "spec-top-level-list", ["sweep", "validate", "s.yaml"], "s.yaml: expected a mapping", {"s.yaml": "- a\n- b\n"}
    ),
    Case("spec-empty", ["sweep", "validate", "s.yaml"], "s.yaml: expected a mapping", {"s.yaml": ""}),
    Case("spec-missing", ["sweep", "validate", "nope.yaml"], "nope.yaml: sweep spec not found"),
    Case("spec-directory", ["sweep", "validate", "d.yaml"], "d.yaml", {"d.yaml": _mkdir}),
    Case(
        "spec-unknown-arch",
        ["sweep", "validate", "s.yaml"],
        "transformer",
        {"s.yaml": SPEC_OK.replace("archs: [ffn]", "archs: [transformer]")},
    ),
    Case(
        "spec-bad-epochs",
        ["sweep", "validate", "s.yaml"],
        "many",
        {"s.yaml": SPEC_OK.replace("max_epochs: 1", "max_epochs: many")},
    ),
    Case(
        "spec-negative-dim",
        ["sweep", "validate", "s.yaml"],
        "-3",
        {"s.yaml": SPEC_OK.replace("dims: [8]", "dims: [-3]")},
    ),
    Case("spec-unknown-key", ["sweep", "validate", "s.yaml"], "colour", {"s.yaml": SPEC_OK + "colour: blue\n"}),
    Case(
        "spec-unknown-embedding",
        ["sweep", "validate", "s.yaml"],
        "glove",
        {"s.yaml": SPEC_OK.replace("embeddings: [hash]", "embeddings: [glove]")},
    ),
    Case(
        "spec-teacher-precision",
        ["sweep", "validate", "s.yaml"],
        "tasks.synthetic.teacher.finetune.precision: 'fp8' is not one of",
        {
            "s.yaml": SPEC_OK.replace(
                "data: synthetic\n", "data: synthetic\n    teacher: {model: small, finetune: {precision: fp8}}\n"
            )
        },
    ),
    Case(
        "spec-bootstrap-shards",
        ["sweep", "validate", "s.yaml"],
        "tasks.synthetic.bootstrap.shards: expected 'auto' or an integer >= 1, got 0",
        {
            "s.yaml": SPEC_OK.replace(
                "data: synthetic\n", "data: synthetic\n    teacher: small\n    bootstrap: {n: 2, shards: 0}\n"
            )
        },
    ),
    Case(
        "spec-teacher-hub-not-cached",
        ["sweep", "validate", "s.yaml"],
        "tasks.synthetic.teacher.model: model 'featherweight-tests/no-such-model' is not a local directory and is not cached",
        {
            "s.yaml": SPEC_OK.replace(
                "data: synthetic\n",
                "data: synthetic\n    teacher: {model: featherweight-tests/no-such-model, finetune: {}}\n",
            )
        },
        env={"HF_HUB_OFFLINE": "1"},
    ),
    Case(
        "spec-resume-name-outside-storage",
        ["sweep", "resume", "../other/x", "--storage", "st"],
        "NAME: expected a non-empty name of letters, digits, '-', '_' or '.', got '../other/x'",
        {"st/.keep": _at(""), "other/x/spec.yaml": _at(SPEC_OK.replace("name: t", "name: x"))},
    ),
]

DATA_CASES = [
    Case("data-missing", [*DISTILL_OUT, *CUSTOM, "--data", "nope.csv"], "nope.csv"),
    Case("data-empty", [*DISTILL_OUT, *CUSTOM, "--data", "d.csv"], "d.csv", {"d.csv": ""}),
    Case("data-header-only", [*DISTILL_OUT, *CUSTOM, "--data", "d.csv"], "d.csv", {"d.csv": "text,label\n"}),
    Case(
        "data-wrong-columns",
        [*DISTILL_OUT, *CUSTOM, "--data", "d.csv"],
        "text",
        {"d.csv": CSV_OK.replace("text,label", "sentence,label")},
    ),
    Case(
        "data-unknown-labels",
        [*DISTILL_OUT, *CUSTOM, "--data", "d.csv"],
        "d.csv:2: label 'maybe'",
        {"d.csv": "text,label\n" + "odd film,maybe\n" * 30},
    ),
    Case(
        "data-bad-bytes",
        [*DISTILL_OUT, *CUSTOM, "--data", "d.csv", "--on-bad-bytes", "error"],
        "d.csv",
        {"d.csv": CSV_OK.encode() + b"caf\xe9 film,pos\n"},
    ),
    Case(
        "data-unknown-encoding",
        [*DISTILL_OUT, *CUSTOM, "--data", "d.csv", "--encoding", "klingon"],
        "klingon",
        {"d.csv": CSV_OK},
    ),
    Case("data-dir-without-train", [*DISTILL_OUT, *CUSTOM, "--data", "dd"], "dd", {"dd": _mkdir}),
    Case("data-glue-dir-missing", [*DISTILL_OUT, "--task", "sst2", "--data", "noglue"], "noglue"),
    Case(
        "data-dev-fraction",
        [*DISTILL_OUT, *CUSTOM, "--data", "d.csv", "--dev-fraction", "1.5"],
        "1.5",
        {"d.csv": CSV_OK},
    ),
    Case("data-custom-without-data", [*DISTILL_OUT, *CUSTOM], "--data"),
    Case("data-unknown-task", [*DISTILL_OUT, "--task", "nosuchtask"], "nosuchtask"),
]

CHECKPOINT_CASES = [
    Case(
        "ckpt-truncated-half",
        COMPRESS,
        "student.pt: not a featherweight student checkpoint (truncated",
        {"student.pt": _copy("student", lambda b: b[: len(b) // 2])},
    ),
    Case(
        "ckpt-truncated-short",
        COMPRESS,
        "student.pt: not a featherweight student checkpoint (truncated",
        {"student.pt": _copy("student", lambda b: b[:3000])},
    ),
    Case(
        "ckpt-truncated-tail",
        COMPRESS,
        "student.pt: not a featherweight student checkpoint (truncated",
        {"student.pt": _copy("student", lambda b: b[:-40])},
    ),
    Case("ckpt-empty", COMPRESS, "student.pt: not a featherweight student checkpoint", {"student.pt": b""}),
    Case(
        "ckpt-garbage-text", COMPRESS, "student.pt: not a featherweight student checkpoint", {"student.pt": "garbage\n"}
    ),
    Case(
        "ckpt-random-bytes",
        COMPRESS,
        "student.pt: not a featherweight student checkpoint",
        {"student.pt": bytes(range(256)) * 8},
    ),
    Case(
        "ckpt-corrupt-pickle",
        COMPRESS,
        "student.pt: not a featherweight student checkpoint",
        {"student.pt": _copy("student", _corrupt_pickle)},
    ),
    Case(
        "ckpt-zip-not-torch",
        COMPRESS,
        "student.pt: not a featherweight student checkpoint",
        {"student.pt": _zip_of_text},
    ),
    Case("ckpt-json", COMPRESS, "student.pt: not a featherweight student checkpoint", {"student.pt": '{"a": 1}'}),
    Case(
        "ckpt-foreign-torch-file",
        COMPRESS,
        "student.pt: not a featherweight student checkpoint",
        {"student.pt": _torch_file({"a": 1})},
    ),
    Case(
        "ckpt-format-without-weights",
        COMPRESS,
        "student.pt: not a featherweight student checkpoint",
        {"student.pt": _torch_file({"format": "featherweight-student/1", "student_config": {}})},
    ),
    Case("ckpt-directory", COMPRESS, "student.pt: a directory", {"student.pt": _mkdir}),
    Case("ckpt-missing", COMPRESS, "student.pt: checkpoint not found"),
    Case(
        "ckpt-analyze-truncated",
        ["analyze", "--checkpoint", "student.pt"],
        "student.pt: not a featherweight",
        {"student.pt": _copy("student", lambda b: b[:5000])},
    ),
]

TEACHER_CASES = [
    Case("teacher-missing", LOGITS, "teacher: teacher directory not found"),
    Case("teacher-is-a-file", LOGITS, "teacher", {"teacher": "x"}),
    Case("teacher-empty-dir", LOGITS, "teacher: not a model directory", {"teacher": _mkdir}),
    Case(
        "teacher-no-config",
        LOGITS,
        "teacher: not a model directory",
        {"teacher": _teacher(lambda d: (d / "config.json").unlink())},
    ),
    Case(
        "teacher-no-weights",
        LOGITS,
        "teacher: not a model directory",
        {"teacher": _teacher(lambda d: (d / "model.safetensors").unlink())},
    ),
    Case(
        "teacher-corrupt-safetensors",
        LOGITS,
        "model.safetensors: not a readable safetensors",
        {"teacher": _teacher(lambda d: (d / "model.safetensors").write_bytes(b"garbage" * 9))},
    ),
    Case(
        "teacher-truncated-safetensors",
        LOGITS,
        "model.safetensors: not a readable safetensors",
        {
            "teacher": _teacher(
                lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:20])
            )
        },
    ),
    Case(
        "teacher-corrupt-bin",
        LOGITS,
        "pytorch_model.bin: not a readable PyTorch weights file",
        {"teacher": _teacher(lambda d: (d / "pytorch_model.bin").write_bytes(b"PK\x03\x04 truncated"))},
    ),
    Case(
        "teacher-bad-config-json",
        LOGITS,
        "config.json: not valid JSON",
        {"teacher": _teacher(lambda d: (d / "config.json").write_text("{model_type: bert"))},
    ),
    Case(
        "teacher-bad-meta-json",
        LOGITS,
        "featherweight_teacher.json: not valid JSON",
        {"teacher": _teacher(lambda d: (d / "featherweight_teacher.json").write_text("[1, 2"))},
    ),
    Case(
        "teacher-distill-missing", [*DISTILL_OUT, "--task", "synthetic", "--teacher", "nope", "--alpha", "0.5"], "nope"
    ),
    Case(
        "teacher-logits-missing",
        [*DISTILL_OUT, "--task", "synthetic", "--teacher-logits", "l.npy", "--alpha", "0.5"],
        "l.npy: teacher logits file not found",
    ),
    Case(
        "teacher-logits-garbage-npy",
        [*DISTILL_OUT, "--task", "synthetic", "--teacher-logits", "l.npy", "--alpha", "0.5"],
        "l.npy: not a readable .npy array",
        {"l.npy": "garbage"},
    ),
    Case(
        "teacher-logits-garbage-parquet",
        [*DISTILL_OUT, "--task", "synthetic", "--teacher-logits", "l.parquet", "--alpha", "0.5"],
        "l.parquet: not a readable Parquet file",
        {"l.parquet": "garbage"},
    ),
    Case(
        "teacher-augment-bad",
        ["augment", "--task", "synthetic", "--output", "out/a.parquet", "--teacher", "t"],
        "t: not a model directory",
        {"t": _mkdir},
    ),
    Case(
        "teacher-finetune-bad-model",
        ["teacher", "finetune", "--model", "t", "--task", "synthetic", "--output", "out"],
        "model.safetensors: not a readable safetensors",
        {"t": _teacher(lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 3))},
    ),
    Case(
        "teacher-weights-miss-tensors",
        LOGITS,
        "teacher: 25 tensor(s) of the bert model its config.json describes are not in its weights",
        {"teacher": _teacher(lambda d: _tiny_config(d, "bert"))},
    ),
    Case(
        "teacher-config-other-architecture",
        ["theseus", "--teacher", "teacher", "--task", "synthetic", "--output", "out"],
        "of the gpt2 model its config.json describes are not in its weights and would be newly initialised",
        {"teacher": _teacher(lambda d: _tiny_config(d, "gpt2"))},
    ),
    Case(
        "teacher-distill-incomplete",
        [*DISTILL_OUT, "--task", "synthetic", "--teacher", "teacher", "--alpha", "0.5"],
        "teacher: 25 tensor(s) of the bert model",
        {"teacher": _teacher(lambda d: _tiny_config(d, "bert"))},
    ),
]


def _tiny_config(d: Path, model_type: str) -> None:
    """A tiny model of ``model_type`` over the asset teacher's weights (one tensor ``w``): its tensors are missing."""
    if model_type == "gpt2":
        config = {"n_embd": 8, "n_layer": 1, "n_head": 2, "n_positions": 16}
    else:
        config = {"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 8}
    (d / "config.json").write_text(json.dumps({"model_type": model_type, "vocab_size": 10, "num_labels": 2, **config}))


AUGMENTED_CASES = [
    Case(
        "aug-missing",
        [*LOGITS, "--augmented", "a.parquet"],
        "a.parquet: augmented data file not found",
        {"teacher": _teacher()},
    ),
    Case(
        "aug-not-parquet",
        [*LOGITS, "--augmented", "a.parquet"],
        "a.parquet: not a readable Parquet file",
        {"teacher": _teacher(), "a.parquet": "text,label\n"},
    ),
    Case(
        "aug-truncated",
        [*LOGITS, "--augmented", "a.parquet"],
        "a.parquet: not a readable Parquet file",
        {"teacher": _teacher(), "a.parquet": lambda p, a: (_parquet(None)(p, a), p.write_bytes(p.read_bytes()[:-30]))},
    ),
    Case(
        "aug-no-metadata",
        [*LOGITS, "--augmented", "a.parquet"],
        "a.parquet: not an augmented-data file",
        {"teacher": _teacher(), "a.parquet": _parquet(None)},
    ),
    Case(
        "aug-metadata-not-json",
        [*LOGITS, "--augmented", "a.parquet"],
        "a.parquet: not an augmented-data file",
        {"teacher": _teacher(), "a.parquet": _parquet({AUG_META: b"{nope"})},
    ),
    Case(
        "aug-metadata-without-fields",
        [*LOGITS, "--augmented", "a.parquet"],
        "a.parquet: not an augmented-data",
        {"teacher": _teacher(), "a.parquet": _parquet({AUG_META: b"{}"})},
    ),
    Case(
        "aug-missing-column",
        [*LOGITS, "--augmented", "a.parquet"],
        "a.parquet: not an augmented-data file",
        {"teacher": _teacher(), "a.parquet": _parquet({AUG_META: b'{"text_fields": ["sentence"]}'})},
    ),
    Case(
        "aug-distill-bootstrap",
        [*DISTILL_OUT, "--task", "synthetic", "--teacher", "teacher", "--alpha", "0.5", "--bootstrap", "a.parquet"],
        "a.parquet: not an augmented-data file",
        {"teacher": _teacher(), "a.parquet": _parquet(None)},
    ),
    Case(
        "aug-a-directory",
        [*LOGITS, "--augmented", "a.parquet"],
        "a.parquet",
        {"teacher": _teacher(), "a.parquet": _mkdir},
    ),
]

CLI_CASES = [
    Case("cli-dim-not-int", [*DISTILL, "--task", "synthetic", "--dim", "x"], "'x'"),
    Case("cli-unknown-arch", [*DISTILL, "--task", "synthetic", "--arch", "transformer"], "'transformer'"),
    Case("cli-epochs-not-int", [*DISTILL, "--task", "synthetic", "--max-epochs", "many"], "'many'"),
    Case("cli-threads-zero", [*DISTILL, "--task", "synthetic", "--threads", "0"], "'0'"),
    Case("cli-temperature", [*DISTILL, "--task", "synthetic", "--temperature", "hot"], "'hot'"),
    Case("cli-bad-bytes-choice", [*DISTILL, "--task", "synthetic", "--on-bad-bytes", "ignore"], "'ignore'"),
    Case("cli-missing-task", [*DISTILL], "--task"),
    Case("cli-alpha-without-teacher", [*DISTILL_OUT, "--task", "synthetic", "--alpha", "0.5"], "--alpha 0.5"),
    Case("cli-unknown-prune", ["compress", "s.pt", "--prune", "bogus"], "'bogus'"),
    Case("cli-importance-bits", ["compress", "s.pt", "--importance-bits", "9"], "'9'"),
    Case("cli-sparsity", ["compress", "s.pt", "--sparsity", "encoder=lots"], "'lots'"),
    Case("cli-quantize-part", ["compress", "s.pt", "--quantize", "everything"], "'everything'"),
    Case(
        "cli-compress-nothing-to-do",
        ["compress", "student.pt", "--output", "out"],
        "--prune",
        {"student.pt": _copy("student")},
    ),
    Case(
        "cli-teacher-precision",
        ["teacher", "finetune", "--model", "m", "--task", "synthetic", "--output", "o", "--precision", "fp64"],
        "'fp64'",
    ),
    Case("cli-teacher-subcommand", ["teacher", "distil"], "'distil'"),
    Case("cli-augment-p", ["augment", "--task", "synthetic", "--output", "a.parquet", "-p", "high"], "'high'"),
    Case("cli-augment-not-parquet", ["augment", "--task", "synthetic", "--output", "a.csv"], "a.csv"),
    Case("cli-analyze-missing", ["analyze", "--arch", "ffn"], "--task"),
]

OUTPUT_CASES = [
    Case("out-under-a-file", [*DISTILL, "--task", "synthetic", "--output", "f/sub"], "f/sub", {"f": "x"}),
    Case("out-is-a-file", [*DISTILL, "--task", "synthetic", "--output", "f"], "--output f", {"f": "x"}),
    Case(
        "out-no-free-space",
        [*DISTILL_OUT, "--task", "synthetic"],
        "--output out",
        env={"FEATHERWEIGHT_MIN_FREE_MB": "1e15"},
    ),
    Case(
        "out-bad-threshold",
        [*DISTILL_OUT, "--task", "synthetic"],
        "FEATHERWEIGHT_MIN_FREE_MB",
        env={"FEATHERWEIGHT_MIN_FREE_MB": "lots"},
    ),
    Case(
        "out-compress-no-space",
        COMPRESS,
        "--output out",
        {"student.pt": _copy("student")},
        env={"FEATHERWEIGHT_MIN_FREE_MB": "1e15"},
    ),
    Case(
        "out-augment-under-a-file",
        ["augment", "--task", "synthetic", "--output", "f/a.parquet"],
        "f/a.parquet",
        {"f": "x"},
    ),
    Case(
        "out-teacher-nonempty",
        ["teacher", "init-small", "--task", "synthetic", "--output", "t"],
        "t: directory",
        {"t": _mkdir, "t/keep": "x"},
    ),
]

TRUNC_DB = {"f.duckdb": _copy("db", lambda b: b[: len(b) // 3])}
GARBAGE_DB = {"f.duckdb": b"this is not a database\n" * 100}
GOOD_DB = {"f.duckdb": _copy("db")}
SPEC_ON_DB = {"s.yaml": SPEC_OK + "database: f.duckdb\n"}
DATABASE_CASES = [
    *(
        Case(f"db-{kind}-{name}", argv, "f.duckdb", files)
        for kind, files in (("truncated", TRUNC_DB), ("garbage", GARBAGE_DB))
        for name, argv in (
            ("report", ["report", "s", "--db", "f.duckdb", "--output", "rep"]),
            ("migrate", ["db", "migrate", "--db", "f.duckdb"]),
            ("query", ["query", "--db", "f.duckdb", "SELECT 1"]),
            ("tables", ["db", "tables", "--db", "f.duckdb"]),
            ("export", ["db", "export", "--db", "f.duckdb", "--output", "exp"]),
            ("status", ["sweep", "status", "s", "--db", "f.duckdb"]),
            ("sync", ["db", "sync", "--db", "f.duckdb"]),
            (
                "add-baseline",
                ["db", "add-baseline", "--db", "f.duckdb", "--task", "t", "--name", "n", "--score", "0.5"],
            ),
        )
    ),
    Case("db-sweep-on-truncated", ["sweep", "run", "s.yaml"], "f.duckdb", {**TRUNC_DB, **SPEC_ON_DB}),
    Case("db-sweep-on-garbage", ["sweep", "run", "s.yaml"], "f.duckdb", {**GARBAGE_DB, **SPEC_ON_DB}),
    Case("db-missing-query", ["query", "--db", "nope.duckdb", "SELECT 1"], "nope.duckdb"),
    Case("db-unknown-sweep", ["sweep", "status", "zz", "--db", "f.duckdb"], "zz", GOOD_DB),
    Case("db-bad-sql", ["query", "--db", "f.duckdb", "SELEC 1"], "SELEC", GOOD_DB),
    Case("db-query-copy-refused", ["query", "--db", "f.duckdb", "COPY trials TO 'x.csv'"], "refused", GOOD_DB),
    Case("db-query-attach-refused", ["query", "--db", "f.duckdb", "ATTACH 'y.duckdb' AS y"], "refused", GOOD_DB),
    Case(
        "db-baseline-bad-score",
        ["db", "add-baseline", "--db", "f.duckdb", "--task", "t", "--name", "n", "--score", "91"],
        "91",
        GOOD_DB,
    ),
]


def _file(content: bytes | str | Callable[[Path, dict[str, Path]], None], unreadable: bool = False):
    """Writes ``content`` (parent directories made); ``unreadable``: then chmod 000 - which does not stop root, so
    such a case is skipped when the tests run as root (tests/featherweight_core/test_readable.py reads the same
    kinds of file as an unprivileged user instead)."""

    def make(path: Path, assets: dict[str, Path]) -> None:
        if unreadable and os.geteuid() == 0:
            pytest.skip("running as root: chmod 000 does not stop root from reading")
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path, assets)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        if unreadable:
            path.chmod(0)

    return make


def _io_error(path: Path, assets: dict[str, Path]) -> None:
    """A link to /proc/self/mem: opens, but its first read fails (EIO) - unreadable for root too."""
    if not Path("/proc/self/mem").exists():
        pytest.skip("no /proc/self/mem here")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to("/proc/self/mem")


def _npy(rows: list[list[float]]):
    def make(path: Path, assets: dict[str, Path]) -> None:
        import numpy as np

        with path.open("wb") as f:  # np.save(path) would add .npy to a name without it
            np.save(f, np.asarray(rows, dtype=np.float32))

    return make


def _logits_parquet(rows: list[list[float]]):
    def make(path: Path, assets: dict[str, Path]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"key": [f"train:{i}" for i in range(len(rows))], "logits": rows}), path)

    return make


# a stray quote at the start of line 4 swallows every row after it into one field
CSV_RUNAWAY = "text,label\n" + "".join(
    ('"' if i == 2 else "") + f"film number {i},{'pos' if i % 2 else 'neg'}\n" for i in range(120)
)
CSV_MOSTLY_BROKEN = "text,label\n" + "good film,pos\nbad, sad film,neg\nugly, dull, film,neg\nodd,film,pos\n" * 10
TSV_MOSTLY_BROKEN = "text\tlabel\n" + "good film\tpos\nbad\tsad film\tneg\nugly\tdull\tfilm\tneg\n" * 10
CSV_ONE_CLASS = "text,label\n" + "good film,pos\nfine film,pos\n" * 20
GLUE_ONE_CLASS = "sentence\tlabel\n" + "a good film\t1\n" * 20
GLUE_DEV = "sentence\tlabel\n" + "a good film\t1\na bad film\t0\n" * 5
LOGITS_OK = [[0.5, -0.5]] * 40
LOGITS_NAN = [[float("nan"), 0.0]] * 40
LOGITS_INF = [[0.5, -0.5]] * 3 + [[float("inf"), 0.0]] + [[0.5, -0.5]] * 36
DISTILL_LOGITS = [*DISTILL_OUT, "--task", "synthetic", "--alpha", "0.5", "--teacher-logits"]
FINETUNE = ["teacher", "finetune", "--model", "m", "--task", "synthetic", "--output", "o"]
THESEUS = ["theseus", "--teacher", "t", "--output", "o"]
BERTVISION = ["bertvision", "--teacher", "t", "--output", "o"]
AUGMENT = ["augment", "--task", "synthetic", "--output", "a.parquet"]


def _option_case(name: str, argv: list[str], option: str, value: str) -> Case:
    """A numeric option out of its range: the error names the option and the value."""
    return Case(f"nf-{name}", [*argv, option, value], f"{option}: expected")


# classes of bad input, one list each (filled per class below)
UNREADABLE_CASES: list[Case] = [
    Case("spec-unreadable", ["sweep", "validate", "s.yaml"], "s.yaml: cannot read", {"s.yaml": _unreadable(SPEC_OK)}),
    Case(
        "spec-nested-lists",
        ["sweep", "validate", "s.yaml"],
        "s.yaml:1:101: nested deeper than 100 levels",
        {"s.yaml": "[" * 20000 + "]" * 20000},
    ),
    Case(
        "spec-nested-mappings",
        ["sweep", "validate", "s.yaml"],
        "s.yaml:2:",
        {"s.yaml": "name: t\nx: " + "{a: " * 20000 + "1" + "}" * 20000 + "\n"},
    ),
    Case(
        "spec-nested-blocks",
        ["sweep", "validate", "s.yaml"],
        "nested deeper than 100 levels",
        {"s.yaml": "".join("  " * i + "a:\n" for i in range(3000))},
    ),
    Case(
        "spec-aliases-expand",
        ["sweep", "validate", "s.yaml"],
        "s.yaml:4:5: expands to more than 100,000 values (through aliases)",
        {
            "s.yaml": "name: t\na0: &a0 [v, v, v, v, v, v, v, v, v, v]\n"
            + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 100)}]\n" for i in range(1, 3))
        },
    ),
    Case(
        "unreadable-data-csv",
        [*DISTILL_OUT, *CUSTOM, "--data", "d.csv"],
        "d.csv: cannot read the data file (Permission denied)",
        {"d.csv": _file(CSV_OK, unreadable=True)},
    ),
    Case(
        "unreadable-data-dir-train",
        [*DISTILL_OUT, *CUSTOM, "--data", "dd"],
        "train.csv: cannot read the data file",
        {"dd/train.csv": _file(CSV_OK, unreadable=True), "dd/dev.csv": CSV_OK},
    ),
    Case(
        "unreadable-glue-dev",
        [*DISTILL_OUT, "--task", "sst2", "--data", "glue"],
        "dev.tsv: cannot read the data file",
        {"glue/SST-2/train.tsv": _file(GLUE_DEV), "glue/SST-2/dev.tsv": _file(GLUE_DEV, unreadable=True)},
    ),
    Case(
        "unreadable-logits-npy",
        [*DISTILL_LOGITS, "l.npy"],
        "l.npy: cannot read the teacher logits file",
        {"l.npy": _file(_npy(LOGITS_OK), unreadable=True)},
    ),
    Case(
        "unreadable-logits-parquet",
        [*DISTILL_LOGITS, "l.parquet"],
        "l.parquet: cannot read the teacher logits file",
        {"l.parquet": _file(_logits_parquet(LOGITS_OK), unreadable=True)},
    ),
    Case(
        "unreadable-logits-directory",
        [*DISTILL_LOGITS, "l.npy"],
        "l.npy: a directory, not a teacher logits file",
        {"l.npy": _mkdir},
    ),
    Case(
        "unreadable-checkpoint",
        COMPRESS,
        "student.pt: cannot read the checkpoint",
        {"student.pt": _file(_copy("student"), unreadable=True)},
    ),
    Case(
        "unreadable-checkpoint-analyze",
        ["analyze", "--checkpoint", "student.pt"],
        "student.pt: cannot read the checkpoint",
        {"student.pt": _file(_copy("student"), unreadable=True)},
    ),
    Case(
        "unreadable-augmented",
        [*LOGITS, "--augmented", "a.parquet"],
        "a.parquet: cannot read the augmented data file",
        {"teacher": _teacher(), "a.parquet": _file(_parquet({AUG_META: b"{}"}), unreadable=True)},
    ),
    Case(
        "unreadable-io-data-csv",
        [*DISTILL_OUT, *CUSTOM, "--data", "d.csv"],
        "d.csv: cannot read the data file (Input/output error)",
        {"d.csv": _io_error},
    ),
    Case(
        "unreadable-io-data-dir-dev",
        [*DISTILL_OUT, *CUSTOM, "--data", "dd"],
        "dev.csv: cannot read the data file",
        {"dd/train.csv": _file(CSV_OK), "dd/dev.csv": _io_error},
    ),
    Case(
        "unreadable-io-glue-train",
        [*DISTILL_OUT, "--task", "sst2", "--data", "glue"],
        "train.tsv: cannot read the data file",
        {"glue/SST-2/train.tsv": _io_error, "glue/SST-2/dev.tsv": _file(GLUE_DEV)},
    ),
    Case(
        "unreadable-io-logits",
        [*DISTILL_LOGITS, "l.npy"],
        "l.npy: cannot read the teacher logits file",
        {"l.npy": _io_error},
    ),
    Case("unreadable-io-checkpoint", COMPRESS, "student.pt: cannot read the checkpoint", {"student.pt": _io_error}),
    Case(
        "unreadable-io-augmented",
        [*LOGITS, "--augmented", "a.parquet"],
        "a.parquet: cannot read the augmented data file",
        {"teacher": _teacher(), "a.parquet": _io_error},
    ),
]  # files that exist but cannot be read (permissions, a directory, too deep)


class _Payload:
    """Unpickling this creates the file PWNED in the working directory (``open("PWNED", "w")``): the listing
    check then sees that a loader ran the pickle's code."""

    def __reduce__(self):
        import builtins

        return (builtins.open, ("PWNED", "w"))


def _pickled(zip_format: bool = False):
    def make(path: Path, assets: dict[str, Path]) -> None:
        import pickle

        import torch

        if zip_format:
            torch.save({"w": _Payload()}, path)
        else:
            path.write_bytes(pickle.dumps({"w": _Payload()}, protocol=4))

    return make


def _gensim_kv(path: Path, assets: dict[str, Path]) -> None:
    from featherweight_core.data.wordvectors import train_word_vectors

    train_word_vectors([["good", "bad", "film"]] * 5, dim=4, epochs=1).save(str(path))


def _payload_teacher(zip_format: bool = False):
    def mutate(d: Path) -> None:
        (d / "model.safetensors").unlink()
        _pickled(zip_format)(d / "pytorch_model.bin", {})

    return _teacher(mutate)


def _int8_payload(path: Path, assets: dict[str, Path]) -> None:
    path.mkdir()
    tiny = {"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 8}
    (path / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 10, **tiny}))
    (path / "featherweight_compressed.json").write_text(json.dumps({"method": "theseus", "quantized": True}))
    _pickled(True)(path / "model_int8.pt", assets)


AUGMENT = ["augment", "--task", "synthetic", "--output", "out/a.parquet", "--no-progress"]
REFUSED = "pytorch_model.bin: refused: "
SECURITY_CASES: list[Case] = [
    Case("security-vectors-kv-pickle", [*AUGMENT, "--vectors", "v.kv"], "v.kv: a Python pickle", {"v.kv": _pickled()}),
    Case("security-vectors-gensim-kv", [*AUGMENT, "--vectors", "g.kv"], "g.kv: a Python pickle", {"g.kv": _gensim_kv}),
    Case(
        "security-vectors-bin-pickle", [*AUGMENT, "--vectors", "v.bin"], "v.bin: a Python pickle", {"v.bin": _pickled()}
    ),
    Case(
        "security-vectors-torch-zip",
        [*AUGMENT, "--vectors", "v.bin"],
        "v.bin: a zip archive holding a Python pickle",
        {"v.bin": _pickled(True)},
    ),
    Case("security-teacher-logits-bin", LOGITS, REFUSED, {"teacher": _payload_teacher()}),
    Case("security-teacher-logits-bin-zip", LOGITS, REFUSED, {"teacher": _payload_teacher(True)}),
    Case(
        "security-distill-teacher-bin",
        [*DISTILL_OUT, "--task", "synthetic", "--teacher", "teacher", "--alpha", "0.5"],
        REFUSED,
        {"teacher": _payload_teacher(True)},
    ),
    Case(
        "security-finetune-model-bin",
        ["teacher", "finetune", "--model", "teacher", "--task", "synthetic", "--output", "out"],
        REFUSED,
        {"teacher": _payload_teacher(True)},
    ),
    Case(
        "security-theseus-teacher-bin",
        ["theseus", "--teacher", "teacher", "--task", "synthetic", "--output", "out"],
        REFUSED,
        {"teacher": _payload_teacher(True)},
    ),
    Case(
        "security-bertvision-teacher-bin",
        ["bertvision", "--teacher", "teacher", "--task", "synthetic", "--output", "out", "--cache-dir", "cache"],
        REFUSED,
        {"teacher": _payload_teacher(True)},
    ),
    Case("security-augment-teacher-bin", [*AUGMENT, "--teacher", "teacher"], REFUSED, {"teacher": _payload_teacher()}),
    Case(
        "security-augment-mlm-bin",
        [*AUGMENT, "--mode", "fill-mask", "--mlm", "teacher"],
        REFUSED,
        {"teacher": _payload_teacher(True)},
    ),
    Case(
        "security-export-teacher-bin",
        ["export", "--model", "teacher", "--output", "out"],
        REFUSED,
        {"teacher": _payload_teacher(True)},
    ),
    Case(
        "security-export-int8-pickle",
        ["export", "--model", "c", "--output", "out"],
        "model_int8.pt: refused: its pickle names",
        {"c": _int8_payload},
    ),
]  # files that would run code or reach the network when loaded


def _foreign_duckdb(own_schema_version: bool = False):
    """Another program's DuckDB file: a table and a view (and, maybe, a schema_version table of its own)."""

    def make(path: Path, assets: dict[str, Path]) -> None:
        import duckdb

        con = duckdb.connect(str(path))
        con.execute("CREATE TABLE customers (id INTEGER, name VARCHAR)")
        con.execute("INSERT INTO customers VALUES (1, 'a'), (2, 'b')")
        con.execute("CREATE VIEW named AS SELECT name FROM customers")
        if own_schema_version:
            con.execute("CREATE TABLE schema_version (version INTEGER, name VARCHAR, applied_at TIMESTAMP)")
            con.execute("INSERT INTO schema_version VALUES (1, 'customers', now()), (2, 'names', now())")
        con.close()

    return make


def _sqlite_file(path: Path, assets: dict[str, Path]) -> None:
    import sqlite3

    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (a INTEGER)")
    con.commit()
    con.close()


def _empty_duckdb(path: Path, assets: dict[str, Path]) -> None:
    import duckdb

    duckdb.connect(str(path)).close()


FOREIGN_OPENERS = (
    ("migrate", ["db", "migrate", "--db", "f.duckdb"]),
    ("sweep-run", ["sweep", "run", "s.yaml"]),
    ("query", ["query", "--db", "f.duckdb", "SELECT * FROM trials"]),
    ("report", ["report", "s", "--db", "f.duckdb", "--output", "rep"]),
    ("tables", ["db", "tables", "--db", "f.duckdb"]),
    ("status", ["sweep", "status", "s", "--db", "f.duckdb"]),
    ("export", ["db", "export", "--db", "f.duckdb", "--output", "exp"]),
    ("sync", ["db", "sync", "--db", "f.duckdb"]),
    ("add-baseline", ["db", "add-baseline", "--db", "f.duckdb", "--task", "t", "--name", "n", "--score", "0.5"]),
    ("export-trial", ["export", "d-1", "--db", "f.duckdb", "--output", "out"]),
)
FOREIGN_DB_CASES: list[Case] = [  # DuckDB files another program wrote (and a SQLite file)
    *(
        Case(f"foreign-{kind}-{name}", argv, f"f.duckdb is not a {what}", {"f.duckdb": make, **SPEC_ON_DB})
        for kind, make, what in (
            ("duckdb", _foreign_duckdb(), "featherweight experiment database"),
            ("schema-version", _foreign_duckdb(own_schema_version=True), "featherweight experiment database"),
            ("sqlite", _sqlite_file, "DuckDB database (it is a SQLite database)"),
        )
        for name, argv in FOREIGN_OPENERS
    ),
    *(
        Case(f"foreign-empty-{name}", argv, "empty DuckDB file", {"f.duckdb": _empty_duckdb})
        for name, argv in FOREIGN_OPENERS
        if name in ("query", "report", "tables", "status", "export")
    ),
]
SLOW_SQL = "SELECT sum(range % 7) FROM range(1000000000000)"  # hours of work without a time limit
BIG_LIST_SQL = "SELECT len(list(range)) FROM range(400000000)"  # 6.9 GB without a memory limit
BIG_RESULT_SQL = "SELECT range FROM range(400000000)"  # 3.2 GB of rows handed over
QUERY_LIMIT_CASES: list[Case] = [  # SQL that hits the time or memory limit, or holds no statement
    Case(
        "limit-timeout",
        ["query", "--db", "f.duckdb", "--timeout", "1", SLOW_SQL],
        "1 s time limit (--timeout)",
        GOOD_DB,
    ),
    Case(
        "limit-timeout-parquet",
        ["query", "--db", "f.duckdb", "--timeout", "1", "--format", "parquet", "-o", "q.parquet", SLOW_SQL],
        "1 s time limit (--timeout)",
        GOOD_DB,
    ),
    Case(
        "limit-memory-list",
        ["query", "--db", "f.duckdb", "--memory-limit", "100MB", BIG_LIST_SQL],
        "memory limit of 100MB (--memory-limit)",
        GOOD_DB,
    ),
    Case(
        "limit-memory-result",
        ["query", "--db", "f.duckdb", "--memory-limit", "100MB", "--format", "csv", "-o", "q.csv", BIG_RESULT_SQL],
        "memory limit of 100MB (--memory-limit)",
        GOOD_DB,
    ),
    Case("limit-timeout-zero", ["query", "--db", "f.duckdb", "--timeout", "0", "SELECT 1"], "--timeout", GOOD_DB),
    Case("limit-timeout-negative", ["report", "s", "--db", "f.duckdb", "--timeout", "-1"], "'-1'", GOOD_DB),
    Case("limit-timeout-word", ["db", "tables", "--db", "f.duckdb", "--timeout", "soon"], "'soon'", GOOD_DB),
    Case("limit-memory-word", ["query", "--db", "f.duckdb", "--memory-limit", "lots", "SELECT 1"], "'lots'", GOOD_DB),
    Case(
        "limit-memory-tiny",
        ["db", "export", "--db", "f.duckdb", "--output", "exp", "--memory-limit", "1KB"],
        "'1KB'",
        GOOD_DB,
    ),
    *(
        Case(f"limit-no-statement-{name}", ["query", "--db", "f.duckdb", sql], "no SQL statement", GOOD_DB)
        for name, sql in (("line-comment", "-- hi"), ("block-comment", "/* x */"), ("semicolon", ";"))
    ),
    Case("limit-two-statements", ["query", "--db", "f.duckdb", "SELECT 1; SELECT 2"], "2 SQL statements", GOOD_DB),
]
DUPLICATE_KEY_CASES: list[Case] = [
    Case(
        "dup-key-name",
        ["sweep", "validate", "s.yaml"],
        "s.yaml:2:1: key 'name' appears twice (first at line 1)",
        {"s.yaml": "name: u\n" + SPEC_OK},
    ),
    Case(
        "dup-key-max-epochs",
        ["sweep", "validate", "s.yaml"],
        "s.yaml:13:3: key 'max_epochs' appears twice (first at line 12)",
        {"s.yaml": SPEC_OK + "  max_epochs: 2\n"},
    ),
    Case(
        "dup-key-flow-mapping",
        ["sweep", "validate", "s.yaml"],
        "key 'dims' appears twice",
        {
            "s.yaml": SPEC_OK.replace(
                "    data: synthetic\n", "    data: synthetic\n    grid: {dims: [8], dims: [16]}\n"
            )
        },
    ),
    Case(
        "dup-key-saved-spec-on-resume",
        ["sweep", "resume", "t"],
        "spec.yaml:13:3: key 'max_epochs' appears twice",
        {"runs/t/spec.yaml": _at(SPEC_OK + "  max_epochs: 2\n")},
    ),
    Case(
        "dup-key-run",
        ["sweep", "run", "s.yaml"],
        "s.yaml:2:1: key 'name' appears twice",
        {"s.yaml": "name: u\n" + SPEC_OK},
    ),
]  # YAML mappings naming a key twice
IMPOSSIBLE_SIZE_CASES: list[Case] = [
    Case(
        "size-spec-dims",
        ["sweep", "validate", "s.yaml"],
        "grid.dims[1]: 1000000000 (task synthetic, arch ffn, embedding hash",
        {"s.yaml": SPEC_OK.replace("dims: [8]", "dims: [8, 1000000000]")},
    ),
    Case(
        "size-spec-vocab",
        ["sweep", "validate", "s.yaml"],
        "grid.vocab_sizes[0]: 100000000000 (",
        {"s.yaml": SPEC_OK.replace("vocab_sizes: [100]", "vocab_sizes: [100000000000]")},
    ),
    Case(
        "size-spec-task-grid-dims",
        ["sweep", "validate", "s.yaml"],
        "tasks.synthetic.grid.dims[0]: 100000000000000000000 (",
        {
            "s.yaml": SPEC_OK.replace(
                "    data: synthetic\n", "    data: synthetic\n    grid: {dims: [100000000000000000000]}\n"
            )
        },
    ),
    Case(
        "size-spec-n-train",
        ["sweep", "validate", "s.yaml"],
        "tasks.synthetic.data_options.n_train: 10000000000",
        {
            "s.yaml": SPEC_OK.replace(
                "    data: synthetic\n", "    data: synthetic\n    data_options: {n_train: 10000000000}\n"
            )
        },
    ),
    Case(
        "size-spec-bootstrap-n",
        ["sweep", "validate", "s.yaml"],
        "tasks.synthetic.bootstrap.n: 100000000000",
        {
            "s.yaml": SPEC_OK.replace(
                "    data: synthetic\n", "    data: synthetic\n    teacher: small\n    bootstrap: {n: 100000000000}\n"
            )
        },
    ),
    Case(
        "size-run-dims",
        ["sweep", "run", "s.yaml"],
        "grid.dims[0]: 1000000000",
        {"s.yaml": SPEC_OK.replace("dims: [8]", "dims: [1000000000]")},
    ),
    Case(
        "size-analyze-dim",
        ["analyze", "--task", "synthetic", "--arch", "bilstm", "--embedding", "bpe", "--dim", "1000000000000"],
        "--dim 1000000000000 (arch bilstm, embedding bpe): a student of 6,201,000,000,243,002 parameters",
    ),
    Case(
        "size-analyze-vocab",
        ["analyze", "--task", "synthetic", "--arch", "ffn", "--embedding", "hash", "--dim", "8"]
        + ["--vocab-size", "1000000000000"],
        "--vocab-size 1000000000000",
    ),
    Case(
        "size-analyze-beyond-int64",
        ["analyze", "--task", "synthetic", "--arch", "rnn", "--embedding", "char", "--dim", "10" + "0" * 20],
        "--dim 1" + "0" * 20,
    ),
]  # models or data that cannot fit in memory
MALFORMED_CASES: list[Case] = [  # data files whose structure is broken (quoting), or that hold a single class
    Case(
        "malformed-runaway-quote-csv",
        [*DISTILL_OUT, *CUSTOM, "--data", "d.csv"],
        "d.csv:4: malformed quoting",
        {"d.csv": CSV_RUNAWAY},
    ),
    Case(
        "malformed-runaway-quote-dir",
        [*DISTILL_OUT, *CUSTOM, "--data", "dd"],
        "train.csv:4: malformed quoting",
        {"dd/train.csv": _file(CSV_RUNAWAY), "dd/dev.csv": CSV_OK},
    ),
    Case(
        "malformed-most-rows-lost-csv",
        [*DISTILL_OUT, *CUSTOM, "--data", "d.csv"],
        "d.csv: most rows are unusable, refusing to go on with what is left: 10/40 rows kept",
        {"d.csv": CSV_MOSTLY_BROKEN},
    ),
    Case(
        "malformed-most-rows-lost-tsv",
        [*DISTILL_OUT, *CUSTOM, "--data", "d.tsv"],
        "d.tsv: most rows are unusable, refusing to go on with what is left: 10/30 rows kept",
        {"d.tsv": TSV_MOSTLY_BROKEN},
    ),
    Case(
        "malformed-single-class-csv",
        [*DISTILL_OUT, *CUSTOM, "--data", "d.csv"],
        "d.csv: the training split holds a single class ('pos'",
        {"d.csv": CSV_ONE_CLASS},
    ),
    Case(
        "malformed-single-class-dir",
        [*DISTILL_OUT, *CUSTOM, "--data", "dd"],
        "train.csv: the training split holds a single class ('pos'",
        {"dd/train.csv": _file(CSV_ONE_CLASS), "dd/dev.csv": CSV_OK},
    ),
    Case(
        "malformed-single-class-glue",
        [*DISTILL_OUT, "--task", "sst2", "--data", "glue"],
        "train.tsv: the training split holds a single class ('positive'",
        {"glue/SST-2/train.tsv": _file(GLUE_ONE_CLASS), "glue/SST-2/dev.tsv": GLUE_DEV},
    ),
    Case(
        "malformed-single-class-teacher-init",
        ["teacher", "init-small", *CUSTOM, "--data", "d.csv", "--output", "t"],
        "the training split holds a single class",
        {"d.csv": CSV_ONE_CLASS},
    ),
]
NONFINITE_CASES: list[Case] = [  # NaN / inf in files and options, options out of range
    Case(
        "nf-logits-nan-npy",
        [*DISTILL_LOGITS, "l.npy"],
        "l.npy: teacher logits are not finite: row 0",
        {"l.npy": _npy(LOGITS_NAN)},
    ),
    Case(
        "nf-logits-inf-parquet",
        [*DISTILL_LOGITS, "l.parquet"],
        "l.parquet: teacher logits are not finite: row 3 (counting from 0, key 'train:3')",
        {"l.parquet": _logits_parquet(LOGITS_INF)},
    ),
    Case(
        "nf-logits-ragged-parquet",
        [*DISTILL_LOGITS, "l.parquet"],
        "l.parquet: column 'logits' must hold",
        {"l.parquet": _logits_parquet([[0.5, -0.5], [1.0]])},
    ),
    *(
        _option_case(name, [*DISTILL, "--task", "synthetic"], option, value)
        for name, option, value in (
            ("distill-lr-inf", "--lr", "inf"),
            ("distill-lr-nan", "--lr", "nan"),
            ("distill-lr-zero", "--lr", "0"),
            ("distill-lr-negative", "--lr", "-0.1"),
            ("distill-weight-decay-negative", "--weight-decay", "-1e-5"),
            ("distill-weight-decay-inf", "--weight-decay", "inf"),
            ("distill-seed-negative", "--seed", "-1"),
            ("distill-seed-too-large", "--seed", str(2**32)),
            ("distill-alpha-above-one", "--alpha", "1.5"),
            ("distill-alpha-nan", "--alpha", "nan"),
            ("distill-dropout-one", "--dropout", "1"),
            ("distill-hidden-zero", "--hidden", "0"),
            ("distill-batch-size-zero", "--batch-size", "0"),
            ("distill-patience-zero", "--patience", "0"),
            ("distill-max-epochs-negative", "--max-epochs", "-3"),
            ("distill-dim-zero", "--dim", "0"),
            ("distill-vocab-size-negative", "--vocab-size", "-100"),
            ("distill-dev-fraction-nan", "--dev-fraction", "nan"),
            ("distill-split-seed-negative", "--split-seed", "-2"),
        )
    ),
    Case("nf-distill-temperature-zero", [*DISTILL, "--task", "synthetic", "--temperature", "0"], "--temperature"),
    Case("nf-distill-temperature-inf", [*DISTILL, "--task", "synthetic", "--temperature", "inf"], "'inf'"),
    Case("nf-distill-device-tpu", [*DISTILL, "--task", "synthetic", "--device", "tpu"], "unknown device 'tpu'"),
    Case(
        "nf-distill-teacher-device-tpu",
        [*DISTILL, "--task", "synthetic", "--teacher-device", "tpu"],
        "unknown device 'tpu'",
    ),
    Case("nf-distill-device-cuda-x", [*DISTILL, "--task", "synthetic", "--device", "cuda:x"], "'cuda:x'"),
    *(
        _option_case(name, ["compress", "s.pt"], option, value)
        for name, option, value in (
            ("compress-lr-inf", "--lr", "inf"),
            ("compress-alpha-negative", "--alpha", "-0.5"),
            ("compress-temperature-nan", "--temperature", "nan"),
            ("compress-seed-negative", "--seed", "-1"),
            ("compress-ramp-zero", "--ramp", "0"),
            ("compress-score-lr-inf", "--score-lr", "inf"),
            ("compress-prune-epochs-negative", "--prune-epochs", "-1"),
            ("compress-calibration-batches-zero", "--calibration-batches", "0"),
            ("compress-sparsity-nan", "--sparsity", "nan"),
            ("compress-sparsity-group-inf", "--sparsity", "encoder=inf"),
            ("compress-threshold-negative", "--threshold", "-0.5"),
        )
    ),
    *(
        _option_case(name, FINETUNE, option, value)
        for name, option, value in (
            ("finetune-lr-inf", "--lr", "inf"),
            ("finetune-weight-decay-negative", "--weight-decay", "-0.01"),
            ("finetune-warmup-ratio-one", "--warmup-ratio", "1"),
            ("finetune-seed-negative", "--seed", "-1"),
            ("finetune-epochs-zero", "--epochs", "0"),
            ("finetune-eval-every-negative", "--eval-every", "-5"),
            ("finetune-max-length-zero", "--max-length", "0"),
        )
    ),
    Case("nf-finetune-device-tpu", [*FINETUNE, "--device", "tpu"], "unknown device 'tpu'"),
    _option_case("logits-batch-size-zero", LOGITS, "--batch-size", "0"),
    _option_case("init-small-heads-zero", ["teacher", "init-small", "--task", "synthetic"], "--heads", "0"),
    *(
        _option_case(name, THESEUS, option, value)
        for name, option, value in (
            ("theseus-p-inf", "--p", "inf"),
            ("theseus-b-above-one", "--b", "2"),
            ("theseus-k-zero", "--k", "0"),
            ("theseus-replace-rate-one", "--replace-rate", "1"),
            ("theseus-replacing-fraction-nan", "--replacing-fraction", "nan"),
            ("theseus-lr-nan", "--lr", "nan"),
            ("theseus-seed-negative", "--seed", "-1"),
        )
    ),
    *(
        _option_case(name, BERTVISION, option, value)
        for name, option, value in (
            ("bertvision-lr-inf", "--lr", "inf"),
            ("bertvision-dropout-negative", "--dropout", "-0.1"),
            ("bertvision-weight-decay-nan", "--weight-decay", "nan"),
            ("bertvision-max-length-zero", "--max-length", "0"),
        )
    ),
    *(
        _option_case(name, AUGMENT, option, value)
        for name, option, value in (
            ("augment-p-nan", "--p", "nan"),
            ("augment-ratio-zero", "--ratio", "0"),
            ("augment-n-zero", "--n", "0"),
            ("augment-workers-zero", "--workers", "0"),
            ("augment-seed-negative", "--seed", "-1"),
        )
    ),
    _option_case(
        "wordvectors-epochs-zero", ["wordvectors", "--task", "synthetic", "--output", "v.bin"], "--epochs", "0"
    ),
    _option_case("analyze-vocab-size-zero", ["analyze", "--arch", "ffn", "--task", "synthetic"], "--vocab-size", "0"),
]
OUTPUT_PLACE_CASES: list[Case] = [  # outputs that cannot be written where asked
    Case(
        "sweep-database-is-a-directory",
        ["sweep", "run", "s.yaml"],
        "d is a directory",
        {"s.yaml": SPEC_OK + "database: d\n", "d": _mkdir},
    ),
    *(  # the analysis commands check where they write before they read the database
        Case(f"place-{name}-{where}", [*argv, "--output", out], f"--output {out}", files, env)
        for name, argv in (
            ("query", ["query", "--db", "f.duckdb", "SELECT 1", "--format", "csv"]),
            ("query-parquet", ["query", "--db", "f.duckdb", "SELECT 1", "--format", "parquet"]),
            ("report", ["report", "s", "--db", "f.duckdb"]),
            ("db-export", ["db", "export", "--db", "f.duckdb"]),
            ("export-trial", ["export", "d-1", "--db", "f.duckdb"]),
            ("export-model", ["export", "--model", "student.pt"]),
        )
        for where, out, files, env in (
            ("under-a-file", "x/sub", {**GOOD_DB, "x": "a file", "student.pt": _copy("student")}, {}),
            ("no-free-space", "o", {**GOOD_DB, "student.pt": _copy("student")}, {"FEATHERWEIGHT_MIN_FREE_MB": "1e15"}),
        )
    ),
    *(
        Case(f"place-{name}-is-a-file", [*argv, "--output", "x"], "--output x", {**GOOD_DB, "x": "a file"})
        for name, argv in (
            ("report", ["report", "s", "--db", "f.duckdb"]),
            ("db-export", ["db", "export", "--db", "f.duckdb"]),
            ("export-trial", ["export", "d-1", "--db", "f.duckdb"]),
        )
    ),
    Case(
        "place-query-is-a-directory",
        ["query", "--db", "f.duckdb", "SELECT 1", "-o", "d"],
        "--output d",
        {**GOOD_DB, "d": _mkdir},
    ),
    Case(
        "place-report-default-under-a-file",
        ["report", "s", "--db", "f.duckdb"],
        "reports/s",
        {**GOOD_DB, "reports": "a file"},
    ),
]

CASES = (
    SPEC_CASES
    + DATA_CASES
    + CHECKPOINT_CASES
    + TEACHER_CASES
    + AUGMENTED_CASES
    + CLI_CASES
    + OUTPUT_CASES
    + DATABASE_CASES
    + UNREADABLE_CASES
    + SECURITY_CASES
    + FOREIGN_DB_CASES
    + QUERY_LIMIT_CASES
    + DUPLICATE_KEY_CASES
    + IMPOSSIBLE_SIZE_CASES
    + MALFORMED_CASES
    + NONFINITE_CASES
    + OUTPUT_PLACE_CASES
)
REAL_SUBPROCESS = ("spec-yaml-mapping", "ckpt-truncated-short", "cli-dim-not-int", "data-bad-bytes")


def test_the_corpus_is_large_and_ids_are_unique():
    assert len(CASES) >= 80
    assert len({c.id for c in CASES}) == len(CASES)


def _listing(d: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(d)), p.stat().st_size if p.is_file() else -1) for p in d.rglob("*"))


def _setup(case: Case, d: Path, assets: dict[str, Path]) -> None:
    (d / "home").mkdir()
    for name, make in case.files.items():
        path = d / name
        if callable(make):
            make(path, assets)
        elif isinstance(make, bytes):
            path.write_bytes(make)
        else:
            path.write_text(make)


def _check(case: Case, rc: int, out: str, err: str, before, after) -> None:
    lines = err.splitlines()
    assert rc == 2, f"exit {rc}\n{err}"
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert case.names in lines[0], lines[0]
    assert after == before, "the command left files behind"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_error_line(case, runner, assets, tmp_path):
    _setup(case, tmp_path, assets)
    before = _listing(tmp_path)
    env = {"HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "home"), **case.env}
    rc, out, err = runner.run(case.argv, tmp_path, env)
    _check(case, rc, out, err, before, _listing(tmp_path))


@pytest.mark.parametrize("case", [c for c in CASES if c.id in REAL_SUBPROCESS], ids=REAL_SUBPROCESS)
def test_bad_input_through_python_m_sweep_cli(case, assets, tmp_path):
    _setup(case, tmp_path, assets)
    before = _listing(tmp_path)
    env = {**_env(), "HOME": str(tmp_path / "home"), **case.env}
    p = subprocess.run(
        [sys.executable, "-m", "sweep.cli", *case.argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    _check(case, p.returncode, p.stdout, p.stderr, before, _listing(tmp_path))
