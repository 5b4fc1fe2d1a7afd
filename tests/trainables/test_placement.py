"""Where a trial ran: every outcome (finished, failed; distill and compress) carries its placement, Ray-free."""

from __future__ import annotations

import json
import socket

import pytest
import torch

from featherweight_core.data.loading import load_synthetic
from featherweight_core.data.tasks import get_task
from featherweight_core.pipeline.prepare import prepare
from trainables.compress import CompressTrial, compress_trial
from trainables.distill import train_trial
from trainables.placement import PLACEMENT_FIELDS, physical_gpu_index, placement
from trainables.trial import DistillTrial, TrialOutcome


@pytest.fixture(scope="module")
def prepared():
    task = get_task("synthetic")
    return prepare(
        task,
        embedding="hash",
        emb_dim=8,
        vocab_size=200,
        cache_dir=None,
        task_data=load_synthetic(task, n_train=200, n_dev=50),
    )


def _cpu_placement(o: TrialOutcome) -> None:
    assert o.device == "cpu" and o.gpu_model is None
    assert o.host == socket.gethostname() and o.node == o.host  # outside Ray: the host names the node
    assert o.node_id is None and o.node_ip is None
    assert o.torch_version == torch.__version__ and o.cuda_version == torch.version.cuda


def test_a_synthetic_trial_outcome_carries_its_placement(prepared, tmp_path):
    trial = DistillTrial(
        task="synthetic",
        arch="ffn",
        embedding="hash",
        emb_dim=8,
        vocab_size=200,
        alpha=1.0,
        bootstrap=False,
        seed=0,
        max_epochs=1,
        patience=1,
    )
    o = train_trial(trial, prepared, "cpu", str(tmp_path / "d"))
    assert o.finished
    _cpu_placement(o)
    back = TrialOutcome.from_result(o.to_result())  # it crosses Ray in the outcome JSON
    assert {f: getattr(back, f) for f in PLACEMENT_FIELDS} == {f: getattr(o, f) for f in PLACEMENT_FIELDS}
    # a compression of it, which runs on the CPU whatever the parent trained on
    c = CompressTrial(
        parent_trial_id=trial.trial_id,
        parent_checkpoint=str(tmp_path / "d" / o.checkpoint_file),
        parent_config=trial.to_dict(),
        targets={"encoder": 0.5},
        quantize={"embedding": False, "encoder": False, "classifier": False, "static_classifier": False},
    )
    (tmp_path / "c").mkdir()
    oc = compress_trial(c, prepared, str(tmp_path / "c"))
    assert oc.finished
    _cpu_placement(oc)


def test_outcomes_from_before_placement_still_decode():
    old = TrialOutcome(status="error", error="x", started_at=1.0, finished_at=2.0, device="cuda", node="n")
    d = json.loads(old.to_result()["fw_outcome"])
    for f in ("node_id", "host", "node_ip", "gpu_model", "torch_version", "cuda_version"):
        del d[f]  # an outcome (or journal line) written before these fields existed
    back = TrialOutcome.from_result({"fw_outcome": json.dumps(d)})
    assert back.device == "cuda" and back.node == "n" and back.host is None and back.cuda_version is None


def test_failed_placement_and_gpu_index():
    p = placement(None)  # a trial that failed before it picked a device
    assert p["device"] is None and p["torch_version"] == torch.__version__ and set(p) == set(PLACEMENT_FIELDS)
    assert placement("cpu")["device"] == "cpu"
    assert physical_gpu_index(0, "3,1") == 3 and physical_gpu_index(1, "3,1") == 1
    assert physical_gpu_index(2, "3,1") == 2 and physical_gpu_index(0, "GPU-8f3e") == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_placement_names_the_gpu():
    p = placement("cuda")
    assert p["device"].startswith("cuda:") and p["device"][5:].isdigit()
    assert p["gpu_model"] == torch.cuda.get_device_name(0) and p["cuda_version"] == torch.version.cuda
