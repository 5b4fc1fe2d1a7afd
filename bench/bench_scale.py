"""Data at scale: SST-2 with the thesis' full N=20 bootstrap data (~1.3M augmented rows) through the sweep's data path.

Steps, each timed (the outputs are cached in ``--work`` and reused by a later run, which says so):

1. the small demo teacher (``featherweight_core.teacher.smallbert.build_demo_teacher``) fine-tuned on SST-2: a MiniLM teacher
   is too slow to label 1.3M rows on a CPU, and the teacher's quality does not change any figure below;
2. bootstrap data: ``featherweight_core.teacher.augment.augment_to_file`` in embedding mode, N=20 (``--n``), over the first
   ``--max-source`` training sentences (default: all 67,349);
3. ``featherweight_core.pipeline.prepare.prepare`` with that teacher and bootstrap file (encoding, the teacher's logits for
   train and the augmented rows through the soft-target store), then ``Prepared.share_bootstrap`` as stage 1 does;
4. ``ray.put`` of the dataset into a local Ray's object store, as ``sweep.stages.distill`` does;
5. ``--workers`` concurrent trial workers (Ray actors, one CPU each) that do what a distillation trial does before
   it trains: ``trainables.distill.fetch_prepared``, ``Prepared.train_split(True)``, the first length-bucketed
   batch and one training step of an FFN student; then the same again in the same worker (a reused actor's next
   trial).

Printed: the time of each step, the driver's peak RSS (``ru_maxrss``), the dataset's size as numpy arrays and as
pickled (protocol 5: in-band bytes and out-of-band buffers), the bytes the object store holds after the put, each
worker's start-up time (trial start to first training step), whether the arrays a worker gets are read-only views of
the object store (zero-copy), and each worker's memory: RSS, USS (private pages: what the worker holds that nobody
else does) and shared pages, against the dataset's size. If workers copied the dataset, each would hold its size in
USS.

    export FEATHERWEIGHT_SHARED_DATA=data   # holding glue/; or pass --data
    .venv/bin/python bench/bench_scale.py --work /tmp/fw-scale                    # all 67,349 source sentences
    .venv/bin/python bench/bench_scale.py --work /tmp/fw-scale --max-source 10000 # a subset; figures extrapolated

With ``--max-source`` below the full train split, sizes are also extrapolated linearly to the full split (labelled as
such). Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _util import data_path, load_average  # noqa: E402

MB = 1e6


def mb(n: float) -> str:
    return f"{n / MB:,.1f} MB"


def peak_rss() -> float:
    """This process's peak RSS in bytes (ru_maxrss is in kB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_of(pid: int | str = "self") -> dict[str, int]:
    """RSS, USS (private clean + dirty) and shared pages of a process, from /proc/<pid>/smaps_rollup, in bytes."""
    vals: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, rest = line.split(":", 1)
        vals[key] = int(rest.split()[0]) * 1024
    return {
        "rss": vals.get("Rss", 0),
        "uss": vals.get("Private_Clean", 0) + vals.get("Private_Dirty", 0),
        "shared": vals.get("Shared_Clean", 0) + vals.get("Shared_Dirty", 0),
    }


def array_bytes(obj, seen=None) -> int:
    """Bytes held in numpy arrays anywhere inside ``obj`` (dataclasses, dicts, tuples, lists of arrays)."""
    import dataclasses

    import numpy as np

    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return sum(array_bytes(getattr(obj, f.name), seen) for f in dataclasses.fields(obj))
    if isinstance(obj, dict):
        return sum(array_bytes(v, seen) for v in obj.values())
    if isinstance(obj, tuple | list) and obj and not isinstance(obj[0], str):
        return sum(array_bytes(v, seen) for v in obj)
    return 0


def pickled_size(obj) -> tuple[int, int]:
    """(in-band bytes, out-of-band buffer bytes) of ``obj`` pickled with protocol 5, as Ray serializes it: the
    out-of-band buffers are what a reader maps zero-copy; the in-band part is unpickled (copied) by every reader."""
    bufs: list[pickle.PickleBuffer] = []
    inband = pickle.dumps(obj, protocol=5, buffer_callback=bufs.append)
    return len(inband), sum(b.raw().nbytes for b in bufs)


def timed(label: str, fn, cached: bool = False):
    t0 = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t0
    print(
        f"  {label:<44} {dt:8.1f} s{'  (cached from an earlier run)' if cached else ''}  load {load_average()}",
        flush=True,
    )
    return out, dt


def make_worker_class():
    import ray

    @ray.remote(num_cpus=1)
    class TrialWorker:
        """Does what a distillation trial does before and at its first training step, and reports timings and
        memory."""

        def __init__(self) -> None:
            import torch

            from trainables.distill import fetch_prepared  # noqa: F401  (the import a trial worker pays once)

            torch.set_num_threads(1)

        def memory(self) -> dict[str, int]:
            return memory_of()

        def trial(self, data: dict, key: str, bootstrap: bool = True) -> dict:
            import numpy as np
            import torch

            from featherweight_core.data.batching import iter_batches
            from featherweight_core.pipeline.run import student_config_for
            from featherweight_core.students.models import build_student
            from trainables.distill import fetch_prepared

            t0 = time.perf_counter()
            prepared = fetch_prepared(data, key)
            t_get = time.perf_counter() - t0
            split = prepared.train_split(bootstrap)
            t_split = time.perf_counter() - t0 - t_get
            arrays = [
                a
                for a in (split.labels, split.teacher_logits, *(x for f in split.fields for x in (f.ids, f.offsets)))
                if a is not None
            ]
            zero_copy = all(not a.flags.writeable and not a.flags.owndata for a in arrays)
            batch = next(iter_batches(split, 50, np.random.default_rng(0)))
            cfg = student_config_for(prepared, "ffn")
            model = build_student(cfg, prepared.num_embeddings, prepared.vectors)
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            loss = torch.nn.functional.cross_entropy(model(*batch.inputs), batch.labels)
            loss.backward()
            opt.step()
            t_step = time.perf_counter() - t0
            return {
                "get": t_get,
                "split": t_split,
                "first_step": t_step,
                "zero_copy": zero_copy,
                "rows": len(split),
                "mem": memory_of(),
                "pid": os.getpid(),
            }

    return TrialWorker


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="GLUE root (default $FEATHERWEIGHT_SHARED_DATA/glue)")
    ap.add_argument("--work", type=Path, default=None, help="keeps the teacher, bootstrap file and caches for reuse")
    ap.add_argument("--n", type=int, default=20, help="augmented variants tried per sentence (the thesis: 20)")
    ap.add_argument("--max-source", type=int, default=None, help="augment only the first rows of train")
    ap.add_argument("--augment-workers", type=int, default=1)
    ap.add_argument("--embedding", default="hash", choices=["hash", "char"])
    ap.add_argument("--vocab-size", type=int, default=5000, help="hash importance rows")
    ap.add_argument("--dim", type=int, default=25)
    ap.add_argument("--workers", type=int, default=2, help="concurrent trial workers")
    args = ap.parse_args()
    args.data = data_path(args.data, "glue", "--data")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="fw-bench-scale-") as tmp:
        run(args, args.work or Path(tmp))


def run(args: argparse.Namespace, work: Path) -> None:
    import torch

    from featherweight_core.data.loading import load_task_data
    from featherweight_core.data.tasks import get_task
    from featherweight_core.pipeline.prepare import prepare
    from featherweight_core.teacher.augment import AugmentConfig, augment_to_file
    from featherweight_core.teacher.smallbert import build_demo_teacher

    torch.set_num_threads(1)
    work.mkdir(parents=True, exist_ok=True)
    task = get_task("sst2")
    print(
        f"SST-2 from --data; bootstrap N={args.n}; {args.embedding} d{args.dim}; work dir {work}; "
        f"load {load_average()}",
        flush=True,
    )
    task_data, _ = timed("load SST-2", lambda: load_task_data(task, args.data))
    n_train = len(task_data.train)
    n_source = min(args.max_source or n_train, n_train)
    scale = n_train / n_source
    teacher_dir = work / "teacher"
    _, t_teacher = timed(
        "small teacher (build + fine-tune, 4 epochs)",
        lambda: teacher_dir.is_dir() or build_demo_teacher(task_data, teacher_dir),
        cached=teacher_dir.is_dir(),
    )
    aug = work / f"sst2-aug-n{args.n}-{n_source}.parquet"
    cached = aug.is_file()
    report, t_aug = timed(
        f"augment {n_source:,} sentences (embedding mode)",
        lambda: (
            None
            if cached
            else augment_to_file(
                task_data,
                aug,
                AugmentConfig(n=args.n, workers=args.augment_workers),
                cache_dir=work,
                max_examples=n_source,
            )
        ),
        cached=cached,
    )
    if report is not None:
        print(f"    {str(report).splitlines()[0]}")
    prepared, t_prep = timed(
        "prepare (encode + teacher logits + bootstrap)",
        lambda: prepare(
            task,
            task_data=task_data,
            embedding=args.embedding,
            emb_dim=args.dim,
            vocab_size=args.vocab_size,
            teacher=teacher_dir,
            bootstrap=aug,
            cache_dir=work / "cache",
        ),
    )
    n_boot = len(prepared.bootstrap)
    _, t_share = timed("share_bootstrap (train + bootstrap, once)", prepared.share_bootstrap)
    rows = len(prepared.train_bootstrap)
    arrays = array_bytes(prepared.train_bootstrap)
    inband, outband = pickled_size(prepared)
    print()
    print(
        f"bootstrap rows {n_boot:,} from {n_source:,} sentences ({n_boot / n_source:.1f} per sentence); trials that "
        f"bootstrap train on {rows:,} rows"
    )
    print(
        f"dataset: the train+bootstrap split's numpy arrays {mb(arrays)}; the whole Prepared pickled {mb(inband + outband)} = {mb(outband)} out-of-band buffers (zero-copy for readers) + "
        f"{mb(inband)} in-band (unpickled by each reader)"
    )
    print(
        f"driver peak RSS after prepare: {mb(peak_rss())} (labelling the bootstrap rows with the teacher, when not"
        " cached, dominates it: the soft-target store runs the teacher over all rows at once)"
    )

    import ray

    ray.init(
        address="local", num_cpus=args.workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False
    )
    try:
        shm0 = _shm_used()
        ref, t_put = timed("ray.put of the dataset", lambda: ray.put(prepared))
        put_bytes = _shm_used() - shm0
        print(f"object store: /dev/shm (where this node's object store keeps its objects) grew {mb(put_bytes)}")
        key = "sst2"
        data = {key: ref}
        Worker = make_worker_class()
        workers = [Worker.remote() for _ in range(args.workers)]
        # a warm-up trial on a small dataset (the dev split as train) first: the first trial of a worker also imports
        # what training needs (torch._dynamo through the optimizer, the students) and builds its first model, which
        # must not be counted as holding the dataset
        import dataclasses

        small = dataclasses.replace(
            prepared, train=next(iter(prepared.evals.values())), bootstrap=None, train_bootstrap=None
        )
        ray.get([w.trial.remote({"small": ray.put(small)}, "small", False) for w in workers])
        base = ray.get([w.memory.remote() for w in workers])
        first = ray.get([w.trial.remote(data, key) for w in workers])
        second = ray.get([w.trial.remote(data, key) for w in workers])
        held = ray.get([w.memory.remote() for w in workers])
    finally:
        ray.shutdown()
    print()
    print(f"{args.workers} concurrent trial workers (memory 'before' is after a warm-up trial on the dev split):")
    for i, (b, f, s, h) in enumerate(zip(base, first, second, held, strict=True)):
        print(
            f"  worker {i}: start-up to first training step {f['first_step']:.2f} s (fetch {f['get']:.2f} s, "
            f"train_split {f['split'] * 1000:.1f} ms); next trial in the same worker {s['first_step']:.2f} s "
            f"(fetch {s['get'] * 1000:.1f} ms); arrays zero-copy read-only views: {'yes' if f['zero_copy'] else 'NO'}"
        )
        print(
            f"            memory before the trial RSS {mb(b['rss'])} USS {mb(b['uss'])}; holding the dataset RSS "
            f"{mb(h['rss'])} USS {mb(h['uss'])} (+{mb(h['uss'] - b['uss'])}) shared {mb(h['shared'])}"
        )
    uss_growth = sum(h["uss"] - b["uss"] for b, h in zip(base, held, strict=True))
    print(
        f"  USS added by all {args.workers} workers together: {mb(uss_growth)} for a dataset of "
        f"{mb(inband + outband)} ({uss_growth / (inband + outband):.0%}; a copy per worker would be "
        f"{args.workers * 100}%)"
    )
    print()
    print("summary")
    print(
        f"  teacher {t_teacher:.0f} s, augment {t_aug:.0f} s, prepare {t_prep:.0f} s, share {t_share:.1f} s, "
        f"put {t_put:.1f} s; driver peak RSS {mb(peak_rss())}"
    )
    if scale > 1.01:
        print(
            f"  extrapolated to all {n_train:,} sentences (x{scale:.2f}, linear; not measured): ~{n_boot * scale:,.0f} "
            f"bootstrap rows, dataset ~{mb((inband + outband) * scale)}, augment ~{t_aug * scale:.0f} s, "
            f"prepare ~{t_prep * scale:.0f} s"
        )
    print(f"load average at the end: {load_average()}")


def _shm_used() -> int:
    import shutil

    try:
        u = shutil.disk_usage("/dev/shm")
        return u.used
    except OSError:
        return 0


if __name__ == "__main__":
    main()
