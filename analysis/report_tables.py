"""The report's tables, in the shape of the thesis' tables: seed summaries (tables 7.1-7.3), compression (table 7.5),
teacher compression, the skyline and per-class scores; each built from the rows of one analysis view.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from analysis.chart_frames import METHOD_NAMES, fidelity_text, layers_text, method_settings
from analysis.report_blocks import Bold, Table, mb, missing, pct, plain_value, sci, score_cell, score_header, times

if TYPE_CHECKING:
    import pandas as pd

ARCH_ORDER = {"bilstm": 0, "rnn": 1, "ffn": 2}
EMB_ORDER = {"hash": 0, "bpe": 1, "char": 2}


def _config_summary(row) -> str:
    if row.get("stage") == "teacher_compression":
        head = METHOD_NAMES.get(row["arch"], str(row["arch"]))
        if not missing(row.get("layers")):
            head += f" {layers_text(row['layers'])}"
        parts = [head, method_settings(row.get("settings"))]
        if not missing(row.get("seed")):
            parts.append(f"seed {row['seed']}")
        return ", ".join(p for p in parts if p)
    parts = [f"{row['arch']} {row['embedding']} d{row['emb_dim']}"]
    if not missing(row.get("vocab_size")):
        parts.append(f"vocab {row['vocab_size']}")
    if not missing(row.get("alpha")):
        parts.append(f"alpha {row['alpha']:g}")
    if row.get("bootstrap") is True:
        parts.append("+b")
    if not missing(row.get("seed")):
        parts.append(f"seed {row['seed']}")
    return ", ".join(parts)


def _sort_configs(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df
    key = df.assign(_a=df["arch"].map(ARCH_ORDER).fillna(9), _e=df["embedding"].map(EMB_ORDER).fillna(9)).sort_values(
        ["_a", "_e", "emb_dim", "vocab_size"], na_position="last"
    )
    return key.drop(columns=["_a", "_e"])


def seed_table(
    summary: pd.DataFrame,
    task_kind: str,
    score_name: str = "score",
    show_test: bool = False,
    stopped: pd.DataFrame | None = None,
) -> Table:
    """Thesis tables 7.1-7.3: one row per student configuration, one mean/sd column pair per training method (plus
    the mean test score when ``show_test``).

    ``stopped`` (rows of the ``stopped_summary`` view) fills the cells of recipes whose every trial the scheduler
    stopped: their score where they stopped, in brackets and marked with the epoch (an early score, not a final one),
    so a halving sweep's table still shows every recipe it tried. Seeds stopped beside finished ones are counted in
    the sd cell."""
    import pandas as pd

    stopped = stopped if stopped is not None else summary.iloc[0:0]
    both = pd.concat([x for x in (summary, stopped) if not x.empty] or [summary], ignore_index=True)
    # the temperature tells configurations apart only where a sweep tries several: a recipe without distillation
    # (alpha 1) may record none, and must still share its row with the distilled recipes of the same student
    distilled = both["alpha"].notna() & (both["alpha"] != 1)
    several_temperatures = both.loc[distilled, "temperature"].nunique() > 1
    config_cols = ["arch", "embedding", "emb_dim", "vocab_size", "pooling"] + (
        ["temperature"] if several_temperatures else []
    )
    methods = list(dict.fromkeys(_method_order(both)))
    spread = bool((summary["n_seeds"] > 1).any())  # one seed everywhere: no sd columns at all
    rows = []
    for _, group in _sort_configs(both).groupby(config_cols, dropna=False, sort=False):
        done = group[group["n_seeds"].notna()] if "n_seeds" in group else group.iloc[0:0]
        early = group[group["n_stopped"].notna()] if "n_stopped" in group else group.iloc[0:0]
        sized = done if not done.empty else early
        first = group.iloc[0]
        cells: list[Any] = [
            first["arch"],
            first["embedding"],
            first["emb_dim"],
            plain_value(first["vocab_size"]),
            sci(sized["params"].mean()),
            mb(sized["disk_bytes"].mean()),
        ]
        by_method = {m: g.iloc[0] for m, g in done.groupby("method")}
        stopped_by_method = {m: g.iloc[0] for m, g in early.groupby("method")}
        means = {m: by_method[m]["score_mean"] for m in methods if m in by_method}
        finite = [v for v in means.values() if not missing(v)]
        best = max(finite) if finite else None
        for m in methods:
            if m in by_method:
                r = by_method[m]
                mean = score_cell(r, task_kind, "_mean")
                sd = score_cell(r, task_kind, "_sd") if r["n_seeds"] > 1 else "1 seed"
                if len(methods) > 1 and best is not None and means[m] == best:
                    mean = Bold(mean)
                if m in stopped_by_method:
                    sd += f" (+{int(stopped_by_method[m]['n_stopped'])} stopped)"
                cells += [mean] + ([sd] if spread else [])
                if show_test:
                    cells.append(pct(r.get("test_score_mean")))
            elif m in stopped_by_method:
                r = stopped_by_method[m]
                mark = f"stopped @{_rungs(r)}"
                early_score = f"({score_cell(r, task_kind, '_mean')})"
                cells += [early_score, mark] if spread else [f"{early_score} {mark}"]
                if show_test:
                    cells.append("")
            else:
                cells += [""] * (1 + spread + show_test)
        rows.append(cells)
    columns = ["model", "E", "D", "vocab", "P", "S (MB)"]
    for m in methods:
        columns += ([f"{m} mean", "sd"] if spread else [m]) + (["test"] if show_test else [])
    over = "mean and sample sd over seeds" if spread else "one seed per configuration, so no sd"
    caption = (
        f"Distilled students, dev {score_header(task_kind, score_name)} in % ({over}). "
        "P: parameters, S: size on disk in MB. b: bootstrapped (augmented) training data. Bold: best mean of the row."
        + (f" test: mean {score_name} on the test split (best epoch's weights)." if show_test else "")
        + (
            " (x) stopped @N: the scheduler stopped every trial of this recipe after epoch N; x is their mean best"
            " score up to there, an early score that the finished columns do not compete with."
            if not stopped.empty
            else ""
        )
    )
    return Table(columns, rows, caption)


def _rungs(row) -> str:
    first, last = int(row["first_rung"]), int(row["last_rung"])
    return str(first) if first == last else f"{first}-{last}"


def _method_order(summary: pd.DataFrame) -> list[str]:
    if summary.empty:
        return []
    s = summary[["method", "alpha", "bootstrap"]].drop_duplicates("method").copy()
    # thesis column order: no distill, no distill + b, alpha 0.5 + b, alpha 0 + b (more teacher to the right)
    s["_alpha"] = s["alpha"].fillna(1.0)
    s["_b"] = s["bootstrap"].astype(bool)
    return list(s.sort_values(["_b", "_alpha"], ascending=[True, False])["method"])


def compression_table(
    comp: pd.DataFrame, task_kind: str, score_name: str = "score", show_test: bool = False
) -> Table | None:
    """Thesis table 7.5: baselines, then each compressed parent followed by its pruned/quantized children."""
    trials = comp[comp["kind"] == "trial"]
    children = trials[trials["stage"] == "compress"]
    if children.empty:
        return None
    # RoBERTa-large is the thesis' reference on its own tasks only: no column where no row has a ratio against it
    show_ref = bool(comp["ratio_vs_roberta"].notna().any())
    rows = []

    def add(r, indent=""):
        rows.append(
            [
                indent + str(r["name"]),
                "-" if missing(r.get("trial_id")) else str(r["trial_id"]),
                score_cell(r, task_kind, digits=2),
                *([pct(r.get("test_score"), 2)] if show_test else []),
                mb(r["reported_bytes"]),
                times(r.get("ratio_vs_teacher")),
                *([times(r["ratio_vs_roberta"])] if show_ref else []),
                times(r.get("ratio_vs_parent")),
                "-" if missing(r.get("score_change_vs_parent")) else f"{100 * r['score_change_vs_parent']:+.2f}",
            ]
        )

    for _, r in comp[comp["kind"] == "baseline"].sort_values("reported_bytes", ascending=False).iterrows():
        add(r)
    parents = trials.set_index("trial_id")
    for parent_id, group in children.groupby("parent_trial_id", dropna=False, sort=False):
        if not missing(parent_id) and parent_id in parents.index:
            add(parents.loc[parent_id].to_dict() | {"trial_id": parent_id})
        for _, r in group.sort_values("reported_bytes", ascending=False).iterrows():
            add(r, indent="  ")
    columns = [
        "model",
        "trial",
        score_header(task_kind, score_name) + " %",
        *([f"test {score_name} %"] if show_test else []),
        "size (MB)",
        "vs teacher",
        *(["vs RoBERTa-large"] if show_ref else []),
        "vs parent",
        "score change vs parent (pp)",
    ]
    caption = (
        "Pruned (p) and quantized (q) students under their parents. Size: disk size in MB for plain models, gzip size "
        "for pruned/quantized ones (as table 7.5); 'vs X' is how many times smaller than X (teacher: the teacher this "
        "sweep measured" + ("; RoBERTa-large: thesis table 7.5)." if show_ref else ").")
    )
    return Table(columns, rows, caption)


def _ms(value) -> str:
    return "-" if missing(value) else f"{float(value):.2f}"


def teacher_compression_table(comp: pd.DataFrame, task_kind: str, score_name: str = "score") -> Table | None:
    """The transformers made from the task's teacher (``compression`` rows of stage ``teacher_compression``, with
    ``settings`` from ``trial_results``), under the measured teacher(s) they came from: method, settings, layers,
    score, score retained, total and trainable parameters, gzip size, CPU latency. None when there are none."""
    trials = comp[(comp["kind"] == "trial") & (comp["stage"] == "teacher_compression")]
    if trials.empty:
        return None
    rows = []
    teachers = [t for t in trials["teacher"].dropna().unique()]
    base = comp[(comp["kind"] == "baseline") & comp["name"].isin(teachers)].drop_duplicates("name")
    for _, r in base.sort_values("name").iterrows():
        # the teacher's latency as its trials timed it (each beside its own model): their median
        timed = trials.loc[trials["teacher"] == r["name"], "teacher_latency_ms"].dropna()
        rows.append(
            [
                str(r["name"]),
                "-",
                "teacher",
                "-",
                "-",
                score_cell(r, task_kind, digits=2),
                "100.0",
                sci(r["params"]),
                "-",
                mb(r["gzip_bytes"]),
                _ms(timed.median() if len(timed) else None),
                "1.00x" if len(timed) else "-",
            ]
        )
    order = trials.assign(_q=trials["quantization"].notna()).sort_values(
        ["arch", "layers", "_q", "trial_id"], na_position="last"
    )
    for _, r in order.iterrows():
        speedup = r.get("speedup_vs_teacher")
        rows.append(
            [
                "  " + str(r["name"]),
                str(r["trial_id"]),
                METHOD_NAMES.get(r["arch"], str(r["arch"])),
                method_settings(r.get("settings")) or "-",
                plain_value(r.get("layers")),
                score_cell(r, task_kind, digits=2),
                pct(r.get("score_retained_vs_teacher")),
                sci(r["params"]),
                sci(r.get("trainable_params")),
                mb(r["gzip_bytes"]),
                _ms(r.get("latency_ms")),
                "-" if missing(speedup) else f"{float(speedup):.2f}x",
            ]
        )
    columns = [
        "model",
        "trial",
        "method",
        "settings",
        "layers",
        score_header(task_kind, score_name) + " %",
        "retained %",
        "params",
        "trainable",
        "gzip (MB)",
        "latency (ms)",
        "speed-up",
    ]
    caption = (
        "Transformers made from the task's fine-tuned teacher, under it: Theseus (successor layers replace the "
        "teacher's blocks), BERT-Vision (a small head over the frozen teacher's per-layer hidden states). retained: "
        "dev score as % of the teacher's; params: every parameter inference needs; trainable: those the method "
        "trained; gzip: gzip -9 of the saved weights; latency: CPU forward pass, batch size 1, median; speed-up: the "
        "teacher's latency over the model's, the two timed interleaved in the trial's process (the teacher row: the "
        "median of those teacher timings); q: int8 dynamic quantization of the Linear layers."
    )
    return Table(columns, rows, caption)


def skyline_table(
    sky: pd.DataFrame, score_measure: str, size_measure: str, score_name: str | None = None, show_test: bool = False
) -> Table:
    """The skyline's points (placed by dev figures); ``score_name`` names the ``score`` measure (the task's metric),
    ``show_test`` adds each trial's test score."""
    shown = score_name if score_measure == "score" and score_name else score_measure
    show_fidelity = "fidelity" in sky.columns and bool(sky["fidelity"].notna().any())
    rows = []
    for _, r in sky.iterrows():
        if size_measure.startswith("latency_ms"):
            size = f"{float(r['size_value']):.3f}"
        else:
            size = mb(r["size_value"]) if size_measure.endswith("_bytes") else sci(r["size_value"])
        cfg = r["source"] if r["kind"] == "baseline" else _config_summary(r)
        extra = " ".join(x for x in (r.get("pruning"), r.get("quantization")) if not missing(x))
        rows.append(
            [
                r["skyline_rank"],
                r["name"],
                "-" if missing(r["trial_id"]) else r["trial_id"],
                cfg + (f"; {extra}" if extra else ""),
                pct(r["score_value"], 2),
                *([pct(r.get("test_score"), 2)] if show_test else []),
                *([fidelity_text(r.get("fidelity"))] if show_fidelity else []),
                size,
            ]
        )
    unit = "ms" if size_measure.startswith("latency_ms") else "MB" if size_measure.endswith("_bytes") else "params"
    return Table(
        [
            "#",
            "model",
            "trial",
            "configuration",
            f"{shown} %",
            *([f"test {shown} %"] if show_test else []),
            *(["agrees with teacher"] if show_fidelity else []),
            f"{size_measure} ({unit})",
        ],
        rows,
        f"Skyline ({shown} vs {size_measure}, on dev figures): no other trial or baseline is both smaller and better."
        + (
            " agrees with teacher: % of dev examples whose predicted label is the teacher's (fidelity)."
            if show_fidelity
            else ""
        ),
    )


def class_table(classes: pd.DataFrame, trial: pd.Series | dict, score_name: str = "score") -> Table:
    """Per-class precision, recall and F1 (in %) and support of one trial on its dev split(s)."""
    splits = classes["split"].drop_duplicates().tolist()
    rows = [
        ([r["split"]] if len(splits) > 1 else [])
        + [r["class"], pct(r["precision"]), pct(r["recall"]), pct(r["f1"]), plain_value(r["support"])]
        for _, r in classes.sort_values(["split", "label_id"]).iterrows()
    ]
    columns = (["split"] if len(splits) > 1 else []) + ["class", "precision %", "recall %", "F1 %", "support"]
    caption = (
        f"Per class on {', '.join(splits)} for the best trial by dev {score_name}: {trial['trial_id']} "
        f"({trial['label']}, {pct(trial['score'], 2)}%). Support: examples of the class in the split."
    )
    return Table(columns, rows, caption)


DEPLOY_MARGINS = (1, 2, 5)  # points of dev score below the teacher's a deployed model may be


def deploy_table(comp: pd.DataFrame, lat: pd.DataFrame, task_kind: str, score_name: str = "score") -> Table | None:
    """For the fastest and the smallest model within 1, 2 and 5 points of the teacher's dev score: its size, batch-1
    CPU latency per runtime and speed-up over the teacher. ``comp``: the task's ``compression`` rows (trials: score,
    gzip size, the teacher's score); ``lat``: their ``trial_latency`` rows. Fastest: the lowest latency in any
    runtime (how it would deploy). None without latency or a teacher score."""
    trials = comp[(comp["kind"] == "trial") & comp["teacher_score"].notna()]
    if trials.empty or lat.empty:
        return None
    runtimes = [r for r in ("torch", "onnxruntime") if (lat["runtime"] == r).any()]
    wide = lat.pivot_table(index="trial_id", columns="runtime", values="p50_ms", aggfunc="first")
    teacher_ms = lat.groupby("trial_id")["teacher_p50_ms"].first()
    trials = trials[trials["trial_id"].isin(wide.index)].copy()
    if trials.empty:
        return None
    trials["_best_ms"] = [wide.loc[t, runtimes].min() for t in trials["trial_id"]]
    rows = []
    for margin in DEPLOY_MARGINS:
        ok = trials[trials["score"] >= trials["teacher_score"] - margin / 100.0]
        for what, col in (("fastest", "_best_ms"), ("smallest", "gzip_bytes")):
            if ok.empty:
                rows.append([f"{margin}", what, "none", *["-"] * (4 + len(runtimes))])
                continue
            r = ok.sort_values([col, "score", "trial_id"], ascending=[True, False, True]).iloc[0]
            t_ms = teacher_ms.get(r["trial_id"])
            speedup = "-" if missing(t_ms) or missing(r["_best_ms"]) else f"{float(t_ms) / float(r['_best_ms']):.1f}x"
            rows.append(
                [
                    f"{margin}",
                    what,
                    f"{r['name']} ({r['trial_id']})",
                    score_cell(r, task_kind, digits=2),
                    mb(r["gzip_bytes"]),
                    *(_ms3(wide.loc[r["trial_id"]].get(rt)) for rt in runtimes),
                    _ms3(t_ms),
                    speedup,
                ]
            )
    names = {"torch": "PyTorch (ms)", "onnxruntime": "ONNX Runtime (ms)"}
    columns = [
        "within (points)",
        "pick",
        "model",
        score_header(task_kind, score_name) + " %",
        "gzip (MB)",
        *(names[r] for r in runtimes),
        "teacher (ms)",
        "speed-up",
    ]
    caption = (
        "Deployment: among trials whose dev score is within 1, 2 or 5 points of the teacher's, the fastest (lowest "
        "batch-1 CPU latency in any runtime) and the smallest (gzip size). Latency: median over dev examples, batch "
        "size 1, the trial's threads; ONNX Runtime runs the trial's exported artefact (int8 ONNX for quantized "
        "students). teacher: the teacher in PyTorch, timed interleaved with the trial in its process; speed-up: the "
        "teacher's latency over the pick's fastest runtime."
    )
    return Table(columns, rows, caption)


def _ms3(value) -> str:
    return "-" if missing(value) else f"{float(value):.3f}"
