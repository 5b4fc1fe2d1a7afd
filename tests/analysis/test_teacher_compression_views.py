"""Teacher-compression trials (Theseus, BERT-Vision) in the analysis views: labels, one skyline across the whole
size range (teacher, teacher-compressed models, students, compressed students), ratios against the teacher, seed
summaries that keep different settings apart, and stage-2 parent selection that never picks them."""

from __future__ import annotations

import pytest

from analysis.selection import select_parents
from analysis.views import open_store
from db.errors import StoreError
from tests.teacher_compression_fakes import TEACHER, fill_whole_range


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = open_store(tmp_path_factory.mktemp("tc_views") / "fw.duckdb")
    fill_whole_range(store, "s")
    return store


def points(store, size="gzip_bytes"):
    return store.query(
        "SELECT * FROM pareto_points WHERE sweep = 's' AND task = 'sst2' AND score_measure = 'score' "
        "AND size_measure = ?",
        [size],
    )


def test_labels_and_columns(store):
    got = store.query(
        "SELECT trial_id, label, layers, trainable_params, latency_ms, teacher, settings "
        "FROM trial_results WHERE stage = 'teacher_compression' ORDER BY trial_id"
    )
    labels = dict(zip(got["trial_id"], got["label"], strict=True))
    assert labels == {
        "t-bv6": "BERT-Vision-6L adapter",
        "t-th3": "Theseus-3L",
        "t-th3-r7": "Theseus-3L",
        "t-th3q": "Theseus-3L + q",
        "t-best": "Theseus-6L",
    }
    assert set(got["teacher"]) == {"assets/teacher-sst2"}
    assert '"replace_rate":0.7' in got.set_index("trial_id").loc["t-th3-r7", "settings"]


def test_one_skyline_across_the_whole_size_range(store):
    p = points(store)
    on = p[p["on_skyline"]]
    names = set(on["trial_id"].dropna()) | set(on.loc[on["kind"] == "baseline", "name"])
    # one skyline from a 1.1 KB student to a 95 MB teacher-sized model, through every stage and the teacher
    assert names == {"d-tiny", "c-mid", "d-mid", "t-th3q", "t-th3", "teacher:teacher-sst2", "t-best"}
    assert "t-bv6" not in names  # the teacher is smaller (gzip) and better: BERT-Vision keeps every teacher layer
    assert "d-worse" not in names
    bv = p.set_index("trial_id").loc["t-bv6"]
    assert not bv["on_skyline"] and bv["on_stage_skyline"]  # best of its own stage
    assert bv["trainable_params"] == 52_000 and bv["latency_ms"] == pytest.approx(9.0) and bv["layers"] == 6
    sky = store.query(
        "SELECT * FROM skyline WHERE sweep = 's' AND task = 'sst2' AND score_measure = 'score' "
        "AND size_measure = 'gzip_bytes' ORDER BY skyline_rank"
    )
    assert {"distill", "compress", "teacher_compression"} <= set(sky["stage"].dropna())
    assert sky["trial_id"].tolist()[-1] == "t-best" and "TinyBERT-6" not in set(sky["name"])


def test_params_size_is_the_total_not_the_trainable_count(store):
    p = points(store, "params").set_index("trial_id")
    assert p.loc["t-bv6", "size_value"] == 22_750_000  # frozen teacher layers count: inference needs them
    assert p.loc["t-th3", "size_value"] == 17_400_000


def test_stage_skyline_of_teacher_compression_is_its_own(store):
    p = points(store)
    tc = p[p["stage"] == "teacher_compression"].set_index("trial_id")
    assert tc["on_stage_skyline"].to_dict() == {
        "t-th3": True,
        "t-th3-r7": False,
        "t-th3q": True,
        "t-bv6": True,
        "t-best": True,
    }
    assert not tc.loc["t-bv6", "on_skyline"]  # on its stage's frontier only
    # the students' frontier is theirs alone: c-mid (compress) does not knock d-mid off the distill frontier
    distill = p[p["stage"] == "distill"].set_index("trial_id")
    assert distill["on_stage_skyline"].to_dict() == {"d-tiny": True, "d-mid": True, "d-worse": False}


def test_parent_selection_never_picks_teacher_compression_trials(store):
    for size in ("gzip_bytes", "params", "disk_bytes"):
        parents = select_parents(store, "s", "skyline", size)
        assert set(parents["stage"]) == {"distill"} and set(parents["trial_id"]) == {"d-tiny", "d-mid"}
    top = select_parents(store, "s", {"top_k": 2}, "gzip_bytes")
    assert set(top["trial_id"]) == {"d-mid", "d-tiny"}  # t-best scores 0.99 but is no distillation trial
    with pytest.raises(StoreError, match="no finished distillation trial 't-th3'"):
        select_parents(store, "s", {"trials": ["d-mid", "t-th3"]}, "gzip_bytes")
    assert store.finished_trial_ids("s", stage="distill") == {"d-tiny", "d-mid", "d-worse"}


def test_compression_ratios_against_the_teacher(store):
    name, score, params, disk, _ = TEACHER
    c = store.query("SELECT * FROM compression WHERE sweep = 's' AND kind = 'trial'").set_index("trial_id")
    tc = c[c["stage"] == "teacher_compression"]
    assert set(tc["teacher"]) == {name}  # the trial's own teacher, not the more recently measured one
    assert set(tc["teacher_dir"]) == {"assets/teacher-sst2"}
    assert c.loc["t-th3", "reported_bytes"] == 69_700_000  # float: disk size
    assert c.loc["t-th3q", "reported_bytes"] == 30_000_000  # quantized: gzip size, as for students
    assert c.loc["t-th3", "ratio_vs_teacher"] == pytest.approx(disk / 69_700_000)
    assert c.loc["t-th3q", "ratio_vs_teacher"] == pytest.approx(disk / 30_000_000)
    assert c.loc["t-th3", "param_ratio_vs_teacher"] == pytest.approx(params / 17_400_000)
    assert c.loc["t-bv6", "param_ratio_vs_teacher"] < 1  # BERT-Vision adds a head to the frozen layers
    assert c.loc["t-bv6", "score_retained_vs_teacher"] == pytest.approx(0.905 / score)
    assert c.loc["t-th3q", "latency_ms"] == pytest.approx(4.0) and c.loc["t-th3", "trainable_params"] == 5_300_000
    assert c.loc["t-th3q", "speedup_vs_teacher"] == pytest.approx(13.0 / 4.0)  # the teacher timed beside it
    assert c.loc["d-mid", "speedup_vs_teacher"] != c.loc["d-mid", "speedup_vs_teacher"]  # NULL for students
    assert c.loc["t-th3", "ratio_vs_roberta"] == pytest.approx(1_426_000_000 / 69_700_000)
    assert c.loc["d-mid", "teacher"] == "teacher:other"  # a student naming no measured teacher: the latest one


def test_seed_summary_keeps_settings_apart(store):
    s = store.query(
        "SELECT * FROM seed_summary WHERE sweep = 's' AND stage = 'teacher_compression' AND label = 'Theseus-3L'"
    )
    assert len(s) == 2 and set(s["n_seeds"]) == {1} and set(s["method"]) == {"theseus"}
    assert s["settings"].str.contains('"replace_rate":0.7').sum() == 1
