"""Deployment benchmark: SST-2 students as they would ship, PyTorch float / PyTorch int8 / ONNX Runtime float / ONNX
Runtime int8, beside the MiniLM teacher (6 layers, float, PyTorch), all timed interleaved in one process on one
thread. Prints figures and ratios measured in the same run, not pass/fail.

For each student (BiLSTM bpe vs1000 d25, RNN hash d25, FFN hash d25; trained here for a few epochs on a slice of
SST-2 train, hard labels): the float model, its int8 quantization (all groups, dynamic; ``featherweight compress
--quantize all``), both exported (``featherweight export``: float ONNX, and int8 ONNX quantized by ONNX Runtime's
own dynamic quantization), then:

- bytes and gzip bytes of what ships (the PyTorch state dict; the ONNX file);
- batch-1 latency (median, 90th percentile ms) over dev examples, batch-256 throughput (examples/s);
- dev accuracy of every model in every runtime (the ONNX ones run over the whole dev set in ONNX Runtime);
- the targets: the deployed int8 model (int8 ONNX in ONNX Runtime) at least 2x faster at batch 1 than the PyTorch
  float student, at least 50x faster than the teacher, within 0.5 points of the float student's accuracy.

Usage (about 2 minutes on a 2-core CPU with ``--quick``; data from ``$FEATHERWEIGHT_SHARED_DATA`` or the flags)::

    .venv/bin/python bench/bench_deploy.py --quick
    .venv/bin/python bench/bench_deploy.py --glue DIR --bpemb-dir DIR --teacher DIR --out /tmp/deploy.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from _util import data_path, load_average  # noqa: E402

STUDENTS = (("bilstm", "bpe", 1000), ("rnn", "hash", None), ("ffn", "hash", None))


def _accuracy(run, inputs, labels) -> float:
    import numpy as np

    pred = np.zeros(len(labels), np.int64)
    for idx, batch in inputs.batches:
        pred[idx] = np.asarray(run(batch)).argmax(-1)
    return float((pred == labels).mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--glue", default=None, help="GLUE dir with SST-2/ (default: $FEATHERWEIGHT_SHARED_DATA/glue)")
    ap.add_argument("--bpemb-dir", default=None, help="bpemb cache (default: $FEATHERWEIGHT_SHARED_DATA/bpemb)")
    ap.add_argument(
        "--teacher",
        default=None,
        help="fine-tuned MiniLM dir (default: $FEATHERWEIGHT_SHARED_DATA/teacher/minilm-sst2/model)",
    )
    ap.add_argument("--quick", action="store_true", help="smaller training slice, fewer epochs, shorter timing")
    ap.add_argument("--train-limit", type=int, default=None, help="training rows (default 20000; --quick 6000)")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default 3; --quick 2)")
    ap.add_argument("--out", default=None, help="write all figures as JSON here")
    args = ap.parse_args(argv)
    glue = data_path(args.glue, "glue", "--glue")
    bpemb = data_path(args.bpemb_dir, "bpemb", "--bpemb-dir")
    teacher = data_path(args.teacher, "teacher/minilm-sst2/model", "--teacher")
    limit = args.train_limit or (6000 if args.quick else 20000)
    epochs = args.epochs or (2 if args.quick else 3)

    import numpy as np
    import torch

    from featherweight_core.data.loading import load_task_data
    from featherweight_core.data.tasks import get_task
    from featherweight_core.export.exporter import export_model
    from featherweight_core.export.parity import onnx_runner, student_inputs
    from featherweight_core.export.sources import load_source
    from featherweight_core.export.speed import measure_speed
    from featherweight_core.pipeline.checkpoint import save_compressed
    from featherweight_core.pipeline.compress import QuantConfig, compress_student
    from featherweight_core.pipeline.prepare import prepare
    from featherweight_core.pipeline.run import run_distillation, student_config_for
    from featherweight_core.students.distill import DistillConfig
    from featherweight_core.students.latency import latency_table
    from featherweight_core.students.measure import disk_size

    torch.set_num_threads(1)
    started = time.perf_counter()
    task = get_task("sst2")
    data = load_task_data(task, str(glue))
    dev = data.splits["validation"]
    labels = np.asarray(dev.labels)
    work = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    sources: list[tuple[str, Path]] = []
    shipped: dict[str, dict] = {}
    for arch, emb, vocab in STUDENTS:
        name = f"{arch}-{emb}-d25"
        prepared = prepare(task, None, emb, 25, vocab, bpemb, cache_dir=work / "cache", task_data=data)
        prepared.train = prepared.train.take(np.arange(min(limit, len(prepared.train))))
        # Adam at 3e-3 (as the demo): the thesis' per-arch optimizers need many more epochs than a benchmark has
        cfg = DistillConfig(alpha=1.0, max_epochs=epochs, patience=epochs, seed=0, optimizer="adam", lr=0.003)
        t0 = time.perf_counter()
        result = run_distillation(prepared, student_config_for(prepared, arch), cfg, output_dir=work / name)
        q = compress_student(
            result.model, result.student_config, None, QuantConfig(), prepared.train, prepared.evals, task, cfg
        )
        meta = {"task": task.name, "task_spec": task.to_dict(), "data_source": str(glue)}
        int8_path = save_compressed(work / f"{name}-int8" / "compressed.pt", q, meta)
        print(f"{name}: trained and quantized in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        for precision, path in (("float", work / name / "student.pt"), ("int8", int8_path)):
            label = f"{name} {precision}"
            src = load_source(path)
            art = export_model(path, work / f"{name}-{precision}-onnx", data, bpemb_dir=bpemb)
            inputs, _ = student_inputs(src, [dev], bpemb, 64 if precision == "float" else 1)
            torch_bytes = disk_size(src.model)
            shipped[label] = {
                "torch": {
                    "bytes": torch_bytes["disk_bytes"],
                    "gzip_bytes": torch_bytes["gzip_bytes"],
                    "accuracy": _accuracy(lambda b, m=src.model: m(*b).detach().numpy(), inputs, labels),
                },
                "onnxruntime": {
                    "bytes": (Path(art.output_dir) / art.model_file).stat().st_size,
                    "gzip_bytes": art.model_gzip_bytes,
                    "accuracy": _accuracy(onnx_runner(Path(art.output_dir) / art.model_file), inputs, labels),
                    "disagree_with_torch": art.predictions_disagree,
                },
                "artefact": art.output_dir,
            }
            sources.append((label, path))
    n, seconds = (60, 0.5) if args.quick else (200, 2.0)
    first, *others = sources
    lats = measure_speed(
        first[1],
        task_data=data,
        teacher_dir=teacher,
        bpemb_dir=bpemb,
        n=n,
        min_seconds=seconds,
        teacher_max_length=64,
        name=first[0],
        others=others,
    )
    by = {(x.model, x.runtime): x for x in lats}
    t = by[("teacher", "torch")]
    print(f"\nload average {load_average()}; {lats[0].machine}; torch threads {lats[0].threads}")
    head = f"{'model':<22} {'runtime':<12} {'bytes':>10} {'gzip':>10} {'p50 ms':>8} {'p90 ms':>8} {'ex/s@256':>9} {'acc %':>6}"
    print(head)
    print(
        f"{'MiniLM-L6 teacher':<22} {'torch':<12} {'':>10} {'':>10} {t.p50_ms:>8.3f} {t.p90_ms:>8.3f}"
        f" {t.throughput:>9,.0f} {'':>6}"
    )
    for label, _ in sources:
        for runtime in ("torch", "onnxruntime"):
            x, s = by[(label, runtime)], shipped[label][runtime]
            print(
                f"{label:<22} {runtime:<12} {s['bytes']:>10,} {s['gzip_bytes']:>10,} {x.p50_ms:>8.3f} {x.p90_ms:>8.3f}"
                f" {x.throughput:>9,.0f} {s['accuracy'] * 100:>6.2f}"
            )
    print("\nratios (batch 1, median; deployed = int8 ONNX in ONNX Runtime):")
    targets = []
    for arch, emb, _ in STUDENTS:
        name = f"{arch}-{emb}-d25"
        deployed, flt = by[(f"{name} int8", "onnxruntime")], by[(f"{name} float", "torch")]
        acc_drop = (
            shipped[f"{name} float"]["torch"]["accuracy"] - shipped[f"{name} int8"]["onnxruntime"]["accuracy"]
        ) * 100
        vs_float, vs_teacher = flt.p50_ms / deployed.p50_ms, t.p50_ms / deployed.p50_ms
        ok = vs_float >= 2 and vs_teacher >= 50 and acc_drop <= 0.5
        targets.append(ok)
        print(
            f"  {name:<16} vs PyTorch float {vs_float:5.2f}x   vs teacher {vs_teacher:7.1f}x   accuracy"
            f" {-acc_drop:+.2f} points   int8 ONNX vs PyTorch int8: {shipped[f'{name} int8']['onnxruntime']['disagree_with_torch']}"
            f" of {len(labels)} predictions differ   {'target met' if ok else 'target missed'}"
        )
    print(f"\n{sum(targets)} of {len(targets)} students meet the targets; {time.perf_counter() - started:.0f} s in all")
    print("\n".join(latency_table(lats, t)), file=sys.stderr)
    if args.out:
        Path(args.out).write_text(
            json.dumps({"latency": [x.to_dict() for x in lats], "shipped": shipped, "load": load_average()}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
