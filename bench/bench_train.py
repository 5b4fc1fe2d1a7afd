"""Training throughput on real SST-2 train: our loop (`featherweight_core.students.distill.train`) vs a naive loop.

For each student (bilstm, rnn, ffn) x embedding (bpe vs1000 d25, hash d25, char d100) it trains one epoch over a
random subset of SST-2 train with one CPU thread and prints train samples/s of

* ours:  data encoded once up front (`prepare`, timed separately), length-bucketed batches, padded fast-path RNN;
* naive: a plain textbook loop measured in the same run on the same subset, the same model weights at start,
  the same optimizer, loss, batch size and thread count: shuffle, then per batch tokenize the texts with the
  same encoder, pad to the batch's longest text, run ``nn.LSTM``/``nn.RNN`` on the padded tensor (no packing,
  no length bucketing) and classify the last hidden state of each direction.

The naive loop's recurrent model lets padding reach its final states (that is what unpacked padding does); it
is a speed reference, not a correctness one. Samples/s excludes evaluation. Machine load (``uptime``) is printed
with every figure because other work on the machine slows the loops down; compare the ratio column across runs.

    .venv/bin/python bench/bench_train.py --data data/glue --bpemb-dir data/bpemb
    .venv/bin/python bench/bench_train.py --only bilstm:hash --device cuda   # both loops on a GPU
    FEATHERWEIGHT_SHARED_DATA=data .venv/bin/python bench/bench_train.py --only bilstm:bpe --samples 8000
"""

from __future__ import annotations

import argparse
import copy
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _util import data_path, load_average  # noqa: E402

from featherweight_core.data.encoders import build_encoder  # noqa: E402
from featherweight_core.data.loading import load_task_data  # noqa: E402
from featherweight_core.data.tasks import get_task  # noqa: E402
from featherweight_core.pipeline.prepare import prepare  # noqa: E402
from featherweight_core.pipeline.run import student_config_for  # noqa: E402
from featherweight_core.students.distill import DistillConfig, distill_loss, make_optimizer, seed_everything, train  # noqa: E402
from featherweight_core.students.models import RecurrentEncoder, build_student  # noqa: E402

EMBEDDINGS = {"bpe": (25, 1000), "hash": (25, 5000), "char": (100, None)}
# samples per measurement; char sequences are ~5x longer, so recurrent students use a smaller subset
DEFAULT_SAMPLES = {
    ("bilstm", "char"): 1500,
    ("rnn", "char"): 3000,
    ("ffn", "bpe"): 30000,
    ("ffn", "hash"): 30000,
    ("ffn", "char"): 15000,
}


def naive_forward(model, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The student's own modules, used the textbook way: the RNN runs over the padded tensor, no packing."""
    x = model.embedding(ids)
    if isinstance(model.encoder, RecurrentEncoder):
        _, h = model.encoder.rnn(x)
        h = h[0] if isinstance(h, tuple) else h
        feats = torch.cat([h[0], h[1]], dim=-1)
    else:
        feats = model.encoder(x, lengths)
    return model.classifier(feats)


def naive_epoch(model, encoder, texts: list[str], labels: np.ndarray, cfg: DistillConfig, seed: int) -> float:
    """One epoch of the naive loop; returns samples/s (tokenization included, as it happens per batch)."""
    device = torch.device(cfg.device)
    model.to(device)
    model.train()
    optimizer = make_optimizer(model, cfg)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(texts))
    t0 = time.perf_counter()
    for start in range(0, len(order), cfg.batch_size):
        idx = order[start : start + cfg.batch_size]
        seqs = [encoder.encode(texts[i]) for i in idx]
        T = max(len(s) for s in seqs)
        ids = np.zeros((len(seqs), T, *seqs[0].shape[1:]), dtype=np.int64)
        for row, s in enumerate(seqs):
            ids[row, : len(s)] = s
        lengths = torch.tensor([len(s) for s in seqs], device=device)
        logits = naive_forward(model, torch.from_numpy(ids).to(device), lengths)
        loss = distill_loss(logits, torch.from_numpy(labels[idx]).to(device), None, 1.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss.item()
    return len(order) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="GLUE root (default $FEATHERWEIGHT_SHARED_DATA/glue)")
    ap.add_argument("--bpemb-dir", default=None, help="default $FEATHERWEIGHT_SHARED_DATA/bpemb")
    ap.add_argument("--samples", type=int, default=None, help="subset size for every config (default per config)")
    ap.add_argument("--only", nargs="*", default=None, help="arch:embedding pairs, e.g. bilstm:bpe ffn:hash")
    ap.add_argument("--repeats", type=int, default=1, help="alternate ours/naive this many times, report the best")
    ap.add_argument("--cache-dir", default="/tmp/featherweight-bench-cache")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N: where both loops train")
    args = ap.parse_args()
    data_dir = data_path(args.data, "glue", "--data")
    bpemb_dir = data_path(args.bpemb_dir, "bpemb", "--bpemb-dir")
    torch.set_num_threads(1)
    task = get_task("sst2")
    task_data = load_task_data(task, data_dir)
    texts = [t[0] for t in task_data.train.texts]
    configs = [(a, e) for a in ("bilstm", "rnn", "ffn") for e in EMBEDDINGS]
    if args.only:
        configs = [tuple(x.split(":")) for x in args.only]
    print(
        f"SST-2 train {len(texts)} examples; torch {torch.__version__}, 1 thread, device {args.device}; "
        f"load at start {load_average()}"
    )
    header = f"{'arch':<7}{'emb':<6}{'dim':>4}{'n':>7}{'ours/s':>10}{'naive/s':>10}{'ratio':>7}  load(1,5,15)"
    prepared_by_emb = {}
    rows = []
    for arch, emb in configs:
        dim, vocab = EMBEDDINGS[emb]
        if emb not in prepared_by_emb:
            t0 = time.perf_counter()
            prepared_by_emb[emb] = prepare(
                task,
                embedding=emb,
                emb_dim=dim,
                vocab_size=vocab,
                bpemb_dir=bpemb_dir,
                cache_dir=None,
                task_data=task_data,
            )
            secs = time.perf_counter() - t0
            print(f"encode all of train once ({emb}): {secs:.2f}s = {len(texts) / secs:,.0f} texts/s")
        p = prepared_by_emb[emb]
        encoder = build_encoder(emb, vocab, dim, bpemb_dir)
        n = min(args.samples or DEFAULT_SAMPLES.get((arch, emb), 8000), len(texts))
        subset = np.sort(np.random.default_rng(0).choice(len(texts), n, replace=False))
        train_split = p.train.take(subset)
        dev = {"validation": p.evals["validation"].take(np.arange(64))}
        sub_texts, sub_labels = [texts[i] for i in subset], task_data.train.labels[subset]
        student = student_config_for(p, arch)
        cfg = DistillConfig(max_epochs=1, seed=0, device=args.device).resolved(arch, False)
        seed_everything(0)
        init = build_student(student, p.num_embeddings, p.vectors)
        best_ours = best_naive = 0.0
        for _ in range(args.repeats):
            model = copy.deepcopy(init)
            ours = train(model, train_split, dev, task, cfg).history[0].samples_per_second
            model = copy.deepcopy(init)
            naive = naive_epoch(model, encoder, sub_texts, sub_labels, cfg, seed=0)
            best_ours, best_naive = max(best_ours, ours), max(best_naive, naive)
        rows.append((arch, emb, dim, n, best_ours, best_naive))
        print(
            f"{arch:<7}{emb:<6}{dim:>4}{n:>7}{best_ours:>10,.0f}{best_naive:>10,.0f}{best_ours / best_naive:>6.2f}x"
            f"  {load_average()}",
            flush=True,
        )
    print()
    print(header)
    for arch, emb, dim, n, ours, naive in rows:
        print(f"{arch:<7}{emb:<6}{dim:>4}{n:>7}{ours:>10,.0f}{naive:>10,.0f}{ours / naive:>6.2f}x")
    print(f"load at end {load_average()}")


if __name__ == "__main__":
    main()
