"""Tiny seeded students for the export tests: a float checkpoint, and a pruned + quantized one trained on the
synthetic task's data."""

from __future__ import annotations

from pathlib import Path

import torch

from featherweight_core.data.encoders import build_encoder
from featherweight_core.data.tasks import get_task
from featherweight_core.pipeline.checkpoint import save_checkpoint, save_compressed
from featherweight_core.pipeline.compress import PruneConfig, QuantConfig, compress_student
from featherweight_core.pipeline.prepare import encode_split
from featherweight_core.students.distill import DistillConfig
from featherweight_core.students.models import StudentConfig, build_student

TASK = get_task("synthetic")
META = {"task": TASK.name, "task_spec": TASK.to_dict(), "data_source": "synthetic"}


def student_config(arch: str, emb: str, pooling: str = "last") -> StudentConfig:
    return StudentConfig(
        arch=arch,
        embedding=emb,
        emb_dim=8,
        num_labels=2,
        vocab_size=200 if emb == "hash" else None,
        hidden=8,
        classifier_hidden=8,
        pooling=pooling,
    ).resolved()


def make_student(tmp: Path, arch: str, emb: str, seed: int = 0) -> tuple[Path, torch.nn.Module, StudentConfig]:
    cfg = student_config(arch, emb)
    torch.manual_seed(seed)
    model = build_student(cfg).eval()
    path = save_checkpoint(tmp / f"{arch}-{emb}-{seed}.pt", model, cfg, 35 if emb == "char" else 200, META)
    return path, model, cfg


def make_compressed(
    tmp: Path, data, arch: str, emb: str, quant: QuantConfig, pooling: str = "last", seed: int = 0
) -> tuple[Path, dict]:
    cfg = student_config(arch, emb, pooling)
    torch.manual_seed(seed)
    model = build_student(cfg).eval()
    enc = build_encoder(emb, cfg.vocab_size)
    train = encode_split(enc, data.splits["train"])
    evals = {"validation": encode_split(enc, data.splits["validation"])}
    prune = PruneConfig(method="magnitude", scope="global", sparsity=0.4)
    res = compress_student(model, cfg, prune, quant, train, evals, TASK, DistillConfig(alpha=1.0, batch_size=64))
    path = save_compressed(tmp / f"{arch}-{emb}-compressed.pt", res, META)
    recorded = {
        "params": res.sizes["params"]["total"],
        "disk_bytes": res.sizes["disk_bytes"],
        "gzip_bytes": res.sizes["gzip_bytes"],
    }
    return path, recorded


def bpemb_vs1000(shared_data: Path) -> Path:
    """The shared data's BPEmb directory with the vs1000 d25 files (the test skips without them)."""
    import pytest

    bpemb_dir = shared_data / "bpemb"
    if not (bpemb_dir / "en" / "en.wiki.bpe.vs1000.model").is_file():
        pytest.skip("no BPEmb vs1000 files in the shared data")
    return bpemb_dir


def make_bpe_student(path: Path, seed: int = 0) -> Path:
    """An untrained FFN over BPEmb vs1000 d25 pieces, saved as a student checkpoint at ``path``."""
    cfg = StudentConfig(
        arch="ffn", embedding="bpe", emb_dim=25, num_labels=2, vocab_size=1000, classifier_hidden=8
    ).resolved()
    torch.manual_seed(seed)
    return save_checkpoint(path, build_student(cfg), cfg, 1001, META)
