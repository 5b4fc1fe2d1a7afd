"""Part (a) of the GPU benchmark, run in a child process: one training epoch on the device against one CPU thread,
the loop before the device-resident rewrite on the same device, and a torch.profiler table of a few steps."""

from __future__ import annotations

import os
import time

from gpu_common import ARCH, DIM, EMB, VOCAB, load_average, say


def part_profile(cfg: dict) -> dict:
    import numpy as np
    import torch

    from featherweight_core.data.loading import load_task_data
    from featherweight_core.data.tasks import get_task
    from featherweight_core.pipeline.prepare import prepare
    from featherweight_core.pipeline.run import student_config_for
    from featherweight_core.students.distill import DistillConfig, seed_everything, train
    from featherweight_core.students.models import build_student

    device = cfg["device"]
    task = get_task("sst2")
    td = load_task_data(task, cfg["sst2"])
    t0 = time.perf_counter()
    p = prepare(task, embedding=EMB, emb_dim=DIM, vocab_size=VOCAB, cache_dir=cfg["cache_dir"], task_data=td)
    say(
        f"  data: {len(p.train)} train, {len(p.evals['validation'])} dev examples; encoded in "
        f"{time.perf_counter() - t0:.1f}s"
    )
    student = student_config_for(p, ARCH)
    dev = {"validation": p.evals["validation"]}
    out: dict = {"train_n": len(p.train), "device_name": device}
    if device == "cuda":
        out["device_name"] = torch.cuda.get_device_name(0)

    def epoch(dev_name: str, split, threads: int) -> tuple[float, float, float]:
        torch.set_num_threads(threads)
        seed_everything(0)
        model = build_student(student, p.num_embeddings, p.vectors)
        dcfg = DistillConfig(max_epochs=1, seed=0, device=dev_name).resolved(ARCH, False)
        s0 = time.perf_counter()
        r = train(model, split, dev, task, dcfg)
        return r.history[0].samples_per_second, time.perf_counter() - s0, r.history[0].score

    def host_batches_epoch(split) -> float:
        """The loop as it was before the device-resident rewrite, for comparison on the same device: numpy batches copied to the
        device every step, the loss read (and checked) every step. Train samples/s."""
        from featherweight_core.data.batching import iter_batches
        from featherweight_core.students.distill import distill_loss, make_optimizer

        seed_everything(0)
        model = build_student(student, p.num_embeddings, p.vectors).to(device)
        dcfg = DistillConfig(max_epochs=1, seed=0, device=device).resolved(ARCH, False)
        opt = make_optimizer(model, dcfg)
        rng = np.random.default_rng(0)
        dev_t = torch.device(device)
        model.train()
        s0 = time.perf_counter()
        for batch in iter_batches(split, dcfg.batch_size, rng):
            batch = batch.to(dev_t)
            loss = distill_loss(model(*batch.inputs), batch.labels, None, 1.0)
            if not torch.isfinite(loss):
                raise RuntimeError("non-finite loss")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss.item()
        return len(split) / (time.perf_counter() - s0)

    threads = max(1, min(4, os.cpu_count() or 1))
    if device == "cuda":  # warm-up: CUDA context, cuDNN handles, allocator (untimed)
        epoch("cuda", p.train.take(np.arange(min(2000, len(p.train)))), threads)
        sps, wall, score = epoch("cuda", p.train, threads)
        say(
            f"  cuda: one epoch of {len(p.train)}: {sps:,.0f} samples/s (train), {wall:.1f}s with evaluation, "
            f"dev acc {score:.3f}"
        )
        out.update(device_sps=sps, device_wall=wall)
        legacy = host_batches_epoch(p.train)
        out["host_batches_sps"] = legacy
        say(
            f"  cuda, the loop before the rewrite (numpy batches copied per step, loss read per step): {legacy:,.0f} "
            f"samples/s; device-resident loop {sps / legacy:.2f}x that"
        )
    n_cpu = min(cfg["cpu_samples"], len(p.train))
    cpu_split = p.train.take(np.sort(np.random.default_rng(0).choice(len(p.train), n_cpu, replace=False)))
    cpu_sps, cpu_wall, _ = epoch("cpu", cpu_split, 1)
    say(f"  cpu, 1 thread: {n_cpu} samples: {cpu_sps:,.0f} samples/s  (load {load_average()})")
    out.update(cpu_sps=cpu_sps)
    if device == "cpu":  # the comparison loop runs on the CPU too (there it is the same loop): checks the code path
        say(f"  cpu, the plain host loop as a reference: {host_batches_epoch(cpu_split):,.0f} samples/s")
    if device == "cuda":
        out["ratio"] = out["device_sps"] / cpu_sps
        say(f"  ratio cuda / one CPU thread: {out['ratio']:.2f}x  (target >= 4x)")

    # profile a few steps: ops by device and CPU time, and how often the host waited for the device
    from torch.profiler import ProfilerActivity, profile

    steps = cfg["profile_steps"]
    bs = 50
    sub = p.train.take(np.arange(min(steps * bs, len(p.train))))
    small_dev = {"validation": p.evals["validation"].take(np.arange(min(64, len(p.evals["validation"]))))}
    torch.set_num_threads(threads)
    seed_everything(0)
    model = build_student(student, p.num_embeddings, p.vectors)
    dcfg = DistillConfig(max_epochs=1, seed=0, device=device).resolved(ARCH, False)
    train(model, sub.take(np.arange(min(200, len(sub)))), small_dev, task, dcfg)  # warm the profiled path
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    s0 = time.perf_counter()
    with profile(activities=acts) as prof:
        train(model, sub, small_dev, task, dcfg)
        if device == "cuda":
            torch.cuda.synchronize()
    wall = time.perf_counter() - s0
    avgs = prof.key_averages()
    n_steps = -(-len(sub) // bs)
    say(f"  profile: {n_steps} training steps of {bs} + evaluation of 64 dev examples, {wall:.2f}s wall")
    dev_key = "self_device_time_total" if hasattr(avgs[0], "self_device_time_total") else "self_cuda_time_total"
    if device == "cuda":
        from torch.autograd import DeviceType

        kernels = [e for e in avgs if getattr(e, "device_type", None) == DeviceType.CUDA]
        if kernels:
            busy = sum(getattr(e, dev_key, 0) for e in kernels) / 1e6 / wall
            out["profile_busy"] = busy
            say(f"  device busy (sum of kernel self time / wall, profiler overhead included): {busy:.0%}")
        say(f"  top 10 by device time:\n{avgs.table(sort_by=dev_key, row_limit=10)}")
    say(f"  top 10 by CPU time:\n{avgs.table(sort_by='self_cpu_time_total', row_limit=10)}")
    watched = (
        "aten::_local_scalar_dense",
        "aten::item",
        "cudaStreamSynchronize",
        "cudaDeviceSynchronize",
        "cudaMemcpy",
        "cudaMemcpyAsync",
        "cudaLaunchKernel",
    )
    syncs = {e.key: e.count for e in avgs if e.key in watched}
    out["syncs"] = syncs
    say(
        f"  host waits and launches in {n_steps} steps (+ the epoch's loss read and evaluation): "
        f"{syncs or 'none recorded'}"
    )
    return out
