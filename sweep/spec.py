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

from analysis.chart_frames import parse_size
from featherweight_core.data.encoders import bpemb_files
from featherweight_core.data.loading import load_synthetic
from featherweight_core.data.tasks import TaskSpec, task_from_options
from featherweight_core.errors import UserError
from featherweight_core.students.distill_config import TRAINING_SETTINGS
from featherweight_core.teacher.augment import AugmentConfig
from featherweight_core.teacher.softtargets import teacher_fingerprint
from featherweight_core.vocab import (
    BPEMB_DIMS,
    BPEMB_VOCAB_SIZES,
    DEFAULT_VOCAB_SIZE,
    LATENCY_RUNTIMES,
    TEACHER_COMPRESSION_METHODS,
)
from sweep.pareto_halving import HalvingSettings
from sweep.sections import SECTIONS
from sweep.sections.teacher_compression import (
    check_grid_against_teacher,
    teacher_compression_grid,
    teacher_layers,
)
from sweep.spec_scheduler import halving_settings, validate_scheduler
from sweep.spec_tasks import (
    GRID_KEYS,
    TASK_DEFINITION_KEYS,
    file_teacher,
    student_points,
    teacher_outputs_fingerprint,
    validate_grid,
    validate_tasks,
)
from sweep.spec_values import (
    SpecError,
    check_choice,
    check_gpus,
    check_int,
    check_keys,
    check_number,
    merge_defaults,
    short_repr,
)
from sweep.spec_yaml import MAX_YAML_DEPTH, load_yaml
from trainables.trial import DistillTrial, TeacherCompressionTrial

# what other modules import from here (the sections' modules hold the rest)
__all__ = [
    "MAX_YAML_DEPTH",
    "THESIS_SEEDS",
    "SpecError",
    "SweepSpec",
    "check_grid_against_teacher",
    "check_sweep_name",
    "load_spec",
    "load_yaml",
    "teacher_compression_grid",
    "teacher_layers",
    "validate",
]

THESIS_SEEDS = (3201976, 8291959, 5111918, 2211933)


# ---- the schema: key -> (type check, default). Nested dicts are their own schemas. -------------------------------

# training: every setting declared on the core's config (featherweight_core.students.distill_config), with its default
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
    # each trial stage's section adds its own (sweep.sections: teacher_compression_cpus, teacher_compression_gpus)
    **{key: default for section in SECTIONS.values() for key, default in section.resources.items()},
}
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
    "report": None,  # {budgets: [32KB, ...]}: what `featherweight report` draws by default (_validate_report)
    # the trial stages' sections (sweep.sections): compress, teacher_compression; left out or null: the stage is off
    **{key: None for key in SECTIONS},
    # {latency: true, runtimes: [torch, onnxruntime]}: time every trial's model on the CPU (_validate_measure); left
    # out of the stored spec when absent, so sweeps without it stay as they were
    "measure": None,
    "scheduler": None,  # pareto_halving | {kind: pareto_halving, ...} (sweep.spec_scheduler); None: the whole grid
}
MEASURE_KEYS = {"latency": False, "runtimes": list(LATENCY_RUNTIMES)}


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
        from db.journal import JOURNAL_NAME  # the db package loads duckdb: only when the journal is used

        return self.storage / self.name / JOURNAL_NAME

    @property
    def training(self) -> dict:
        return self.raw["training"]

    @property
    def resources(self) -> dict:
        return self.raw["resources"]

    @property
    def measure(self) -> dict | None:
        """The ``measure`` section when it asks for latency (None otherwise)."""
        m = self.raw.get("measure")
        return m if m and m["latency"] else None

    @property
    def compress(self) -> dict | None:
        return self.raw["compress"]

    @property
    def scheduler(self) -> HalvingSettings | None:
        """The distillation stage's scheduler (``None``: every trial trains to the end)."""
        return halving_settings(self.raw.get("scheduler"))

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
        return (isinstance(t["teacher"], dict) and file_teacher(t) is None) or (
            isinstance(t["bootstrap"], dict) and "mode" in t["bootstrap"]
        )

    def file_teacher(self, task: str) -> dict | None:
        """The task's teacher given by a file of its outputs (``{outputs, layout, allow_missing, name, ...}``), or
        None."""
        return file_teacher(self.tasks[task])

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
            outputs = (
                teacher_outputs_fingerprint(self.tasks[task], f"tasks.{task}.teacher")
                if self.file_teacher(task)
                else None
            )
            for (arch, emb, dim, vocab), alpha, boot, seed in itertools.product(
                student_points(g), g["alphas"], g["bootstrap"], g["seeds"]
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
                    # only the trials that learn from the file depend on it
                    teacher_outputs=outputs if (alpha < 1.0 or boot) else None,
                    **training,
                )
                out.setdefault(trial.trial_id, trial)
        return list(out.values())


def check_sweep_name(name: Any, where: str) -> str:
    """A sweep's name is a directory under the storage: letters, digits, '-', '_' and '.', not '.' or '..' (so
    ``<storage>/<name>`` never leaves the storage). SpecError naming ``where`` and the value otherwise."""
    if not isinstance(name, str) or not name or name in (".", "..") or not all(c.isalnum() or c in "-_." for c in name):
        raise SpecError(f"{where}: expected a non-empty name of letters, digits, '-', '_' or '.', got {name!r}")
    return name


def validate(raw: Any, path: Path | None = None, check_files: bool = True) -> SweepSpec:
    """Validate a parsed spec and fill defaults. Raises SpecError naming the first bad key and value."""
    spec = merge_defaults(TOP_KEYS, raw, "")
    name = check_sweep_name(spec["name"], "name")
    if not isinstance(spec["description"], str | None):
        raise SpecError(f"description: expected text, got {short_repr(spec['description'])}")
    if not spec["tasks"]:
        raise SpecError(f"tasks: expected a mapping of task names to settings, got {spec['tasks']!r}")
    check_keys(spec["tasks"], {t: None for t in spec["tasks"]}, "tasks")
    spec["grid"] = validate_grid(merge_defaults(GRID_KEYS, spec["grid"], "grid"), "grid")
    tasks = spec["tasks"] = validate_tasks(spec["tasks"], spec["grid"], check_files)
    spec["training"] = merge_defaults(TRAINING_KEYS, spec["training"], "training")
    for key, value in spec["training"].items():
        problem = TRAINING_SETTINGS[key].error(value)
        if problem:
            raise SpecError(f"training.{key}: {problem}")
    res = spec["resources"] = merge_defaults(RESOURCE_KEYS, spec["resources"], "resources")
    check_number(res["cpus_per_trial"], "resources.cpus_per_trial", 0.01)
    check_number(res["gpus_per_trial"], "resources.gpus_per_trial", 0.0)
    if check_number(res["pending_timeout_s"], "resources.pending_timeout_s") <= 0:
        raise SpecError(f"resources.pending_timeout_s: {res['pending_timeout_s']} must be > 0 (seconds)")
    for key in ("max_concurrent", "num_cpus", "num_gpus"):
        if res[key] is not None:
            check_int(res[key], f"resources.{key}", 0 if key == "num_gpus" else 1)
    for key in ("teacher_cpus", "bootstrap_cpus"):
        check_number(res[key], f"resources.{key}", 0.01)
    for key in ("teacher_gpus", "bootstrap_gpus"):
        check_gpus(res[key], f"resources.{key}")
    if spec["report"] is not None:
        spec["report"] = _validate_report(spec["report"])
    if spec["measure"] is None:
        del spec["measure"]
    else:
        spec["measure"] = _validate_measure(spec["measure"])
    spec["scheduler"] = validate_scheduler(spec["scheduler"])
    if spec["scheduler"] is None:  # left out: the stored spec stays as it was before the key existed
        del spec["scheduler"]
    for key, section in SECTIONS.items():
        if section.check_resources:
            section.check_resources(res)
        if spec[key] is not None:  # null, like a section left out, is no stage
            spec[key] = section.validate(spec[key], tasks)
    result = SweepSpec(name=name, raw=spec, path=path, tasks=tasks)
    if check_files:
        _check_bpemb(result)
    _check_sizes(result)
    return result


def _check_sizes(spec: SweepSpec) -> None:
    """What a trial will hold in memory must fit this machine's memory: every student of the grid (its parameters
    counted without building it, times 4 float32 copies for training: featherweight_core.students.measure) and the synthetic
    and bootstrap examples the spec asks to generate (a lower estimate per example). The error names the key and the
    value that does not fit."""
    # the size checks count parameters with the student modules (torch): loaded when a spec is validated, not imported
    from featherweight_core.students.measure import TooLargeError, check_examples_fit, check_student_fits, memory_bytes
    from featherweight_core.students.models import StudentConfig

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
        for arch, emb, dim, vocab in student_points(g):
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
    """A size check of featherweight_core.students.measure, its error as a SpecError (the message names key and value)."""
    from featherweight_core.students.measure import TooLargeError  # torch, as in _check_sizes

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


def _validate_measure(value: Any) -> dict:
    """``measure: {latency: true, runtimes: [torch, onnxruntime]}``: what every trial measures besides its score and
    sizes (CPU latency per runtime, beside its teacher's)."""
    m = merge_defaults(MEASURE_KEYS, value, "measure")
    if not isinstance(m["latency"], bool):
        raise SpecError(f"measure.latency: expected true or false, got {short_repr(m['latency'])}")
    runtimes = m["runtimes"]
    if not isinstance(runtimes, list) or not runtimes:
        raise SpecError(f"measure.runtimes: expected a non-empty list of {list(LATENCY_RUNTIMES)}, got {runtimes!r}")
    for i, r in enumerate(runtimes):
        check_choice(r, LATENCY_RUNTIMES, f"measure.runtimes[{i}]")
    if len(set(runtimes)) != len(runtimes):
        raise SpecError(f"measure.runtimes: {runtimes!r} names a runtime twice")
    return m


def _validate_report(value: Any) -> dict:
    """``report: {budgets: [32KB, 48KB]}``: hardware budgets the report's charts draw as vertical rules."""
    r = merge_defaults({"budgets": []}, value, "report")
    if not isinstance(r["budgets"], list):
        raise SpecError(f"report.budgets: expected a list of sizes such as [32KB, 48KB], got {r['budgets']!r}")
    for i, b in enumerate(r["budgets"]):
        try:
            parse_size(b)
        except UserError as e:
            raise SpecError(f"report.budgets[{i}]: {e}") from None
    return r


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
