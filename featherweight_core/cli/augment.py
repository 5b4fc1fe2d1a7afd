"""``featherweight augment``: TinyBERT-style bootstrap data from a task's training split (thesis 4.1.3, 6.2.4);
``featherweight wordvectors``: train word2vec vectors on a task's training text for offline augmentation.

    featherweight augment --task sst2 --data data/glue --output runs/sst2-aug.parquet --mode embedding \\
        -n 20 -p 0.4 -k 15 --teacher runs/minilm-sst2
    featherweight augment --task qqp --data DIR --output qqp-aug.parquet --mode fill-mask --mlm bert-base-uncased \\
        --vectors glove.840B.300d.txt --ratio 0.25 --fields first
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from featherweight_core import vocab
from featherweight_core.atomic import checked_output_dir
from featherweight_core.cli.common import (
    add_task_args,
    add_teacher_outputs_args,
    device_or_auto,
    float_in,
    fraction,
    one_line_errors,
    output_parent,
    positive_int,
    resolve_task,
    seed_int,
    teacher_outputs_of,
)
from featherweight_core.errors import ConfigError


def add_parser(sub) -> None:
    p = sub.add_parser(
        "augment",
        help="write TinyBERT-style bootstrap data (Parquet) for a task's training split",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    one_line_errors(p)
    add_task_args(p)
    p.add_argument("--output", required=True, help="augmented-data file to write (.parquet)")
    g = p.add_argument_group("candidates")
    g.add_argument(
        "--mode",
        choices=vocab.AUGMENT_MODES,
        default="embedding",
        help="fill-mask: masked-LM top-K for single-piece words, word vectors otherwise;"
        " embedding: word vectors for every word (default; no masked LM needed)",
    )
    g.add_argument(
        "--mlm", default=None, help="masked LM for fill-mask mode: hub id or local directory (default: none)"
    )
    g.add_argument(
        "--vectors",
        default="task",
        help="word vectors: GloVe/word2vec text (.txt/.vec[.gz]) or word2vec binary (.bin[.gz]); pickles such as"
        " gensim .kv are refused; or 'task' = train word2vec on the task's training text (cached; default)",
    )
    g.add_argument(
        "--vectors-dim", type=positive_int, default=100, help="dimension of vectors trained with --vectors task"
    )
    g = p.add_argument_group("sampling")
    g.add_argument("-p", "--p", type=fraction, default=0.4, help="replacement probability per word (default 0.4)")
    g.add_argument(
        "-n", "--n", type=positive_int, default=20, help="variants tried per example (default 20; thesis 20/29)"
    )
    g.add_argument("-k", "--k", type=positive_int, default=15, help="candidates per word (default 15)")
    g.add_argument(
        "--ratio",
        type=float_in(0, 1, lo_open=True),
        default=1.0,
        help="keep this deterministic fraction of the generated variants (thesis: 0.25 for QQP/MNLI)",
    )
    g.add_argument(
        "--fields",
        choices=vocab.AUGMENT_FIELDS,
        default="auto",
        help="which side(s) of a sentence pair to augment (auto: first, as TinyBERT)",
    )
    g.add_argument("--seed", type=seed_int, default=0, help="seed of the word replacements")
    g.add_argument(
        "--max-examples",
        type=positive_int,
        default=None,
        help="augment only the first N training examples (default: all)",
    )
    g = p.add_argument_group("runtime")
    g.add_argument("--workers", type=positive_int, default=1, help="worker processes (default 1)")
    g.add_argument("--chunk-size", type=positive_int, default=512, help="examples per work unit / write (default 512)")
    g.add_argument("--mlm-batch-size", type=positive_int, default=64, help="masked sentences per fill-mask batch")
    g.add_argument(
        "--device",
        type=device_or_auto,
        default="cpu",
        help="device of the masked LM and the teacher: auto, cpu, cuda or cuda:N (default cpu)",
    )
    g.add_argument(
        "--teacher",
        default=None,
        help="fine-tuned teacher: label the augmented data now (soft-target store) and report teacher labels (default: none)",
    )
    add_teacher_outputs_args(g, "instead of --teacher: report the labels it gives the augmented rows")
    g = p.add_argument_group("texts to label elsewhere (a teacher you cannot run here: an LLM, a model on a cluster)")
    g.add_argument(
        "--texts",
        default=None,
        metavar="FILE",
        help="also write the augmented texts, without labels, one column per text field, to FILE (.csv, .tsv,"
        " .jsonl, .parquet), to label elsewhere and give back as --teacher-outputs / teacher: {outputs: ...}"
        " (default: none)",
    )
    g.add_argument(
        "--texts-with-task",
        action="store_true",
        help="--texts also holds the task's own texts (every split), so one labelled file teaches everything",
    )
    g.add_argument(
        "--cache-dir", default=None, help="word-vector and soft-target cache (default ~/.cache/featherweight)"
    )
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=run)

    w = sub.add_parser(
        "wordvectors",
        help="train word2vec vectors on a task's training text (for augment --vectors)",
        description="Train word2vec vectors on a task's training text and save them (word2vec binary, or text"
        " for a .txt/.vec name) for `featherweight augment --vectors FILE`; `--vectors task` does the same on"
        " the fly.",
    )
    add_task_args(w)
    w.add_argument(
        "--output", required=True, help="vectors file to write: word2vec binary (.bin) or text (.txt/.vec), [.gz]"
    )
    w.add_argument("--dim", type=positive_int, default=100, help="vector dimension")
    w.add_argument("--epochs", type=positive_int, default=10, help="word2vec training epochs")
    w.add_argument("--seed", type=seed_int, default=0, help="word2vec seed")
    w.set_defaults(func=run_wordvectors)
    one_line_errors(w)


def run(args: argparse.Namespace) -> int:
    with checked_output_dir(output_parent(args.output), f"--output {args.output}"):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    # deferred: loads torch and numpy (keeps --help fast)
    from featherweight_core.data.loading import load_task_data
    from featherweight_core.pipeline.prepare import DEFAULT_CACHE_DIR
    from featherweight_core.teacher.augment import AugmentConfig, augment_to_file, read_augmented
    from featherweight_core.teacher.softtargets import SoftTargetStore

    task = resolve_task(args)
    cfg = AugmentConfig(
        p=args.p,
        n=args.n,
        k=args.k,
        ratio=args.ratio,
        seed=args.seed,
        mode=args.mode,
        fields=args.fields,
        workers=args.workers,
        chunk_size=args.chunk_size,
        mlm_batch_size=args.mlm_batch_size,
    )
    if args.mode == "fill-mask" and not args.mlm:
        raise ConfigError("--mode fill-mask needs --mlm ID_OR_DIR (a masked LM); use --mode embedding without one")
    if args.mode == "embedding" and args.mlm:
        raise ConfigError("--mlm is only used with --mode fill-mask")
    if not args.output.endswith(".parquet"):
        raise ConfigError(f"--output {args.output!r}: the augmented data is written as Parquet; use a .parquet name")
    if args.teacher and args.teacher_outputs:
        raise ConfigError("pass one teacher, not --teacher and --teacher-outputs")
    if args.texts_with_task and not args.texts:
        raise ConfigError("--texts-with-task adds to the --texts FILE: pass --texts FILE too")
    if args.texts:
        from featherweight_core.teacher.outputs import FORMATS  # deferred: numpy (keeps --help fast)

        if Path(args.texts).suffix.lower() not in FORMATS:
            raise ConfigError(f"--texts {args.texts!r}: expected a {', '.join(sorted(FORMATS))} file name")
        if not Path(args.texts).expanduser().parent.is_dir():
            raise ConfigError(f"--texts {args.texts!r}: its directory does not exist")
    if args.teacher:
        from featherweight_core.teacher.softtargets import teacher_fingerprint

        teacher_fingerprint(args.teacher)  # fail on a bad teacher dir before the long part
    outputs = teacher_outputs_of(args, task)  # a bad file fails before the long part too
    cache = Path(args.cache_dir or DEFAULT_CACHE_DIR)
    task_data = load_task_data(task, args.data)
    report = augment_to_file(
        task_data,
        args.output,
        cfg,
        vectors=args.vectors,
        mlm=args.mlm,
        cache_dir=cache,
        device=args.device,
        progress=not args.no_progress,
        vectors_dim=args.vectors_dim,
        max_examples=args.max_examples,
    )
    if args.teacher:
        aug, _ = read_augmented(args.output, task)
        store = SoftTargetStore(cache / "softtargets", device=args.device, progress=not args.no_progress)
        _, logits = store.get_or_compute(args.teacher, aug, f"{task.name}-bootstrap")
        report.augmented_teacher_labels = logits.argmax(-1)
    if outputs is not None or args.texts:
        aug, _ = read_augmented(args.output, task)
    if outputs is not None:
        rows, cov = outputs.coverage(aug.texts, "augmented rows")
        if cov.missing:
            print(f"teacher outputs {outputs.name}: {cov}; no teacher labels in the report", file=sys.stderr)
        else:
            report.augmented_teacher_labels = outputs.targets[rows].argmax(-1)
    if args.texts:
        from featherweight_core.teacher.outputs import write_texts  # deferred: numpy (keeps --help fast)

        texts = list(aug.texts)
        if args.texts_with_task:
            texts = [t for sp in task_data.splits.values() for t in sp.texts] + texts
        n = write_texts(args.texts, texts, task)
        print(f"wrote {n:,} distinct texts to label to {args.texts}", file=sys.stderr)
    if args.json:
        out = {
            "output": report.path,
            "source_examples": report.source_examples,
            "eligible_examples": report.eligible_examples,
            "generated": report.generated,
            "kept": report.kept,
            "seconds": round(report.seconds, 2),
            "source_examples_per_second": round(report.sentences_per_second, 1),
            "config": cfg.to_dict(),
            "label_table": report.label_table(),
        }
        print(json.dumps(out))
    else:
        print(report)
    return 0


def run_wordvectors(args: argparse.Namespace) -> int:
    with checked_output_dir(output_parent(args.output), f"--output {args.output}"):
        return _run_wordvectors(args)


def _run_wordvectors(args: argparse.Namespace) -> int:
    # deferred: loads numpy (keeps --help fast)
    from featherweight_core.data.loading import load_task_data
    from featherweight_core.data.wordvectors import (
        corpus_sentences,
        output_is_binary,
        save_word_vectors,
        train_word_vectors,
    )

    output_is_binary(args.output)  # a name the loader reads, checked before training
    task = resolve_task(args)
    task_data = load_task_data(task, args.data)
    kv = train_word_vectors(corpus_sentences(task_data), dim=args.dim, epochs=args.epochs, seed=args.seed)
    path = save_word_vectors(kv, args.output)
    print(f"{len(kv.index_to_key):,} word vectors of dim {kv.vector_size} -> {path}", file=sys.stdout)
    return 0
