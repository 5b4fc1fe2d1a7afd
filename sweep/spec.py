"""Sweep specs: YAML files validated before Ray starts.

Every problem is reported as one line naming the key path and the bad value (``SpecError``); nothing is started or
written for an invalid spec. See ``sweeps/*.yaml`` for complete, commented examples and docs/sweeps.md for the
reference of every key.
"""

from __future__ import annotations

import copy
import inspect
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from featherweight_core.distill_config import TRAINING_SETTINGS
from featherweight_core.encoders import bpemb_files
from featherweight_core.errors import UserError
from featherweight_core.tasks import TaskSpec, task_from_options
from featherweight_core.vocab import (
    ARCHS,
    AUGMENT_MODES,
    BERTVISION_HEADS,
    BERTVISION_POOLINGS,
    BPEMB_DIMS,
    BPEMB_VOCAB_SIZES,
    DEFAULT_VOCAB_SIZE,
    EMBEDDINGS,
    IMPORTANCE_BITS,
    MODULE_GROUPS,
    PRUNE_METHODS,
    PRUNE_SCOPES,
    QUANT_PARTS,
    SIZE_MEASURES,
    TEACHER_COMPRESSION_METHODS,
    TEACHER_PRECISIONS,
    THESEUS_SCHEDULES,
)
from trainables.trial import DistillTrial, TeacherCompressionTrial

THESIS_SEEDS = (3201976, 8291959, 5111918, 2211933)


class SpecError(UserError, ValueError):
    """An invalid sweep spec; the message names the key and the value."""


# ---- the schema: key -> (type check, default). Nested dicts are their own schemas. -------------------------------

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
# training: every setting declared on the core's config (featherweight_core.distill_config), with its default
TRAINING_KEYS = {name: s.default for name, s in TRAINING_SETTINGS.items()}
RESOURCE_KEYS = {
    "cpus_per_trial": 1,
    "gpus_per_trial": 0,
    "max_concurrent": None,
    "num_cpus": None,
    "num_gpus": None,
    "pending_timeout_s": 600,
    # the whole-study stages (sweep.study): fine-tuning and labelling with the teacher, bootstrap shards
    "teacher_cpus": 1,
    "teacher_gpus": "auto",  # auto: 1 when the Ray cluster has a GPU, else 0
    "bootstrap_cpus": 1,
    "bootstrap_gpus": "auto",  # auto: fill-mask on a cluster with GPUs shares them among the shards, else 0
    # the teacher_compression stage's trials (Theseus, BERT-Vision)
    "teacher_compression_cpus": 1,
    "teacher_compression_gpus": "auto",  # auto: 1 per trial when the Ray cluster has a GPU, else 0
}
TASK_KEYS = {"data": None, "data_options": {}, "teacher": None, "bootstrap": None, "grid": {}, "baselines": []}
# A custom task's definition (featherweight_core.tasks.task_from_options validates them; see docs/tasks.md)
TASK_DEFINITION_KEYS = ("text_columns", "label_column", "labels", "metric", "split", "encoding", "on_bad_bytes")
# tasks.T.teacher as a mapping: the teacher stage (sweep.study) fine-tunes ``model`` with ``finetune``
TEACHER_KEYS = {"model": None, "finetune": None}
FINETUNE_KEYS = ("epochs", "lr", "batch_size", "max_length", "precision", "seed", "max_train_examples")
# tasks.T.bootstrap as a mapping: n, p, k, ratio, seed (embedding mode, built on the driver as before) or, with any of
# mode / mlm / shards (or a teacher mapping), the bootstrap stage in parallel Ray tasks
BOOTSTRAP_KEYS = ("n", "p", "k", "ratio", "seed")
STUDY_BOOTSTRAP_KEYS = ("mode", "mlm", "shards")
BASELINE_KEYS = {"name": None, "score": None, "params": None, "disk_bytes": None, "gzip_bytes": None, "note": None}
SEARCH_KEYS = {
    "num_samples": 8,
    "max_concurrent": 2,
    "seed": 0,
    "method": "magnitude",
    "scope": "local",
    "targets": {"embedding": [0.0, 0.6], "encoder": [0.0, 0.9], "classifier": [0.0, 0.6]},
    "finetune_epochs": 0,
}
QUANT_KEYS = {**{part: part != "static_classifier" for part in QUANT_PARTS}, "importance_bits": 16}
COMPRESS_KEYS = {"parents": "skyline", "size_measure": "gzip_bytes", "search": {}, "quantize": {}}
TOP_KEYS = {
    "name": None,
    "description": "",
    "storage": "runs",
    "database": None,
    "bpemb_dir": None,
    "cache_dir": None,
    "address": None,
    "tasks": None,
    "grid": {},
    "training": {},
    "resources": {},
    "compress": None,
    "report": None,  # {budgets: [32KB, ...]}: what `featherweight report` draws by default (_validate_report)
    "teacher_compression": None,  # {tasks, theseus: {...}, bertvision: {...}} (_validate_teacher_compression)
}

# ---- teacher_compression: a smaller transformer from each task's fine-tuned teacher ---------------------------------
# Per method: grid keys (a list or one value; the stage runs their product) and training keys (one value). A key left
# out is the core config's default (featherweight_core.theseus.TheseusConfig, bertvision.BertVisionConfig) and is
# not part of the trial's settings. Each entry: key -> (check, what the check expects).
TC_TOP_KEYS = {"tasks": None, "theseus": None, "bertvision": None}
_TC_COMMON_GRID = ("seeds", "quantize")
TC_GRID_KEYS = {
    "theseus": ("replace_rate", "schedule", "p", "replacing_fraction", "k", "b", "train_classifier", *_TC_COMMON_GRID),
    "bertvision": ("layers", "head", "adapter_size", "pooling", *_TC_COMMON_GRID),
}
TC_TRAINING_KEYS = {
    "theseus": ("epochs", "lr", "batch_size", "max_length", "max_train_examples", "warmup_ratio", "precision"),
    "bertvision": ("epochs", "lr", "batch_size", "max_length", "max_train_examples", "dropout"),
}
TC_ALIASES = {"theseus": {"r": "replace_rate"}, "bertvision": {"k": "layers"}}
# Knobs of one schedule only: the other schedule's values are left out of its trials (no duplicate trials that
# differ only in a knob they do not use)
THESEUS_SCHEDULE_KNOBS = {"constant": ("p", "replacing_fraction"), "linear": ("k", "b")}


def _check_keys(section: dict, allowed: dict, where: str) -> None:
    if not isinstance(section, dict):
        raise SpecError(f"{where or 'spec'}: expected a mapping, got {type(section).__name__} {section!r}")
    for k in section:
        if k not in allowed:
            raise SpecError(f"{where + '.' if where else ''}{k}: unknown key; expected one of {sorted(allowed)}")


def _merge(defaults: dict, given: dict | None, where: str) -> dict:
    given = {} if given is None else given
    _check_keys(given, defaults, where)
    out = copy.deepcopy(defaults)
    out.update(copy.deepcopy(given))
    return out


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list) or not value:
        raise SpecError(f"{where}: expected a non-empty list, got {value!r}")
    return value


def _int(value: Any, where: str, lo: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"{where}: expected an integer, got {value!r}")
    if lo is not None and value < lo:
        raise SpecError(f"{where}: {value} must be >= {lo}")
    return value


def _num(value: Any, where: str, lo: float | None = None, hi: float | None = None, hi_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpecError(f"{where}: expected a finite number, got {value!r}")
    if hi is None and lo is not None and value < lo:
        raise SpecError(f"{where}: {value} must be >= {lo}")
    if (lo is not None and value < lo) or (hi is not None and (value >= hi if hi_open else value > hi)):
        raise SpecError(f"{where}: {value} is outside [{lo}, {hi}{')' if hi_open else ']'}")
    return float(value)


def _choice(value: Any, choices: tuple, where: str) -> Any:
    if value not in choices:
        raise SpecError(f"{where}: {value!r} is not one of {list(choices)}")
    return value


def _validate_grid(g: dict, where: str) -> dict:
    g["archs"] = [_choice(a, ARCHS, f"{where}.archs[{i}]") for i, a in enumerate(_list(g["archs"], f"{where}.archs"))]
    g["embeddings"] = [
        _choice(e, EMBEDDINGS, f"{where}.embeddings[{i}]")
        for i, e in enumerate(_list(g["embeddings"], f"{where}.embeddings"))
    ]
    g["dims"] = [_int(d, f"{where}.dims[{i}]", 1) for i, d in enumerate(_list(g["dims"], f"{where}.dims"))]
    g["vocab_sizes"] = [
        _int(v, f"{where}.vocab_sizes[{i}]", 1) for i, v in enumerate(_list(g["vocab_sizes"], f"{where}.vocab_sizes"))
    ]
    g["alphas"] = [
        _num(a, f"{where}.alphas[{i}]", 0.0, 1.0) for i, a in enumerate(_list(g["alphas"], f"{where}.alphas"))
    ]
    for i, b in enumerate(_list(g["bootstrap"], f"{where}.bootstrap")):
        if not isinstance(b, bool):
            raise SpecError(f"{where}.bootstrap[{i}]: expected true or false, got {b!r}")
    g["seeds"] = [_int(s, f"{where}.seeds[{i}]", 0) for i, s in enumerate(_list(g["seeds"], f"{where}.seeds"))]
    dbe = g["dims_by_embedding"]
    _check_keys(dbe, dict.fromkeys(EMBEDDINGS), f"{where}.dims_by_embedding")
    for emb, dims in dbe.items():
        for i, d in enumerate(_list(dims, f"{where}.dims_by_embedding.{emb}")):
            _int(d, f"{where}.dims_by_embedding.{emb}[{i}]", 1)
    return g


@dataclass
class SweepSpec:
    """A validated spec. ``raw`` is the spec with defaults filled in (stored in the database)."""

    name: str
    raw: dict
    path: Path | None = None
    tasks: dict[str, dict] = field(default_factory=dict)

    def task_spec(self, task: str) -> TaskSpec:
        """The task definition (a built-in task, or a custom one from the spec's task keys)."""
        t = self.tasks[task]
        return task_from_options(task, {k: t[k] for k in TASK_DEFINITION_KEYS if k in t})

    @property
    def storage(self) -> Path:
        return Path(self.raw["storage"]).expanduser().resolve()

    @property
    def database_as_written(self) -> str:
        """The database path as the spec gives it (default: ``<storage>/featherweight.duckdb``), unresolved."""
        return self.raw["database"] or str(Path(self.raw["storage"]) / "featherweight.duckdb")

    @property
    def database(self) -> Path:
        return Path(self.database_as_written).expanduser().resolve()

    @property
    def journal_path(self) -> Path:
        """Where every trial record is appended before the database sees it (see db.journal)."""
        from db.journal import JOURNAL_NAME

        return self.storage / self.name / JOURNAL_NAME

    @property
    def training(self) -> dict:
        return self.raw["training"]

    @property
    def resources(self) -> dict:
        return self.raw["resources"]

    @property
    def compress(self) -> dict | None:
        return self.raw["compress"]

    @property
    def teacher_compression(self) -> dict | None:
        return self.raw.get("teacher_compression")

    def teacher_compression_size(self) -> int:
        """How many teacher-compression trials the section asks for (grid points of every method, times its
        tasks), before any teacher is looked at."""
        tc = self.teacher_compression
        if not tc:
            return 0
        return len(tc["tasks"]) * sum(
            len(teacher_compression_grid(m, tc[m])) for m in TEACHER_COMPRESSION_METHODS if m in tc
        )

    def teacher_compression_trials(self, teachers: dict[str, str | Path]) -> list[TeacherCompressionTrial]:
        """The teacher-compression grid of every task in ``teachers`` (task -> its fine-tuned teacher directory;
        tasks of the section missing from it are left out: their teacher does not exist yet). Checks the grid against
        each teacher's layer count (a BERT-Vision ``layers`` above it, a Theseus ``replace_rate`` that does not divide
        it: :class:`SpecError`) and hashes the teacher's files into the trials (a retrained teacher: new trials)."""
        tc = self.teacher_compression
        if not tc:
            return []
        from featherweight_core.softtargets import teacher_fingerprint

        out: dict[str, TeacherCompressionTrial] = {}
        for task in tc["tasks"]:
            if task not in teachers:
                continue
            tdir = Path(teachers[task])
            layers = teacher_layers(tdir)
            fingerprint = teacher_fingerprint(tdir)
            ts = self.task_spec(task)
            definition = ts.definition_fingerprint() if ts.custom else None
            check_grid_against_teacher(tc, layers, task, tdir)
            for method in TEACHER_COMPRESSION_METHODS:
                if method not in tc:
                    continue
                for seed, quantize, settings in teacher_compression_grid(method, tc[method]):
                    trial = TeacherCompressionTrial(
                        task=task,
                        method=method,
                        seed=seed,
                        quantize=quantize,
                        settings=settings,
                        teacher_fingerprint=fingerprint,
                        task_definition=definition,
                    )
                    out.setdefault(trial.trial_id, trial)
        return list(out.values())

    def is_study(self, task: str) -> bool:
        """Whether the task's teacher / bootstrap data are built by the stages of :mod:`sweep.study` (a teacher
        mapping, or bootstrap settings with mode / mlm / shards) rather than on the driver."""
        t = self.tasks[task]
        return isinstance(t["teacher"], dict) or (isinstance(t["bootstrap"], dict) and "mode" in t["bootstrap"])

    def grid_for(self, task: str) -> dict:
        g = copy.deepcopy(self.raw["grid"])
        g.update(self.tasks[task].get("grid") or {})
        return g

    def distill_trials(self) -> list[DistillTrial]:
        """The full stage-1 grid, one :class:`DistillTrial` per point (char ignores vocab size, so the product's
        duplicates run once)."""
        training = {k: self.training[k] for k in TRAINING_SETTINGS}
        out: dict[str, DistillTrial] = {}
        for task in self.tasks:
            g = self.grid_for(task)
            ts = self.task_spec(task)
            definition = ts.definition_fingerprint() if ts.custom else None
            for (arch, emb, dim, vocab), alpha, boot, seed in itertools.product(
                _student_points(g), g["alphas"], g["bootstrap"], g["seeds"]
            ):
                trial = DistillTrial(
                    task=task,
                    arch=arch,
                    embedding=emb,
                    emb_dim=dim,
                    vocab_size=vocab,
                    alpha=alpha,
                    bootstrap=boot,
                    seed=seed,
                    task_definition=definition,
                    **training,
                )
                out.setdefault(trial.trial_id, trial)
        return list(out.values())


def _student_points(g: dict) -> list[tuple[str, str, int, int]]:
    """``(arch, embedding, dim, vocab_size)`` of a task's grid ``g`` in grid order, without the dims that
    ``dims_by_embedding`` leaves out: the students the grid trains (each for every alpha, bootstrap and seed)."""
    return [
        (arch, emb, dim, vocab)
        for arch, emb, dim, vocab in itertools.product(g["archs"], g["embeddings"], g["dims"], g["vocab_sizes"])
        if g["dims_by_embedding"].get(emb) is None or dim in g["dims_by_embedding"][emb]
    ]


def _short(value: Any) -> str:
    """A value for an error line: its repr, cut to 80 characters."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def check_sweep_name(name: Any, where: str) -> str:
    """A sweep's name is a directory under the storage: letters, digits, '-', '_' and '.', not '.' or '..' (so
    ``<storage>/<name>`` never leaves the storage). SpecError naming ``where`` and the value otherwise."""
    if not isinstance(name, str) or not name or name in (".", "..") or not all(c.isalnum() or c in "-_." for c in name):
        raise SpecError(f"{where}: expected a non-empty name of letters, digits, '-', '_' or '.', got {name!r}")
    return name


def validate(raw: Any, path: Path | None = None, check_files: bool = True) -> SweepSpec:
    """Validate a parsed spec and fill defaults. Raises SpecError naming the first bad key and value."""
    spec = _merge(TOP_KEYS, raw, "")
    name = check_sweep_name(spec["name"], "name")
    if not isinstance(spec["description"], str | None):
        raise SpecError(f"description: expected text, got {_short(spec['description'])}")
    if not spec["tasks"]:
        raise SpecError(f"tasks: expected a mapping of task names to settings, got {spec['tasks']!r}")
    _check_keys(spec["tasks"], {t: None for t in spec["tasks"]}, "tasks")
    spec["grid"] = _validate_grid(_merge(GRID_KEYS, spec["grid"], "grid"), "grid")
    tasks: dict[str, dict] = {}
    for tname, tcfg in spec["tasks"].items():
        where = f"tasks.{tname}"
        t = _merge({**TASK_KEYS, **dict.fromkeys(TASK_DEFINITION_KEYS)}, tcfg, where)
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
            _check_keys(t["grid"], GRID_KEYS, f"{where}.grid")
            merged = _validate_grid({**copy.deepcopy(spec["grid"]), **t["grid"]}, f"{where}.grid")
            t["grid"] = {k: merged[k] for k in t["grid"]}
        _check_keys(t["data_options"] or {}, {"n_train": None, "n_dev": None, "seed": None}, f"{where}.data_options")
        for k, v in (t["data_options"] or {}).items():
            _int(v, f"{where}.data_options.{k}", 1 if k != "seed" else 0)
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
        study = isinstance(t["teacher"], dict) or (
            isinstance(t["bootstrap"], dict) and any(k in t["bootstrap"] for k in STUDY_BOOTSTRAP_KEYS)
        )
        if study:
            t["teacher"] = _validate_study_teacher(t["teacher"], f"{where}.teacher", check_files)
            t["bootstrap"] = _validate_study_bootstrap(t["bootstrap"], t["teacher"], f"{where}.bootstrap", check_files)
        else:
            _validate_plain_teacher_and_bootstrap(t, where, check_files)
        g = {**spec["grid"], **t["grid"]}
        if any(a < 1.0 for a in g["alphas"]) and not t["teacher"]:
            raise SpecError(
                f"{where}.teacher: alphas {g['alphas']} include values < 1, which distil from a teacher; set one"
            )
        if True in g["bootstrap"] and not t["bootstrap"]:
            raise SpecError(f"{where}.bootstrap: grid bootstrap includes true, but the task has no bootstrap data")
        tasks[tname] = t
    spec["tasks"] = tasks
    spec["training"] = _merge(TRAINING_KEYS, spec["training"], "training")
    for key, value in spec["training"].items():
        problem = TRAINING_SETTINGS[key].error(value)
        if problem:
            raise SpecError(f"training.{key}: {problem}")
    res = spec["resources"] = _merge(RESOURCE_KEYS, spec["resources"], "resources")
    _num(res["cpus_per_trial"], "resources.cpus_per_trial", 0.01)
    _num(res["gpus_per_trial"], "resources.gpus_per_trial", 0.0)
    if _num(res["pending_timeout_s"], "resources.pending_timeout_s") <= 0:
        raise SpecError(f"resources.pending_timeout_s: {res['pending_timeout_s']} must be > 0 (seconds)")
    for key in ("max_concurrent", "num_cpus", "num_gpus"):
        if res[key] is not None:
            _int(res[key], f"resources.{key}", 0 if key == "num_gpus" else 1)
    for key in ("teacher_cpus", "bootstrap_cpus"):
        _num(res[key], f"resources.{key}", 0.01)
    for key in ("teacher_gpus", "bootstrap_gpus"):
        _gpus(res[key], f"resources.{key}")
    if spec["compress"] is not None:
        c = spec["compress"] = _merge(COMPRESS_KEYS, spec["compress"], "compress")
        p = c["parents"]
        if isinstance(p, dict):
            _check_keys(p, {"top_k": None, "trials": None}, "compress.parents")
            if len(p) != 1:
                raise SpecError(f"compress.parents: give exactly one of top_k or trials, got {p!r}")
            if "top_k" in p:
                _int(p["top_k"], "compress.parents.top_k", 1)
            else:
                for i, tid in enumerate(_list(p["trials"], "compress.parents.trials")):
                    if not isinstance(tid, str):
                        raise SpecError(f"compress.parents.trials[{i}]: expected a trial id string, got {tid!r}")
        elif p != "skyline":
            raise SpecError(f"compress.parents: expected 'skyline', {{top_k: N}} or {{trials: [...]}}, got {p!r}")
        _choice(c["size_measure"], SIZE_MEASURES, "compress.size_measure")
        s = c["search"] = _merge(SEARCH_KEYS, c["search"], "compress.search")
        _int(s["num_samples"], "compress.search.num_samples", 1)
        _int(s["max_concurrent"], "compress.search.max_concurrent", 1)
        _int(s["seed"], "compress.search.seed", 0)
        _int(s["finetune_epochs"], "compress.search.finetune_epochs", 0)
        _choice(s["method"], PRUNE_METHODS, "compress.search.method")
        _choice(s["scope"], PRUNE_SCOPES, "compress.search.scope")
        _check_keys(s["targets"], dict.fromkeys(MODULE_GROUPS), "compress.search.targets")
        for group, rng in s["targets"].items():
            w = f"compress.search.targets.{group}"
            if not isinstance(rng, list) or len(rng) != 2:
                raise SpecError(f"{w}: expected [low, high] sparsity bounds, got {rng!r}")
            lo, hi = (_num(x, w, 0.0, 1.0, hi_open=True) for x in rng)
            if lo > hi:
                raise SpecError(f"{w}: low {lo} > high {hi}")
        q = c["quantize"] = _merge(QUANT_KEYS, c["quantize"], "compress.quantize")
        for k, v in q.items():
            if k == "importance_bits":
                if isinstance(v, bool) or v not in IMPORTANCE_BITS:
                    raise SpecError(f"compress.quantize.importance_bits: expected an integer in 2..8 or 16, got {v!r}")
            elif not isinstance(v, bool):
                raise SpecError(f"compress.quantize.{k}: expected true or false, got {v!r}")
    if spec["report"] is not None:
        spec["report"] = _validate_report(spec["report"])
    _num(res["teacher_compression_cpus"], "resources.teacher_compression_cpus", 0.01)
    _gpus(res["teacher_compression_gpus"], "resources.teacher_compression_gpus")
    if spec["teacher_compression"] is not None:  # null, like compress: null, is no stage
        spec["teacher_compression"] = _validate_teacher_compression(spec["teacher_compression"], tasks)
    result = SweepSpec(name=name, raw=spec, path=path, tasks=tasks)
    if check_files:
        _check_bpemb(result)
    _check_sizes(result)
    return result


def _check_sizes(spec: SweepSpec) -> None:
    """What a trial will hold in memory must fit this machine's memory: every student of the grid (its parameters
    counted without building it, times 4 float32 copies for training: featherweight_core.measure) and the synthetic
    and bootstrap examples the spec asks to generate (a lower estimate per example). The error names the key and the
    value that does not fit."""
    from featherweight_core.data import load_synthetic
    from featherweight_core.measure import TooLargeError, check_examples_fit, check_student_fits, memory_bytes
    from featherweight_core.students import StudentConfig

    memory = memory_bytes()
    synthetic_defaults = {k: p.default for k, p in inspect.signature(load_synthetic).parameters.items()}
    for task, t in spec.tasks.items():
        where = f"tasks.{task}"
        opts = t["data_options"] or {}
        for key in ("n_train", "n_dev"):
            if key in opts:
                _fits(check_examples_fit, opts[key], f"{where}.data_options.{key}: {opts[key]}", memory)
        b = t["bootstrap"]
        if isinstance(b, dict):
            from featherweight_core.augment import AugmentConfig

            n, ratio = b.get("n", AugmentConfig.n), b.get("ratio", AugmentConfig.ratio)
            # each training example yields up to n x ratio variants; a task read from files has at least one
            base = opts.get("n_train", synthetic_defaults["n_train"]) if task.startswith("synthetic") else 1
            _fits(
                check_examples_fit,
                base + math.ceil(base * n * ratio),
                f"{where}.bootstrap.n: {n} ({base:,} training example(s) x {n} variants x ratio {ratio})",
                memory,
            )
    # each student the grid trains, counted once (not once per alpha, bootstrap and seed; char ignores vocab size)
    seen: set[tuple] = set()
    for task in spec.tasks:
        ts = spec.task_spec(task)
        g = spec.grid_for(task)
        for arch, emb, dim, vocab in _student_points(g):
            vocab = None if emb == "char" else vocab
            point = (ts.num_labels, ts.pair, arch, emb, dim, vocab)
            if point in seen:
                continue
            seen.add(point)

            def student(dim: int, vocab_size: int | None, arch: str = arch, emb: str = emb, ts: TaskSpec = ts):
                return StudentConfig(arch, emb, dim, ts.num_labels, pair=ts.pair, vocab_size=vocab_size)

            try:
                check_student_fits(student(dim, vocab), "", memory=memory)
            except TooLargeError as e:
                dims_key, dims = _grid_key(spec, task, "dims")
                vocab_key, vocab_sizes = _grid_key(spec, task, "vocab_sizes")
                # blame the vocabulary size when the dim fits with the grid's smallest or the default vocabulary
                try:
                    small = min(*g["vocab_sizes"], DEFAULT_VOCAB_SIZE)
                    check_student_fits(student(dim, small), "", memory=memory)
                    key = f"{vocab_key}[{vocab_sizes.index(vocab)}]: {vocab}"
                except TooLargeError:
                    key = f"{dims_key}[{dims.index(dim)}]: {dim}"
                context = f"task {task}, arch {arch}, embedding {emb}, dim {dim}"
                if emb != "char":
                    context += f", vocab size {vocab}"
                raise SpecError(f"{key} ({context}){e}") from None


def _fits(check, *args) -> None:
    """A size check of featherweight_core.measure, its error as a SpecError (the message names key and value)."""
    from featherweight_core.measure import TooLargeError

    try:
        check(*args)
    except TooLargeError as e:
        raise SpecError(str(e)) from None


def _grid_key(spec: SweepSpec, task: str, key: str) -> tuple[str, list]:
    """Where a task's grid list ``key`` comes from (``tasks.T.grid.dims`` or ``grid.dims``) and the list itself."""
    task_grid = spec.tasks[task].get("grid") or {}
    if key in task_grid:
        return f"tasks.{task}.grid.{key}", task_grid[key]
    return f"grid.{key}", spec.raw["grid"][key]


def _tc_value(method: str, key: str, value: Any, where: str) -> Any:
    """One value of a teacher_compression knob, normalised (numbers of float knobs as floats)."""
    if key in ("seeds",):
        return _int(value, where, 0)
    if key == "replace_rate":  # teacher layers per successor layer
        return _int(value, where, 2)
    if key in ("layers", "adapter_size", "epochs", "batch_size", "max_train_examples"):
        return _int(value, where, 1)
    if key == "max_length":
        return _int(value, where, 8)
    if key in ("quantize", "train_classifier"):
        if not isinstance(value, bool):
            raise SpecError(f"{where}: expected true or false, got {value!r}")
        return value
    if key == "schedule":
        return _choice(value, THESEUS_SCHEDULES, where)
    if key == "head":
        return _choice(value, BERTVISION_HEADS, where)
    if key == "pooling":
        return _choice(value, BERTVISION_POOLINGS, where)
    if key == "precision":
        return _choice(value, TEACHER_PRECISIONS, where)
    if key in ("k", "lr"):
        v = _num(value, where)
        if v <= 0:
            raise SpecError(f"{where}: expected a number > 0, got {value!r}")
        return v
    if key in ("p", "b", "replacing_fraction"):
        return _num(value, where, 0.0, 1.0)
    if key in ("dropout", "warmup_ratio"):
        return _num(value, where, 0.0, 1.0, hi_open=True)
    raise AssertionError(f"no check for teacher_compression.{method}.{key}")  # a key in the schema without a check


def _validate_tc_method(method: str, value: Any) -> dict:
    """``teacher_compression.<method>``: grid keys as a list or one value (stored as lists), training keys as one
    value; aliases (``r``, ``k``) become the key they stand for; keys left out stay out (the core's default)."""
    where = f"teacher_compression.{method}"
    value = {} if value is None else value
    aliases = TC_ALIASES[method]
    allowed = dict.fromkeys((*TC_GRID_KEYS[method], *TC_TRAINING_KEYS[method], *aliases))
    _check_keys(value, allowed, where)
    for alias, key in aliases.items():
        if alias in value and key in value:
            raise SpecError(f"{where}.{alias}: {alias} is another name of {key}; give one of them, not both")
    out: dict[str, Any] = {}
    for given, v in value.items():
        key = aliases.get(given, given)
        w = f"{where}.{given}"
        if key in TC_GRID_KEYS[method]:
            values = _list(v, w) if isinstance(v, list) else [v]
            checked = [
                _tc_value(method, key, x, f"{w}[{i}]" if isinstance(v, list) else w) for i, x in enumerate(values)
            ]
            out[key] = list(dict.fromkeys(checked))  # a value given twice runs once
        else:
            out[key] = _tc_value(method, key, v, w)
    out.setdefault("seeds", [0])
    out.setdefault("quantize", [False])
    for seed, quantize, settings in teacher_compression_grid(method, out):
        _check_core_config(method, settings, seed, quantize, where)
    return out


def _check_core_config(method: str, settings: dict, seed: int, quantize: bool, where: str) -> None:
    """The core config validates the combination (its own ranges and rules): its one-line error, under the
    section's name."""
    if method == "theseus":
        from featherweight_core.theseus import TheseusConfig as Config
    else:
        from featherweight_core.bertvision import BertVisionConfig as Config
    try:
        Config(**settings, seed=seed, quantize=quantize)
    except UserError as e:
        raise SpecError(f"{where}: {e}") from None


def teacher_compression_grid(method: str, section: dict) -> list[tuple[int, bool, dict]]:
    """``(seed, quantize, settings)`` per grid point of a validated method section; Theseus points leave out the
    knobs of the schedule they do not run."""
    grid_keys = [k for k in TC_GRID_KEYS[method] if k not in _TC_COMMON_GRID and k in section]
    training = {k: section[k] for k in TC_TRAINING_KEYS[method] if k in section}
    points = []
    for values in itertools.product(*(section[k] for k in grid_keys)):
        settings = dict(zip(grid_keys, values, strict=True))
        schedule = settings.get("schedule")
        if schedule is not None:
            for other, knobs in THESEUS_SCHEDULE_KNOBS.items():
                if other != schedule:
                    for knob in knobs:
                        settings.pop(knob, None)
        settings.update(training)
        points.append(settings)
    out, seen = [], set()
    for settings in points:
        for seed, quantize in itertools.product(section["seeds"], section["quantize"]):
            key = (seed, quantize, tuple(sorted(settings.items())))
            if key not in seen:
                seen.add(key)
                out.append((seed, quantize, dict(settings)))
    return out


def _validate_teacher_compression(value: Any, tasks: dict[str, dict]) -> dict:
    """``teacher_compression: {tasks, theseus, bertvision}``: which tasks' teachers to compress (default: every
    task with a teacher) and the grid of each method to run (a method key present, even empty, runs it)."""
    if value is None:
        value = {}
    _check_keys(value, TC_TOP_KEYS, "teacher_compression")
    methods = [m for m in TEACHER_COMPRESSION_METHODS if m in value]
    if not methods:
        raise SpecError(
            f"teacher_compression: expected the settings of theseus and/or bertvision (empty for the"
            f" defaults), got {value!r}"
        )
    names = value.get("tasks")
    if names is None:
        names = [t for t, cfg in tasks.items() if cfg.get("teacher")]
        if not names:
            raise SpecError(
                "teacher_compression.tasks: no task of this spec has a teacher to compress; set tasks.<task>.teacher"
            )
    else:
        names = [names] if isinstance(names, str) else _list(names, "teacher_compression.tasks")
        for i, t in enumerate(names):
            if not isinstance(t, str) or t not in tasks:
                raise SpecError(
                    f"teacher_compression.tasks[{i}]: {t!r} is not a task of this spec; expected one of {sorted(tasks)}"
                )
            if not tasks[t].get("teacher"):
                raise SpecError(
                    f"teacher_compression.tasks[{i}]: task {t!r} has no teacher to compress; set tasks.{t}.teacher"
                )
        names = list(dict.fromkeys(names))
    out: dict[str, Any] = {"tasks": names}
    for m in methods:  # a method left out stays out (a saved spec validates to itself)
        out[m] = _validate_tc_method(m, value[m])
    return out


def teacher_layers(teacher_dir: str | Path) -> int:
    """The transformer layers of a fine-tuned teacher directory (its ``config.json``)."""
    import json

    from featherweight_core.teacher import TeacherError

    path = Path(teacher_dir) / "config.json"
    try:
        layers = json.loads(path.read_text(encoding="utf-8")).get("num_hidden_layers")
    except (OSError, ValueError) as e:
        raise TeacherError(f"{path}: cannot read the teacher's config ({type(e).__name__}: {e})") from None
    if not isinstance(layers, int) or layers < 1:
        raise TeacherError(f"{path}: no num_hidden_layers (expected a transformer encoder's config)")
    return layers


def check_grid_against_teacher(tc: dict, layers: int, task: str, teacher: str | Path) -> None:
    """Every point of the ``teacher_compression`` section ``tc`` against a teacher of ``layers`` layers
    (:func:`_check_against_teacher`; ``teacher`` names it in the error)."""
    for method in TEACHER_COMPRESSION_METHODS:
        if method in tc:
            for _, _, settings in teacher_compression_grid(method, tc[method]):
                _check_against_teacher(method, settings, layers, task, teacher)


def _check_against_teacher(method: str, settings: dict, layers: int, task: str, teacher: str | Path) -> None:
    where = f"teacher_compression.{method}"
    if method == "bertvision" and settings.get("layers") is not None and settings["layers"] > layers:
        raise SpecError(
            f"{where}.layers: {settings['layers']} is more than the {layers} layers of task {task}'s"
            f" teacher ({teacher})"
        )
    r = settings.get("replace_rate")
    if method == "theseus" and r is not None and (r > layers or layers % r):
        raise SpecError(
            f"{where}.replace_rate: {r} does not divide the {layers} layers of task {task}'s teacher"
            f" ({teacher}) into blocks"
        )


def _validate_report(value: Any) -> dict:
    """``report: {budgets: [32KB, 48KB]}``: hardware budgets the report's charts draw as vertical rules."""
    from analysis.charts import parse_size

    r = _merge({"budgets": []}, value, "report")
    if not isinstance(r["budgets"], list):
        raise SpecError(f"report.budgets: expected a list of sizes such as [32KB, 48KB], got {r['budgets']!r}")
    for i, b in enumerate(r["budgets"]):
        try:
            parse_size(b)
        except UserError as e:
            raise SpecError(f"report.budgets[{i}]: {e}") from None
    return r


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
        _check_keys(b, dict.fromkeys((*BOOTSTRAP_KEYS, *STUDY_BOOTSTRAP_KEYS)), f"{where}.bootstrap")
        if "p" in b:
            _num(b["p"], f"{where}.bootstrap.p", 0.0, 1.0)
        for key in ("n", "k"):
            if key in b:
                _int(b[key], f"{where}.bootstrap.{key}", 1)
        if "ratio" in b:
            _num(b["ratio"], f"{where}.bootstrap.ratio", 0.0, 1.0)
    elif not isinstance(b, str):
        raise SpecError(f"{where}.bootstrap: expected an augmented-data file or generation settings, got {b!r}")
    elif check_files and not Path(b).expanduser().is_file():
        raise SpecError(f"{where}.bootstrap: {b!r} is not a file (write one with `featherweight augment`)")


def _check_model_source(value: str, where: str) -> None:
    """A local model directory or a hub id that can be loaded here (offline: only one in the HF cache)."""
    from featherweight_core.teacher import TeacherError, resolve_model_source

    try:
        resolve_model_source(value)
    except TeacherError as e:
        raise SpecError(f"{where}: {e}") from None


def _finetune_defaults(model: str) -> dict:
    from featherweight_core.teacher import SMALL_TEACHER_FINETUNE, TeacherConfig

    cfg = SMALL_TEACHER_FINETUNE if model == "small" else TeacherConfig()
    return {k: getattr(cfg, k) for k in FINETUNE_KEYS}


def _validate_study_teacher(value: Any, where: str, check_files: bool) -> dict | None:
    """``{model: small | DIR | hub id, finetune: {...} | null}``, filled in: ``finetune`` null only for a directory
    that already holds a fine-tuned teacher. The strings ``small`` and ``DIR`` are the same as ``{model: ...}``."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"model": value}
    _check_keys(value, TEACHER_KEYS, where)
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
        ft = _merge(_finetune_defaults(model), ft, w)
        _int(ft["epochs"], f"{w}.epochs", 1)
        lr = ft["lr"]
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not math.isfinite(lr) or lr <= 0:
            raise SpecError(f"{w}.lr: expected a number > 0, got {lr!r}")
        _int(ft["batch_size"], f"{w}.batch_size", 1)
        _int(ft["max_length"], f"{w}.max_length", 8)
        _choice(ft["precision"], TEACHER_PRECISIONS, f"{w}.precision")
        _int(ft["seed"], f"{w}.seed", 0)
        if ft["max_train_examples"] is not None:
            _int(ft["max_train_examples"], f"{w}.max_train_examples", 1)
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
    from featherweight_core.augment import AugmentConfig

    d = AugmentConfig()
    b = _merge(
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
    _int(b["n"], f"{where}.n", 1)
    _int(b["k"], f"{where}.k", 1)
    _int(b["seed"], f"{where}.seed", 0)
    for key in ("p", "ratio"):
        v = b[key]
        if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v <= 1:
            raise SpecError(f"{where}.{key}: expected a number in (0, 1], got {v!r}")
    _choice(b["mode"], AUGMENT_MODES, f"{where}.mode")
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


def _gpus(value: Any, where: str) -> None:
    if value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise SpecError(f"{where}: expected 'auto' or a number of GPUs >= 0, got {value!r}")
    if value > 1 and not float(value).is_integer():
        raise SpecError(f"{where}: {value} GPUs: more than one GPU must be a whole number")


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
        _check_keys(b, BASELINE_KEYS, w)
        if not isinstance(b.get("name"), str) or not b["name"]:
            raise SpecError(f"{w}.name: expected a non-empty name, got {b.get('name')!r}")
        _num(b.get("score"), f"{w}.score", 0.0, 1.0)
        for k in ("params", "disk_bytes", "gzip_bytes"):
            if b.get(k) is not None:
                _int(b[k], f"{w}.{k}", 1)
        if b.get("note") is not None and not isinstance(b["note"], str):
            raise SpecError(f"{w}.note: expected text, got {_short(b['note'])}")


def _check_bpemb(spec: SweepSpec) -> None:
    """bpe dims/vocab sizes must be ones BPEmb publishes, and present locally when a bpemb_dir is given."""
    for task in spec.tasks:
        g = spec.grid_for(task)
        if "bpe" not in g["embeddings"]:
            continue
        dims = g["dims_by_embedding"].get("bpe", g["dims"])
        for d in dims:
            if d not in BPEMB_DIMS:
                raise SpecError(
                    f"grid.dims: {d} is not a BPEmb dimension {list(BPEMB_DIMS)} (embedding bpe, task {task})"
                )
        for vs in g["vocab_sizes"]:
            if vs not in BPEMB_VOCAB_SIZES:
                raise SpecError(f"grid.vocab_sizes: {vs} is not a BPEmb vocabulary size {list(BPEMB_VOCAB_SIZES)}")
            if spec.raw["bpemb_dir"]:
                for d in dims:
                    model, emb = bpemb_files(spec.raw["bpemb_dir"], vs, d)
                    for f in (model, emb):
                        if not f.is_file():
                            raise SpecError(
                                f"grid: bpe vocab_size {vs} dim {d} needs {f}, which bpemb_dir {spec.raw['bpemb_dir']!r} lacks"
                            )


def _yaml_error(path: Path, e: yaml.YAMLError) -> str:
    """``SPEC.yaml:LINE:COL: not valid YAML (problem)``, 1-based, where the parser says where it stopped."""
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    problem = getattr(e, "problem", None) or getattr(e, "context", None)
    if problem is None:
        lines = str(e).strip().splitlines()
        problem = lines[0] if lines else type(e).__name__
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
    return f"{where}: not valid YAML ({problem})"


MAX_YAML_DEPTH = 100  # nested mappings / lists; a real spec nests fewer than 10
MAX_YAML_VALUES = 100_000  # values once aliases are expanded (the spec is stored expanded); a real spec has < 1,000


class _SpecYamlError(yaml.YAMLError):
    """A YAML document that parses but is refused: a key given twice in one mapping, or nesting too deep."""

    def __init__(self, mark: yaml.Mark, message: str) -> None:
        super().__init__(message)
        self.mark, self.message = mark, message


class SpecLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (YAML leaves that to the loader, and
    PyYAML keeps the last) and nesting deeper than ``MAX_YAML_DEPTH`` (PyYAML recurses once per level). Merge keys
    (``<<: *anchor``) may still be overridden by the mapping's own keys, as YAML defines."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise _SpecYamlError(mark, f"nested deeper than {MAX_YAML_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, yaml.Mark] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = first.get(key)
                except TypeError:  # an unhashable key: SafeConstructor reports it
                    continue
                if seen is not None:
                    raise _SpecYamlError(
                        key_node.start_mark, f"key {key!r} appears twice (first at line {seen.line + 1})"
                    )
                first[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _check_aliases(root: yaml.Node) -> None:
    """Aliases (``*name``) share a node: refuse a value that contains itself (it cannot be stored), one that nests
    deeper than ``MAX_YAML_DEPTH`` through aliases, and a document that expands to more than ``MAX_YAML_VALUES``
    values (a few lines of aliases can stand for billions)."""
    seen: dict[int, tuple[int, int]] = {}  # node -> (values once expanded, levels)
    active: set[int] = set()

    def measure(node: yaml.Node) -> tuple[int, int]:
        # an alias names an earlier node, measured before, so this recursion is only as deep as the document's text
        key = id(node)
        if key in seen:
            return seen[key]
        if key in active:
            raise _SpecYamlError(node.start_mark, "a value contains itself through an alias")
        active.add(key)
        children = node.value if isinstance(node, yaml.SequenceNode) else []
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        size, levels = 1, 1
        for child in children:
            child_size, child_levels = measure(child)
            size, levels = size + child_size, max(levels, child_levels + 1)
            if levels > MAX_YAML_DEPTH:
                raise _SpecYamlError(node.start_mark, f"nested deeper than {MAX_YAML_DEPTH} levels (through aliases)")
            if size > MAX_YAML_VALUES:
                raise _SpecYamlError(
                    node.start_mark, f"expands to more than {MAX_YAML_VALUES:,} values (through aliases)"
                )
        active.discard(key)
        seen[key] = (size, levels)
        return seen[key]

    measure(root)


def load_yaml(text: str, where: str | Path) -> Any:
    """Parse the YAML ``text`` of file ``where`` with :class:`SpecLoader`; every problem is one SpecError line
    ``FILE:LINE:COL: ...``. Every YAML file the tool reads goes through here."""
    try:
        loader = SpecLoader(text)  # the reader checks the characters here (a control character: ReaderError)
    except yaml.YAMLError as e:
        raise SpecError(_yaml_error(Path(where), e)) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_aliases(node)
        return loader.construct_document(node)
    except _SpecYamlError as e:
        raise SpecError(f"{where}:{e.mark.line + 1}:{e.mark.column + 1}: {e.message}") from None
    except yaml.YAMLError as e:
        raise SpecError(_yaml_error(Path(where), e)) from None
    except RecursionError:  # a bound above should stop it first; a traceback here would say nothing useful
        raise SpecError(f"{where}: nested deeper than {MAX_YAML_DEPTH} levels") from None
    finally:
        loader.dispose()


def load_spec(path: str | Path, check_files: bool = True) -> SweepSpec:
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: sweep spec not found")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SpecError(f"{path}: cannot read the sweep spec ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not valid UTF-8 (byte {e.start}: {e.object[e.start : e.start + 1]!r})") from None
    raw = load_yaml(text, path)
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    # Relative paths in a spec are relative to the directory the command runs in (documented), not the spec file.
    return validate(raw, path, check_files)
