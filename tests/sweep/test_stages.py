"""The stage contract without training anything: the registry's order and names, plans from the database, and the
outcome's per-stage counts."""

from __future__ import annotations

from analysis.views import open_store
from sweep.runner import SweepOutcome
from sweep.sections import SECTIONS
from sweep.spec import RESOURCE_KEYS, TOP_KEYS, SpecError, validate
from sweep.stages.base import StageResult
from sweep.stages.registry import STAGES
from sweep.stages.run import plan_at_start
from tests.fakes import make_record
from trainables.compress import CompressTrial
from trainables.trial import DistillTrial, TeacherCompressionTrial


def _spec(tmp_path, **top):
    raw = {
        "name": "sg",
        "storage": str(tmp_path / "runs"),
        "tasks": {"synthetic": {"data_options": {"n_train": 100, "n_dev": 50}}},
        "grid": {"archs": ["ffn"], "embeddings": ["hash"], "dims": [8], "vocab_sizes": [100], "seeds": [0, 1]},
        "training": {"max_epochs": 1},
        **top,
    }
    return validate(raw, check_files=False)


def test_registry_runs_the_trial_stages_in_order_under_their_row_names():
    assert [s.name for s in STAGES] == [DistillTrial.stage, CompressTrial.stage, TeacherCompressionTrial.stage]
    assert [s.phase for s in STAGES] == [
        "the distillation stage",
        "the compression stage",
        "the teacher compression stage",
    ]


def test_each_stage_section_is_found_and_builds_the_spec_schema(tmp_path):
    """The spec's top-level and resource keys come from the section modules (sweep/sections/), one per stage that a
    section switches on; nothing else lists them."""
    assert sorted(SECTIONS) == sorted(s.section for s in STAGES if s.section)
    for key, section in SECTIONS.items():
        assert key in TOP_KEYS and TOP_KEYS[key] is None  # off unless the spec has it
        for rkey, default in section.resources.items():
            assert RESOURCE_KEYS[rkey] == default
    assert _spec(tmp_path).raw["resources"]["teacher_compression_gpus"] == "auto"
    try:
        _spec(tmp_path, resources={"teacher_compression_gpus": 1.5})
    except SpecError as e:
        assert "resources.teacher_compression_gpus" in str(e)
    else:
        raise AssertionError("a fractional GPU count above one was accepted")


def test_plans_come_from_the_database(tmp_path):
    spec = _spec(tmp_path)
    start = plan_at_start(spec, None)  # no database yet: every grid point, and nothing to say "done" about
    assert (start.plans["distill"].remaining, start.plans["distill"].total, start.done) == (2, 2, None)
    assert start.headlines == ["2 distillation trials, 0 already finished"]
    store = open_store(spec.database)
    store.start_sweep(spec.name, spec.raw, "test", str(spec.storage / spec.name))
    first = spec.distill_trials()[0]
    store.record_trial(make_record(sweep=spec.name, trial_id=first.trial_id, task="synthetic"))
    start = plan_at_start(spec, store)
    assert [t.trial_id for t in start.plans["distill"].todo] == [spec.distill_trials()[1].trial_id]
    assert start.headlines == ["2 distillation trials, 1 already finished"] and start.done is None
    for t in spec.distill_trials()[1:]:
        store.record_trial(make_record(sweep=spec.name, trial_id=t.trial_id, task="synthetic"))
    assert plan_at_start(spec, store).done == "2 distillation trials already finished"


def test_outcome_counts_each_stage_by_name():
    out = SweepOutcome("sg", None)
    out.add("distill", StageResult(ran=3, failed=1, first_error="boom", planned=3))
    out.add("compress", StageResult(ran=2, planned=2))
    out.add("teacher_compression", StageResult(ran=1, planned=1))
    out.add("distill", StageResult(ran=1, failed=1, first_error="later", planned=1))
    assert (out.distill_ran, out.compress_ran, out.teacher_compression_ran, out.ran) == (4, 2, 1, 7)
    assert (out.failed, out.first_error, out.all_failed) == (2, "boom", False)
