"""Where a trial ran: the Ray node (id, host name, IP), the torch device with its real GPU index, the GPU model and the
torch / CUDA versions. Every trial outcome carries it, so results from a mixed cluster can be told apart in SQL.

Ray-free: Ray is asked only when this process already imported it and is connected (inside a trial); outside Ray the
node id and IP are None and the host is this machine's name.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

PLACEMENT_FIELDS = ("device", "node", "node_id", "host", "node_ip", "gpu_model", "torch_version", "cuda_version")


def _ray_node() -> tuple[str | None, str | None]:
    """``(node id hex, node IP)`` of the Ray node this process runs on; ``(None, None)`` outside a Ray worker or
    driver."""
    ray = sys.modules.get("ray")
    if ray is None:
        return None, None
    try:
        if not ray.is_initialized():
            return None, None
        return ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address()
    except Exception:  # a half-initialised or shutting-down Ray: no node to name
        return None, None


def physical_gpu_index(logical: int, visible: str | None = None) -> int:
    """The GPU's index on its machine (as ``nvidia-smi`` numbers it) for this process' ``cuda:<logical>``: Ray gives a
    trial its GPUs through ``CUDA_VISIBLE_DEVICES`` (``visible``, read from the environment when None), so inside a
    trial ``cuda:0`` may be the node's GPU 3. Without a numeric entry there (unset, or UUIDs) the logical index is the
    one known.

    >>> physical_gpu_index(0, "3,1"), physical_gpu_index(1, "3,1"), physical_gpu_index(1, ""), physical_gpu_index(0, "GPU-5e1")
    (3, 1, 1, 0)
    """
    if visible is None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    ids = [v.strip() for v in visible.split(",") if v.strip()]
    if logical < len(ids) and ids[logical].isdigit():
        return int(ids[logical])
    return logical


def placement(device: str | None) -> dict[str, Any]:
    """The placement fields of a :class:`trainables.trial.TrialOutcome` for a trial that ran on ``device`` (``cpu``,
    ``cuda`` or ``cuda:N`` as torch was given it; None when the trial failed before picking one).

    ``device`` comes back as ``cpu`` or ``cuda:N`` with N the GPU's index on its node; ``node`` is ``ip/node-id
    prefix`` inside Ray, the host name outside."""
    import torch

    node_id, node_ip = _ray_node()
    host = socket.gethostname() or None
    gpu_model = None
    if device is not None and device.startswith("cuda") and torch.cuda.is_available():
        try:
            logical = torch.device(device).index
            logical = torch.cuda.current_device() if logical is None else logical
            gpu_model = torch.cuda.get_device_name(logical)
            device = f"cuda:{physical_gpu_index(logical)}"
        except RuntimeError:  # a CUDA error (maybe why the trial failed): the placement must not hide the outcome
            pass
    return {
        "device": device,
        "node": f"{node_ip}/{node_id[:8]}" if node_id and node_ip else host,
        "node_id": node_id,
        "host": host,
        "node_ip": node_ip,
        "gpu_model": gpu_model,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
    }
