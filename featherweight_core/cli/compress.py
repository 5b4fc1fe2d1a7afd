"""``featherweight compress``: prune and/or quantize a trained student, evaluate it, measure it, save it.

Examples::

    featherweight compress runs/sst2/student.pt --data data/glue --bpemb-dir data/bpemb \\
        --prune topv --quantize all --output runs/sst2-pq
    featherweight compress runs/sst2/student.pt --data data/glue --prune movement \\
        --sparsity encoder=0.8 --prune-epochs 3 --output runs/sst2-mv80
    featherweight compress runs/sst2-ffn-hash/student.pt --data data/glue --quantize all \\
        --importance-bits 6 --output runs/sst2-ffn-hash-q6
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from featherweight_core import vocab
from featherweight_core.atomic import checked_output_dir, write_json_atomic
from featherweight_core.cli.common import (
    STUDENT_THREADS_HELP,
    add_task_args,
    add_teacher_outputs_args,
    check_data_fingerprint,
    float_in,
    fraction,
    load_student_with_task,
    nonnegative_int,
    one_line_errors,
    positive_float,
    positive_int,
    seed_int,
    teacher_outputs_of,
)
from featherweight_core.compression.prune_config import PruneConfig, PruningError
from featherweight_core.errors import ConfigError

QUANT_PARTS = vocab.MODULE_GROUPS  # what --quantize switches on (static_classifier is its own flag)


def _sparsity_arg(value: str) -> dict[str, float] | float:
    """``0.5`` (one overall target, global scope) or ``group=fraction[,group=fraction...]``."""
    value = value.strip()
    try:
        return _finite(float(value), value)
    except ValueError:
        pass
    out: dict[str, float] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        key, sep, num = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected GROUP=FRACTION (e.g. encoder=0.5), got {item!r}")
        try:
            out[key.strip()] = _finite(float(num), num)
        except ValueError:
            raise argparse.ArgumentTypeError(f"sparsity for {key.strip()!r} must be a number, got {num!r}") from None
    return out


def _finite(x: float, text: str) -> float:
    if not math.isfinite(x) or x < 0:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text.strip()!r}")
    return x


def _quant_arg(value: str) -> tuple[str, ...]:
    if value == "all":
        return QUANT_PARTS
    if value == "none":
        return ()
    parts = tuple(p.strip() for p in value.split(",") if p.strip())
    bad = [p for p in parts if p not in QUANT_PARTS]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown part {bad[0]!r}; expected 'all', 'none' or a comma list of {', '.join(QUANT_PARTS)}"
        )
    return parts


def _importance_bits_arg(value: str) -> int:
    try:
        bits = int(value)
    except ValueError:
        bits = None
    if bits not in vocab.IMPORTANCE_BITS:
        raise argparse.ArgumentTypeError(f"expected an integer in 2..8 or 16, got {value!r}")
    return bits


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compress",
        help="prune and/or quantize a trained student; evaluate, measure, save",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    one_line_errors(p)
    p.add_argument("checkpoint", help="student.pt written by `featherweight distill --output`")
    add_task_args(p, recorded="the checkpoint's")
    g = p.add_argument_group("data (to evaluate, fine-tune and calibrate; task and encoder come from the checkpoint)")
    g.add_argument(
        "--bpemb-dir", default=None, help="bpemb cache dir (bpe students; default: bpemb's own download cache)"
    )
    g.add_argument("--cache-dir", default=None, help="encoded-data cache (default ~/.cache/featherweight)")
    g.add_argument(
        "--teacher-logits", default=None, help="teacher logits for fine-tuning with --alpha < 1 (default: none)"
    )
    add_teacher_outputs_args(g, "for fine-tuning with --alpha < 1, instead of --teacher-logits")
    g = p.add_argument_group("pruning (thesis 4.2, 6.2.5; default targets: table 6.3)")
    g.add_argument("--prune", choices=vocab.PRUNE_METHODS, default=None, help="pruning method (default: no pruning)")
    g.add_argument(
        "--scope",
        choices=vocab.PRUNE_SCOPES,
        default="local",
        help="local: a target per module group; global: one ranking across groups (default local)",
    )
    g.add_argument(
        "--sparsity",
        type=_sparsity_arg,
        action="append",
        default=[],
        metavar="GROUP=FRACTION",
        help="override table 6.3's targets per module group, e.g. encoder=0.5,classifier=0.125,"
        f"embedding=0.4 (groups: {' '.join(vocab.MODULE_GROUPS)}; finer: lstm rnn linear hash_emb"
        " char_emb bpe_emb); with --scope global a bare number is the overall target",
    )
    g.add_argument(
        "--threshold",
        type=_sparsity_arg,
        action="append",
        default=[],
        metavar="GROUP=VALUE",
        help="--prune magnitude: absolute |w| thresholds instead of targets (global: a bare number)",
    )
    g.add_argument(
        "--schedule",
        choices=vocab.PRUNE_SCHEDULES,
        default=None,
        help="post: prune once after training; gradual: ramp sparsity up while fine-tuning"
        " (default: gradual for movement, post otherwise)",
    )
    g.add_argument(
        "--prune-epochs",
        type=nonnegative_int,
        default=None,
        help="fine-tuning epochs (default: 2 for gradual/movement, 0 for post)",
    )
    g.add_argument(
        "--ramp",
        type=float_in(0, 1, lo_open=True),
        default=0.7,
        help="fraction of fine-tuning over which sparsity ramps up",
    )
    g.add_argument("--score-lr", type=positive_float, default=0.01, help="movement: learning rate of the scores")
    g = p.add_argument_group("quantization (thesis 4.3, 6.1.7)")
    g.add_argument(
        "--quantize",
        type=_quant_arg,
        default=(),
        metavar="PARTS",
        help=f"'all', 'none' (default) or a comma list of {','.join(QUANT_PARTS)}",
    )
    g.add_argument(
        "--static-classifier",
        action="store_true",
        help="static int8 classifier calibrated on training batches (default: dynamic)",
    )
    g.add_argument(
        "--calibration-batches", type=positive_int, default=20, help="training batches for static calibration"
    )
    g.add_argument(
        "--importance-bits",
        type=_importance_bits_arg,
        default=16,
        metavar="{2..8,16}",
        help="hash embeddings: width of the importance scalars; 16 = float16 (default, the thesis),"
        " 2..8 = uniform codes over their range (smaller gzip: the importance scalars dominate a"
        " quantized hash student's size); 2..8 need embedding quantization",
    )
    g = p.add_argument_group("fine-tuning loss (pruning epochs); defaults: the checkpoint's distillation settings")
    g.add_argument(
        "--alpha", type=fraction, default=None, help="weight of the label CE loss (1 = labels only; default: above)"
    )
    g.add_argument(
        "--temperature", type=positive_float, default=None, help="softmax temperature before the MSE (default: above)"
    )
    g.add_argument("--optimizer", choices=vocab.OPTIMIZERS, default=None, help="default: above")
    g.add_argument("--lr", type=positive_float, default=None, help="learning rate (default: above)")
    g.add_argument("--batch-size", type=positive_int, default=None, help="default: above")
    g.add_argument("--seed", type=seed_int, default=None, help="seed of the fine-tuning (default: above)")
    g = p.add_argument_group("output")
    g.add_argument(
        "--output", default=None, help="directory for compressed.pt and result.json (default: none, nothing is saved)"
    )
    g.add_argument("--speed", action="store_true", help="also time batch-1 latency and batch-256 throughput")
    g.add_argument("--threads", type=positive_int, default=1, help=STUDENT_THREADS_HELP)
    g.add_argument("--json", action="store_true", help="print the result as one JSON object")
    g.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    p.set_defaults(func=run)


def _configs(args: argparse.Namespace):
    # deferred: loads torch and numpy (keeps --help fast)
    from featherweight_core.compression.quantize import QuantConfig

    prune = None
    targets: dict[str, float] = {}
    overall = None
    for s in args.sparsity:
        if isinstance(s, float):
            overall = s
        else:
            targets.update(s)
    thresholds: dict[str, float] = {}
    one_threshold = None
    for t in args.threshold:
        if isinstance(t, float):
            one_threshold = t
        else:
            thresholds.update(t)
    if args.prune is None:
        if targets or overall is not None or thresholds or one_threshold is not None or args.schedule:
            raise PruningError("--sparsity / --threshold / --schedule need --prune METHOD")
    else:
        if overall is not None and args.scope != "global":
            raise PruningError(
                f"--sparsity {overall} (one overall target) needs --scope global; local pruning takes GROUP=FRACTION"
            )
        prune = PruneConfig(
            method=args.prune,
            scope=args.scope,
            targets=targets,
            sparsity=overall,
            thresholds=thresholds or None,
            threshold=one_threshold,
            schedule=args.schedule,
            epochs=args.prune_epochs,
            ramp=args.ramp,
            score_lr=args.score_lr,
        )
    quant = None
    bits = args.importance_bits
    if bits != 16 and "embedding" not in args.quantize:
        raise ConfigError(f"--importance-bits {bits} needs embedding quantization (--quantize all or embedding)")
    if args.quantize or args.static_classifier:
        parts = set(args.quantize)
        if args.static_classifier:
            parts.add("classifier")
        quant = QuantConfig(
            embedding="embedding" in parts,
            encoder="encoder" in parts,
            classifier="classifier" in parts,
            static_classifier=args.static_classifier,
            calibration_batches=args.calibration_batches,
            importance_bits=bits,
        )
    if prune is None and quant is None:
        raise ConfigError("nothing to do: give --prune METHOD and/or --quantize PARTS")
    return prune, quant


def run(args: argparse.Namespace) -> int:
    with checked_output_dir(args.output, f"--output {args.output}"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import torch

    # deferred: loads torch and numpy (keeps --help fast)
    from featherweight_core.pipeline.checkpoint import save_compressed
    from featherweight_core.pipeline.compress import compress_student, default_distill_config, measure_sizes
    from featherweight_core.pipeline.prepare import DEFAULT_CACHE_DIR, prepare
    from featherweight_core.students.distill import DistillConfig, evaluate

    torch.set_num_threads(args.threads)
    prune, quant = _configs(args)  # validate before any slow work
    model, cfg, meta, task = load_student_with_task(args)
    log = None if args.quiet or args.json else sys.stderr
    data = args.data or (meta.get("data_source") if task.custom else None)
    prepared = prepare(
        task,
        data,
        cfg.embedding,
        cfg.emb_dim,
        cfg.vocab_size,
        args.bpemb_dir,
        args.teacher_logits,
        args.cache_dir or DEFAULT_CACHE_DIR,
        verbose=log is not None,
        teacher_outputs=teacher_outputs_of(args, task),
        allow_missing=args.allow_missing_outputs,
    )
    check_data_fingerprint(
        task, meta.get("data_fingerprint"), prepared.data_fingerprint, f"checkpoint {args.checkpoint}", log
    )
    if quant is not None and quant.importance_bits != 16 and cfg.embedding != "hash" and log:
        print(
            f"warning: --importance-bits applies to hash embeddings only; ignored for this {cfg.embedding} student",
            file=log,
        )
    dist = dict(meta.get("distill") or {})
    base = default_distill_config(cfg, prepared.train)
    overrides = {
        k: getattr(args, k)
        for k in ("alpha", "temperature", "optimizer", "lr", "batch_size", "seed")
        if getattr(args, k) is not None
    }
    fields = {k: dist[k] for k in ("temperature", "optimizer", "lr", "weight_decay", "seed", "grad_clip") if k in dist}
    if "alpha" in dist and (dist["alpha"] >= 1.0 or prepared.train.teacher_logits is not None):
        fields["alpha"] = dist["alpha"]
    dcfg = DistillConfig(**{**base.to_dict(), **fields, **overrides, "device": "cpu"})
    if prune is not None and prune.epochs and dcfg.alpha < 1.0 and prepared.train.teacher_logits is None:
        raise ConfigError(
            f"fine-tuning with alpha {dcfg.alpha} < 1 needs --teacher-logits FILE or --teacher-outputs FILE"
            " (or --alpha 1)"
        )

    def on_epoch(r):
        if log:
            print(
                f"prune epoch {r['epoch']}  loss {r['train_loss']:.4f}  sparsity x{r['sparsity_fraction']:.2f}"
                f"  {r['seconds']:.1f}s",
                file=log,
                flush=True,
            )

    result = compress_student(
        model, cfg, prune, quant, prepared.train, prepared.evals, task, dcfg, on_epoch, tests=prepared.tests
    )
    parent = {
        "metrics": evaluate(model, prepared.evals, task),
        "test_metrics": evaluate(model, prepared.tests, task),
        "sizes": measure_sizes(model),
    }
    summary = {
        "task": task.name,
        "task_spec": task.to_dict(),
        "parent": str(args.checkpoint),
        **result.summary(),
        "float": parent,
    }
    if args.speed:
        summary["speed"] = _speed(args, result, summary, prepared)
    if args.output:
        out = Path(args.output)
        ckpt = save_compressed(
            out / "compressed.pt",
            result,
            {
                "task": task.name,
                "task_spec": task.to_dict(),
                "data_source": prepared.data_source,
                "data_fingerprint": prepared.data_fingerprint,
                "parent": str(args.checkpoint),
            },
        )
        summary["checkpoint"] = str(ckpt)
        write_json_atomic(out / "result.json", summary)
    if args.json:
        print(json.dumps(summary))
    else:
        _print(summary)
    return 0


def _print(s: dict) -> None:
    st, f = s["student"], s["float"]
    print(
        f"{s['task']}  {st['arch']} {st['embedding']} d{st['emb_dim']}  prune {s['prune_label']}"
        f"  quant {s['quant_label']}"
    )
    for k, v in s["metrics"].items():
        print(f"  {k:<20}{f['metrics'].get(k, float('nan')):>9.4f} -> {v:.4f}")
    for k, v in s.get("test_metrics", {}).items():
        print(f"  test {k:<15}{f['test_metrics'].get(k, float('nan')):>9.4f} -> {v:.4f}")
    for k in ("disk_bytes", "gzip_bytes", "ideal_bytes", "nonzero_params"):
        a, b = f["sizes"][k], s["sizes"][k]
        print(f"  {k:<20}{a:>12,} -> {b:>12,}  ({b / a:.3f}x)" if a else f"  {k:<20}{a} -> {b}")
    sp = s["sparsity"]
    mods = "  ".join(f"{k} {sp[k]:.3f}" for k in ("embedding", "encoder", "classifier") if k in sp)
    print(f"  sparsity overall {sp['overall']:.3f}  ({mods})")
    if "speed" in s:
        print("  CPU speed (float student and compressed one, interleaved):")
        for line in s["speed"]["table"]:
            print(line)
    if s.get("checkpoint"):
        print(f"saved {s['checkpoint']}")


def _speed(args, result, summary: dict, prepared) -> dict:
    """The float and the compressed student timed interleaved in PyTorch and as ONNX in ONNX Runtime
    (featherweight_core.export.speed): batch-1 latency (median, 90th percentile) and batch-256 throughput."""
    # deferred: the export toolchain (onnx, onnxruntime) loads only when asked for
    import tempfile

    from featherweight_core.export.speed import measure_speed
    from featherweight_core.pipeline.checkpoint import save_compressed
    from featherweight_core.students.latency import latency_table

    with tempfile.TemporaryDirectory(prefix="featherweight-compress-speed-") as tmp:
        meta = {"task": summary["task"], "task_spec": summary["task_spec"], "data_source": prepared.data_source}
        path = save_compressed(Path(tmp) / "compressed.pt", result, meta)
        lats = measure_speed(
            path,
            data=prepared.data_source,
            name="compressed",
            others=[("float", args.checkpoint)],
            bpemb_dir=args.bpemb_dir,
        )
    ref = next((x for x in lats if x.model == "float" and x.runtime == "torch"), None)
    return {"latency": [x.to_dict() for x in lats], "table": latency_table(lats, ref)}
