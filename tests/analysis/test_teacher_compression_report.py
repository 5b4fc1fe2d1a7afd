"""Teacher-compression trials in the charts and the report: colours per method, shapes for teacher-compressed (and
quantized) models, tooltips with settings / trainable parameters / latency, one log axis from 1 KB to the teacher,
and the report's teacher-compression table."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from analysis.chart_frames import count_text, method_settings, pareto_frame
from analysis.chart_labels import LabelPlace, place_labels
from analysis.charts import ARCH_COLORS, STAGE_SHAPES, task_chart
from analysis.report import build_report
from analysis.views import open_store
from tests.fakes import make_record
from tests.teacher_compression_fakes import fill_whole_range


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = open_store(tmp_path_factory.mktemp("tc_report") / "fw.duckdb")
    fill_whole_range(store, "s")
    store.start_sweep("students", {}, "test", "/storage/students")
    store.record_trial(make_record("students", "d-1"))
    return store


def _layers(spec):
    return spec["layer"] if "layer" in spec else [layer for row in spec["hconcat"] for layer in row["layer"]]


def _points_layer(spec):
    return next(layer for layer in _layers(spec) if layer.get("encoding", {}).get("shape"))


def test_frame_stage_labels_colours_and_configuration(store):
    df = pareto_frame(store, "s", "sst2", "score", "gzip_bytes").set_index("name", drop=False)
    trials = df[df["kind"] == "trial"].set_index("trial_id")
    assert trials.loc["t-th3", "stage_label"] == "teacher compressed"
    assert trials.loc["t-th3q", "stage_label"] == "teacher compressed + quantized"
    assert trials.loc["t-bv6", "color_key"] == "bertvision" and trials.loc["t-th3", "color_key"] == "theseus"
    cfg = trials.loc["t-th3q", "configuration"]
    for part in (
        "Theseus 3 layers",
        "replace_rate 0.5",
        "schedule constant",
        "int8 dynamic (Linear)",
        "trainable 5.3M params",
        "CPU latency 4.00 ms",
    ):
        assert part in cfg, (part, cfg)
    assert "head adapter" in trials.loc["t-bv6", "configuration"] and trials.loc["t-bv6", "trainable_text"] == "52k"
    assert trials.loc["t-bv6", "latency_text"] == "9.00 ms (1.44x faster)"  # the teacher took 13 ms beside it
    assert trials.loc["d-tiny", "trainable_text"] == "-" and trials.loc["d-tiny", "stage_label"] == "distilled"


def test_chart_colours_shapes_tooltips_and_the_whole_range_axis(store):
    spec = task_chart(store, "s", "sst2").to_dict()
    points = _points_layer(spec)
    enc = points["encoding"]
    colors = dict(zip(enc["color"]["scale"]["domain"], enc["color"]["scale"]["range"], strict=True))
    assert colors["theseus"] == ARCH_COLORS["theseus"] and colors["bertvision"] == ARCH_COLORS["bertvision"]
    assert len({colors[k] for k in ("bilstm", "theseus", "bertvision", "baseline")}) == 4
    shapes = dict(zip(enc["shape"]["scale"]["domain"], enc["shape"]["scale"]["range"], strict=True))
    assert shapes["teacher compressed"] == STAGE_SHAPES["teacher compressed"]
    assert shapes["teacher compressed + quantized"] == STAGE_SHAPES["teacher compressed + quantized"]
    assert len(set(shapes.values())) == len(shapes)  # every stage its own shape
    titles = [t["title"] for t in enc["tooltip"]]
    assert {"configuration", "trainable params", "CPU latency, batch 1"} <= set(titles)
    # one log axis from the 1.1 KB student to the 95 MB model, padded so nothing is clipped
    x = enc["x"]
    lo, hi = x["scale"]["domain"]
    assert x["scale"]["type"] == "log" and x["axis"]["format"] == "~g"
    assert lo < 0.0011 / 1.5 and hi > 2_950 * 1.5  # (GLUE BiLSTM+GloVe, 2.95 GB, is the largest point)
    assert hi / lo < 1e8  # padding stays modest: under one decade beyond the data on each side
    # a sweep without teacher-compressed models keeps its tooltips and shapes as they were
    plain = _points_layer(task_chart(store, "students", "sst2").to_dict())["encoding"]
    assert "trainable params" not in [t["title"] for t in plain["tooltip"]]
    assert "teacher compressed" not in plain["shape"]["scale"]["domain"]


def test_report_has_the_teacher_compression_table(store, tmp_path):
    files = build_report(store, "s", tmp_path / "r")
    md = files.markdown.read_text()
    assert "### Teacher compression (Theseus, BERT-Vision)" in md
    section = md.split("### Teacher compression (Theseus, BERT-Vision)")[1].split("###")[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    assert lines[0].split(" | ")[2:] == [
        "method",
        "settings",
        "layers",
        "accuracy %",
        "retained %",
        "params",
        "trainable",
        "gzip (MB)",
        "latency (ms)",
        "speed-up |",
    ]
    rows = {line.split(" | ")[1]: line for line in lines[2:]}
    assert rows["-"].startswith("| teacher:teacher-sst2 | - | teacher")  # the teacher heads the table
    assert rows["-"].endswith("| 13.00 | 1.00x |")  # the median of the teacher timings beside its trials
    th3q = rows["t-th3q"]
    # 87.5 of 91.0 retained; 1.7e+7 params, 5.3e+6 trainable; 30 MB gzip; 4 ms, the teacher 13 ms beside it
    for cell in (
        "Theseus-3L + q",
        "Theseus",
        "replace_rate 0.5, schedule constant, successor_layers 3",
        " 3 ",
        "87.50",
        "96.2",
        "1.7e+7",
        "5.3e+6",
        "30.000",
        "4.00",
        "3.25x",
    ):
        assert cell in th3q, (cell, th3q)
    assert "BERT-Vision" in rows["t-bv6"] and "5.2e+4" in rows["t-bv6"] and "99.5" in rows["t-bv6"]
    assert len(rows) == 1 + 5  # the teacher and five teacher-compression trials, no students
    assert "teacher compressed (star" in md  # the chart's caption names the new shapes
    html = files.html.read_text()
    assert "Teacher compression (Theseus, BERT-Vision)" in html and "t-th3q" in html
    text = Path(files.charts["sst2"]["svg"]).read_text()
    assert "teacher compressed + quantized" in text and "theseus" in text and "bertvision" in text


def test_report_without_teacher_compression_has_no_such_table(store, tmp_path):
    md = build_report(store, "students", tmp_path / "r").markdown.read_text()
    assert "Teacher compression" not in md and "teacher compressed" not in md


def test_text_helpers():
    assert (
        method_settings('{"schedule": "linear", "replace_rate": 0.3, "k": 2}')
        == "k 2, replace_rate 0.3, schedule linear"
    )
    assert method_settings({}) == "" and method_settings(None) == ""
    assert [count_text(n) for n in (22_700_000, 52_000, 300, None)] == ["22.7M", "52k", "300", "-"]


def test_labels_avoid_each_other_and_the_markers():
    # a Theseus model and its quantized version at nearly one height: the left name would run over the right point
    xs, ys, names = [30.0, 64.0], [87.5, 88.0], ["Theseus-3L + q", "Theseus-3L"]
    geometry = ([4e-4, 7400], [79, 97.5], 900, 380)
    places = place_labels(xs, ys, names, *geometry)
    assert places[0] == LabelPlace(True, -8.0)  # markers ignored: over the second point
    a, b = (p.box(*_pixels(x, y, *geometry), n) for p, x, y, n in zip(places, xs, ys, names, strict=True))
    assert min(a[1], b[1]) <= max(a[0], b[0]) or min(a[3], b[3]) <= max(a[2], b[2])  # the second clear of the first
    first = place_labels(xs, ys, names, *geometry, list(zip(xs, ys, strict=True)))[0]
    assert first != LabelPlace(True, -8.0)  # with the markers drawn, it leaves the other point's marker free


def _pixels(x, y, xdom, ydom, width, height):
    lx0, lx1 = math.log(xdom[0]), math.log(xdom[1])
    return width * (math.log(x) - lx0) / (lx1 - lx0), height * (1 - (y - ydom[0]) / (ydom[1] - ydom[0]))


@pytest.mark.parametrize("seed", range(5))
def test_placed_labels_stay_apart_and_inside_the_plot(seed):
    # a dense cluster of long names (a sweep's compressed students) plus a few spread points
    rng = random.Random(seed)
    xs = [10 ** rng.uniform(-1.0, -0.6) for _ in range(12)] + [10 ** rng.uniform(-2, 3) for _ in range(8)]
    ys = [rng.uniform(70, 73) for _ in range(12)] + [rng.uniform(60, 95) for _ in range(8)]
    names = [rng.choice(["BiLSTM_BPE25 + p + q", "FFN_BPE25 + p + q", "RNN_Hash100", "Theseus-3L + q"]) for _ in xs]
    geometry = ([5e-3, 5e3], [55, 100], 620, 380)
    places = place_labels(xs, ys, names, *geometry, list(zip(xs, ys, strict=True)))
    boxes = [p.box(*_pixels(x, y, *geometry), n) for p, x, y, n in zip(places, xs, ys, names, strict=True) if p]
    assert 8 <= len(boxes) < len(xs)  # most named, the crowded rest left to their tooltips
    for i, a in enumerate(boxes):
        assert a[0] >= 0 and a[1] <= 620 and a[2] >= 0 and a[3] <= 380, a  # inside the plot
        for b in boxes[:i]:  # placed names barely touch (at most a tenth of the later one's box)
            inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[2], b[2]))
            assert inter <= 0.1 * (a[1] - a[0]) * (a[3] - a[2]), (a, b)
