"""Fixtures of the export tests: one torch thread (exports are checked one example at a time, as
`featherweight export` does), the synthetic task's data and a tiny fine-tuned teacher directory."""

from __future__ import annotations

import pytest
import torch

from featherweight_core.data.loading import load_synthetic
from featherweight_core.data.tasks import get_task


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return load_synthetic(get_task("synthetic"), n_train=200, n_dev=40)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, data):
    from featherweight_core.teacher.config import TeacherConfig
    from featherweight_core.teacher.finetune import finetune_teacher
    from featherweight_core.teacher.smallbert import SmallBertConfig, build_small_teacher

    root = tmp_path_factory.mktemp("teacher")
    tiny = SmallBertConfig(vocab_size=300, hidden=32, layers=2, heads=2, intermediate=64, max_length=64)
    init = build_small_teacher(data, root / "init", tiny)
    cfg = TeacherConfig(epochs=1, batch_size=32, lr=3e-3, max_length=48, device="cpu", max_train_examples=96)
    finetune_teacher(init, data, root / "ft", cfg, progress=False, log=None)
    return root / "ft"
