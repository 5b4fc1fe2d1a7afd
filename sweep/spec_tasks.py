"""The ``grid:`` and ``tasks:`` sections of a sweep spec: the student grid, and per task its data, custom definition,
teacher, bootstrap data, baselines and grid overrides."""

from __future__ import annotations

import copy
import itertools
import math
from pathlib import Path
from typing import Any

from featherweight_core.data.tasks import task_from_options
from featherweight_core.errors import UserError
from featherweight_core.teacher.augment import AugmentConfig
from featherweight_core.teacher.outputs import outputs_fingerprint, read_teacher_outputs
from featherweight_core.vocab import (
    ARCHS,
    AUGMENT_MODES,
    DEFAULT_VOCAB_SIZE,
    EMBEDDINGS,
    TEACHER_OUTPUT_LAYOUTS,
    TEACHER_PRECISIONS,
)
from sweep.spec_values import (
    SpecError,
    check_choice,
    check_int,
    check_keys,
    check_list,
    check_number,
    merge_defaults,
    short_repr,
)

GRID_KEYS = {
    "archs": ["bilstm"],
    "embeddings": ["bpe"],
    "dims": [25],
    "vocab_sizes": [DEFAULT_VOCAB_SIZE],
    "alphas": [1.0],
    "bootstrap": [False],
    "seeds": [0],
    "dims_by_embedding": {},  # e.g. {char: [100]}: the thesis ran char only at dim 100
}
TASK_KEYS = {"data": None, "data_options": {}, "teacher": None, "bootstrap": None, "grid": {}, "baselines": []}
# A custom task's definition (featherweight_core.data.tasks.task_from_options validates them; see docs/tasks.md)
TASK_DEFINITION_KEYS = ("text_columns", "label_column", "labels", "metric", "split", "encoding", "on_bad_bytes")
# tasks.T.teacher as a mapping: the teacher stage (sweep.study) fine-tunes ``model`` with ``finetune``
TEACHER_KEYS = {"model": None, "finetune": None}
# tasks.T.teacher as a mapping with outputs: a teacher you cannot run, its outputs in file(s) (featherweight_core.teacher.outputs)
FILE_TEACHER_KEYS = {
    "outputs": None,
    "layout": "auto",
    "allow_missing": False,
    "name": None,
    "params": None,
    "disk_bytes": None,
    "gzip_bytes": None,
}
FINETUNE_KEYS = ("epochs", "lr", "batch_size", "max_length", "precision", "seed", "max_train_examples")
# tasks.T.bootstrap as a mapping: n, p, k, ratio, seed (embedding mode, built on the driver as before) or, with any of
# mode / mlm / shards (or a teacher mapping), the bootstrap stage in parallel Ray tasks
BOOTSTRAP_KEYS = ("n", "p", "k", "ratio", "seed")
STUDY_BOOTSTRAP_KEYS = ("mode", "mlm", "shards")
BASELINE_KEYS = {"name": None, "score": None, "params": None, "disk_bytes": None, "gzip_bytes": None, "note": None}


def validate_grid(g: dict, where: str) -> dict:
    g["archs"] = [
        check_choice(a, ARCHS, f"{where}.archs[{i}]") for i, a in enumerate(check_list(g["archs"], f"{where}.archs"))
    ]
    g["embeddings"] = [
        check_choice(e, EMBEDDINGS, f"{where}.embeddings[{i}]")
        for i, e in enumerate(check_list(g["embeddings"], f"{where}.embeddings"))
    ]
    g["dims"] = [check_int(d, f"{where}.dims[{i}]", 1) for i, d in enumerate(check_list(g["dims"], f"{where}.dims"))]
    g["vocab_sizes"] = [
        check_int(v, f"{where}.vocab_sizes[{i}]", 1)
        for i, v in enumerate(check_list(g["vocab_sizes"], f"{where}.vocab_sizes"))
    ]
    g["alphas"] = [
        check_number(a, f"{where}.alphas[{i}]", 0.0, 1.0)
        for i, a in enumerate(check_list(g["alphas"], f"{where}.alphas"))
    ]
    for i, b in enumerate(check_list(g["bootstrap"], f"{where}.bootstrap")):
        if not isinstance(b, bool):
            raise SpecError(f"{where}.bootstrap[{i}]: expected true or false, got {b!r}")
    g["seeds"] = [
        check_int(s, f"{where}.seeds[{i}]", 0) for i, s in enumerate(check_list(g["seeds"], f"{where}.seeds"))
    ]
    dbe = g["dims_by_embedding"]
    check_keys(dbe, dict.fromkeys(EMBEDDINGS), f"{where}.dims_by_embedding")
    for emb, dims in dbe.items():
        for i, d in enumerate(check_list(dims, f"{where}.dims_by_embedding.{emb}")):
            check_int(d, f"{where}.dims_by_embedding.{emb}[{i}]", 1)
    return g


def student_points(g: dict) -> list[tuple[str, str, int, int]]:
    """``(arch, embedding, dim, vocab_size)`` of a task's grid ``g`` in grid order, without the dims that
    ``dims_by_embedding`` leaves out: the students the grid trains (each for every alpha, bootstrap and seed)."""
    return [
        (arch, emb, dim, vocab)
        for arch, emb, dim, vocab in itertools.product(g["archs"], g["embeddings"], g["dims"], g["vocab_sizes"])
        if g["dims_by_embedding"].get(emb) is None or dim in g["dims_by_embedding"][emb]
    ]


def validate_tasks(given: dict, grid: dict, check_files: bool) -> dict[str, dict]:
    """The ``tasks:`` section (task name -> settings), each task filled in and checked against the validated
    top-level ``grid``."""
    tasks: dict[str, dict] = {}
    for tname, tcfg in given.items():
        where = f"tasks.{tname}"
        t = merge_defaults({**TASK_KEYS, **dict.fromkeys(TASK_DEFINITION_KEYS)}, tcfg, where)
        definition = {k: t.pop(k) for k in TASK_DEFINITION_KEYS if t[k] is not None}
        for k in TASK_DEFINITION_KEYS:
            t.pop(k, None)
        try:
            task_spec = task_from_options(tname, definition)
        except UserError as e:
            raise SpecError(
                f"{where}{'.' if definition and str(e).split(':')[0] in _option_paths(definition) else ': '}{e}"
            ) from None
        t.update(definition)
        if task_spec.custom and t["data"] in (None, "hub", "synthetic"):
            raise SpecError(
                f"{where}.data: custom task {tname!r} needs its data: a CSV/TSV file, a directory with"
                f" train and dev files, or hf:OWNER/NAME; got {t['data']!r}"
            )
        _validate_baselines(t["baselines"], f"{where}.baselines")
        if t["grid"]:
            check_keys(t["grid"], GRID_KEYS, f"{where}.grid")
            merged = validate_grid({**copy.deepcopy(grid), **t["grid"]}, f"{where}.grid")
            t["grid"] = {k: merged[k] for k in t["grid"]}
        check_keys(t["data_options"] or {}, {"n_train": None, "n_dev": None, "seed": None}, f"{where}.data_options")
        for k, v in (t["data_options"] or {}).items():
            check_int(v, f"{where}.data_options.{k}", 1 if k != "seed" else 0)
        if t["data_options"] and not tname.startswith("synthetic"):
            raise SpecError(f"{where}.data_options: only the synthetic tasks take data options")
        if tname.startswith("synthetic"):
            if t["data"] not in (None, "synthetic"):
                raise SpecError(f"{where}.data: task {tname!r} is generated; expected 'synthetic', got {t['data']!r}")
        elif not isinstance(t["data"], str | None):
            raise SpecError(f"{where}.data: expected a path, 'hub' or hf:OWNER/NAME, got {t['data']!r}")
        elif (
            t["data"] not in (None, "hub")
            and not t["data"].startswith("hf:")
            and check_files
            and not Path(t["data"]).expanduser().exists()
        ):
            expected = "a CSV/TSV file or a directory" if task_spec.custom else "'hub' or a local GLUE directory"
            raise SpecError(f"{where}.data: {t['data']!r} does not exist (expected {expected})")
        study = (isinstance(t["teacher"], dict) and file_teacher(t) is None) or (
            isinstance(t["bootstrap"], dict) and any(k in t["bootstrap"] for k in STUDY_BOOTSTRAP_KEYS)
        )
        if file_teacher(t) is not None:
            t["teacher"] = _validate_file_teacher(t["teacher"], task_spec, f"{where}.teacher", check_files)
            if isinstance(t["bootstrap"], dict) and any(k in t["bootstrap"] for k in STUDY_BOOTSTRAP_KEYS):
                raise SpecError(
                    f"{where}.bootstrap: a teacher given by its outputs takes bootstrap data as a file or as"
                    f" {{n, p, k, ratio, seed}} (embedding mode), got {short_repr(t['bootstrap'])}"
                )
            _validate_plain_teacher_and_bootstrap({**t, "teacher": None}, where, check_files)
        elif study:
            t["teacher"] = _validate_study_teacher(t["teacher"], f"{where}.teacher", check_files)
            t["bootstrap"] = _validate_study_bootstrap(t["bootstrap"], t["teacher"], f"{where}.bootstrap", check_files)
        else:
            _validate_plain_teacher_and_bootstrap(t, where, check_files)
        g = {**grid, **t["grid"]}
        if any(a < 1.0 for a in g["alphas"]) and not t["teacher"]:
            raise SpecError(
                f"{where}.teacher: alphas {g['alphas']} include values < 1, which distil from a teacher; set one"
            )
        if True in g["bootstrap"] and not t["bootstrap"]:
            raise SpecError(f"{where}.bootstrap: grid bootstrap includes true, but the task has no bootstrap data")
        tasks[tname] = t
    return tasks


def _validate_plain_teacher_and_bootstrap(t: dict, where: str, check_files: bool) -> None:
    """``teacher: DIR | small`` and ``bootstrap: FILE | {n, p, k, ratio, seed}``: built on the driver, as always."""
    if t["teacher"] is not None and t["teacher"] != "small":
        if not isinstance(t["teacher"], str):
            raise SpecError(
                f"{where}.teacher: expected a teacher directory, 'small' or {{model, finetune}}, got {t['teacher']!r}"
            )
        if check_files and not Path(t["teacher"]).expanduser().is_dir():
            raise SpecError(f"{where}.teacher: {t['teacher']!r} is not a directory (a fine-tuned HF teacher)")
    b = t["bootstrap"]
    if b is None:
        return
    if isinstance(b, dict):
        check_keys(b, dict.fromkeys((*BOOTSTRAP_KEYS, *STUDY_BOOTSTRAP_KEYS)), f"{where}.bootstrap")
        if "p" in b:
            check_number(b["p"], f"{where}.bootstrap.p", 0.0, 1.0)
        for key in ("n", "k"):
            if key in b:
                check_int(b[key], f"{where}.bootstrap.{key}", 1)
        if "ratio" in b:
            check_number(b["ratio"], f"{where}.bootstrap.ratio", 0.0, 1.0)
    elif not isinstance(b, str):
        raise SpecError(f"{where}.bootstrap: expected an augmented-data file or generation settings, got {b!r}")
    elif check_files and not Path(b).expanduser().is_file():
        raise SpecError(f"{where}.bootstrap: {b!r} is not a file (write one with `featherweight augment`)")


def file_teacher(t: dict) -> dict | None:
    """A task's teacher given by a file of its outputs (``{outputs: FILE, ...}``), or None."""
    teacher = t.get("teacher")
    return teacher if isinstance(teacher, dict) and "outputs" in teacher else None


def _validate_file_teacher(value: dict, task_spec, where: str, check_files: bool) -> dict:
    """``{outputs: FILE | [FILES], layout, allow_missing, name, params, disk_bytes, gzip_bytes}`` filled in; with
    ``check_files`` the files are read and checked against the task (columns, labels, values)."""
    t = merge_defaults(FILE_TEACHER_KEYS, value, where)
    files = t["outputs"] if isinstance(t["outputs"], list) else [t["outputs"]]
    if not files or not all(isinstance(f, str) and f.strip() for f in files):
        raise SpecError(
            f"{where}.outputs: expected a file of teacher outputs (.parquet, .csv, .tsv, .jsonl) or a list of them,"
            f" got {short_repr(t['outputs'])}"
        )
    t["outputs"] = files if isinstance(t["outputs"], list) else files[0]
    check_choice(t["layout"], TEACHER_OUTPUT_LAYOUTS, f"{where}.layout")
    if not isinstance(t["allow_missing"], bool):
        raise SpecError(f"{where}.allow_missing: expected true or false, got {short_repr(t['allow_missing'])}")
    if t["name"] is not None and (not isinstance(t["name"], str) or not t["name"].strip()):
        raise SpecError(f"{where}.name: expected the teacher's name (text), got {short_repr(t['name'])}")
    for k in ("params", "disk_bytes", "gzip_bytes"):
        if t[k] is not None:
            check_int(t[k], f"{where}.{k}", 1)
    if check_files:
        try:
            read_teacher_outputs([Path(f).expanduser() for f in files], task_spec, t["layout"])
        except UserError as e:
            raise SpecError(f"{where}.outputs: {e}") from None
    return t


def teacher_outputs_fingerprint(t: dict, where: str) -> str:
    """The content fingerprint of a task's file teacher (its files and layout); ``where``: its key path."""
    teacher = file_teacher(t)
    files = teacher["outputs"] if isinstance(teacher["outputs"], list) else [teacher["outputs"]]
    try:
        return outputs_fingerprint([Path(f).expanduser() for f in files], teacher["layout"])
    except UserError as e:
        raise SpecError(f"{where}.outputs: {e}") from None


def _check_model_source(value: str, where: str) -> None:
    """A local model directory or a hub id that can be loaded here (offline: only one in the HF cache)."""
    from featherweight_core.teacher.config import TeacherError
    from featherweight_core.teacher.loading import resolve_model_source  # torch: only for a model to check

    try:
        resolve_model_source(value)
    except TeacherError as e:
        raise SpecError(f"{where}: {e}") from None


def _finetune_defaults(model: str) -> dict:
    from featherweight_core.teacher.config import TeacherConfig  # torch: only for a teacher stage
    from featherweight_core.teacher.smallbert import SMALL_TEACHER_FINETUNE

    cfg = SMALL_TEACHER_FINETUNE if model == "small" else TeacherConfig()
    return {k: getattr(cfg, k) for k in FINETUNE_KEYS}


def _validate_study_teacher(value: Any, where: str, check_files: bool) -> dict | None:
    """``{model: small | DIR | hub id, finetune: {...} | null}``, filled in: ``finetune`` null only for a directory
    that already holds a fine-tuned teacher. The strings ``small`` and ``DIR`` are the same as ``{model: ...}``."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"model": value}
    check_keys(value, TEACHER_KEYS, where)
    model = value.get("model")
    if not isinstance(model, str) or not model.strip():
        raise SpecError(
            f"{where}.model: expected 'small', a model directory or a hub id (e.g. roberta-large), got {model!r}"
        )
    ft = value.get("finetune")
    if ft is None and model == "small":
        ft = {}
    if ft is not None:
        w = f"{where}.finetune"
        ft = merge_defaults(_finetune_defaults(model), ft, w)
        check_int(ft["epochs"], f"{w}.epochs", 1)
        lr = ft["lr"]
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not math.isfinite(lr) or lr <= 0:
            raise SpecError(f"{w}.lr: expected a number > 0, got {lr!r}")
        check_int(ft["batch_size"], f"{w}.batch_size", 1)
        check_int(ft["max_length"], f"{w}.max_length", 8)
        check_choice(ft["precision"], TEACHER_PRECISIONS, f"{w}.precision")
        check_int(ft["seed"], f"{w}.seed", 0)
        if ft["max_train_examples"] is not None:
            check_int(ft["max_train_examples"], f"{w}.max_train_examples", 1)
    if model != "small" and check_files:
        path = Path(model).expanduser()
        if ft is None and not path.is_dir():
            raise SpecError(
                f"{where}.model: {model!r} is not a directory; a teacher without finetune settings must be"
                " a fine-tuned teacher directory (add finetune: {...} to fine-tune a hub model)"
            )
        _check_model_source(model, f"{where}.model")
    return {"model": model, "finetune": ft}


def _validate_study_bootstrap(value: Any, teacher: dict | None, where: str, check_files: bool) -> Any:
    """A file (as always), or ``{n, p, k, ratio, seed, mode, mlm, shards}`` filled in with AugmentConfig's defaults;
    generated by the bootstrap stage and labelled by the teacher."""
    if value is None:
        return None
    if teacher is None:
        raise SpecError(
            f"{where}: bootstrap examples are labelled by the teacher; set {where.rsplit('.', 1)[0]}.teacher too"
        )
    if isinstance(value, str):
        if check_files and not Path(value).expanduser().is_file():
            raise SpecError(f"{where}: {value!r} is not a file (write one with `featherweight augment`)")
        return value
    if not isinstance(value, dict):
        raise SpecError(f"{where}: expected an augmented-data file or generation settings, got {value!r}")
    d = AugmentConfig()
    b = merge_defaults(
        {
            "n": d.n,
            "p": d.p,
            "k": d.k,
            "ratio": d.ratio,
            "seed": d.seed,
            "mode": "embedding",
            "mlm": None,
            "shards": "auto",
        },
        value,
        where,
    )
    check_int(b["n"], f"{where}.n", 1)
    check_int(b["k"], f"{where}.k", 1)
    check_int(b["seed"], f"{where}.seed", 0)
    for key in ("p", "ratio"):
        v = b[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 1:
            raise SpecError(f"{where}.{key}: expected a number in (0, 1], got {v!r}")
    check_choice(b["mode"], AUGMENT_MODES, f"{where}.mode")
    if b["shards"] != "auto" and (isinstance(b["shards"], bool) or not isinstance(b["shards"], int) or b["shards"] < 1):
        raise SpecError(f"{where}.shards: expected 'auto' or an integer >= 1, got {b['shards']!r}")
    if b["mode"] == "embedding":
        if b["mlm"] is not None:
            raise SpecError(f"{where}.mlm: only mode fill-mask uses a masked LM, got {b['mlm']!r} with mode embedding")
        return b
    if b["mlm"] is None:
        b["mlm"] = "teacher"
    if not isinstance(b["mlm"], str) or not b["mlm"].strip():
        raise SpecError(f"{where}.mlm: expected 'teacher', a masked-LM directory or a hub id, got {b['mlm']!r}")
    if b["mlm"] == "teacher" and teacher["model"] == "small":
        raise SpecError(
            f"{where}.mlm: 'teacher' needs a pre-trained teacher model; the small teacher has no masked"
            " LM (give mlm: DIR or a hub id, or use mode embedding)"
        )
    mlm = teacher["model"] if b["mlm"] == "teacher" else b["mlm"]
    if check_files:
        _check_model_source(mlm, f"{where}.mlm")
    return b


def _option_paths(definition: dict) -> set[str]:
    """The key paths a task definition error may start with (``metric``, ``split.seed``, ...)."""
    out = set(definition)
    for k, v in definition.items():
        if isinstance(v, dict):
            out |= {f"{k}.{sub}" for sub in v}
    return out


def _validate_baselines(baselines: Any, where: str) -> None:
    """User reference points: ``[{name, score, params?, disk_bytes?, gzip_bytes?, note?}, ...]``."""
    if not isinstance(baselines, list):
        raise SpecError(
            f"{where}: expected a list of {{name, score, params, disk_bytes, gzip_bytes}}, got {baselines!r}"
        )
    for i, b in enumerate(baselines):
        w = f"{where}[{i}]"
        check_keys(b, BASELINE_KEYS, w)
        if not isinstance(b.get("name"), str) or not b["name"]:
            raise SpecError(f"{w}.name: expected a non-empty name, got {b.get('name')!r}")
        check_number(b.get("score"), f"{w}.score", 0.0, 1.0)
        for k in ("params", "disk_bytes", "gzip_bytes"):
            if b.get(k) is not None:
                check_int(b[k], f"{w}.{k}", 1)
        if b.get("note") is not None and not isinstance(b["note"], str):
            raise SpecError(f"{w}.note: expected text, got {short_repr(b['note'])}")
