"""Where a trial's saved model goes, and how a trainable reports it.

A trainable saves its student (or compressed model) straight into its final directory under the sweep's storage,
``<storage>/<name>/checkpoints/<trial_id>/``: built in a temporary sibling and swapped into place when complete
(``featherweight_core.atomic.atomic_dir``), so a reader never sees half a checkpoint and a re-run trial replaces its
own. ``sweep.tuner.build_tuner`` passes the root in every trial's config (``checkpoint_root``); the driver-side
callback records ``<root>/<trial_id>/<checkpoint_file>`` in the database.

This replaces reporting a ``tune.Checkpoint`` of a temporary directory, which Tune copied into its experiment
directory and which made Tune snapshot its whole experiment state after every trial (``CheckpointConfig``'s
``num_to_keep`` forces a snapshot per reported checkpoint): O(trials^2) JSON per sweep. Without a root in the config
(a trainable called outside ``build_tuner``) the old way is kept.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from featherweight_core.atomic import atomic_dir
from trainables.latency import with_latency
from trainables.trial import TrialOutcome

CHECKPOINT_ROOT = "checkpoint_root"  # the trial-config key


def checkpoint_dir(root: str | Path, trial_id: str) -> Path:
    """A trial's checkpoint directory under the sweep's checkpoint root."""
    return Path(root) / trial_id


def save_and_report(
    config: dict[str, Any],
    trial_id: str,
    run: Callable[[str], TrialOutcome],
    to_result: Callable[[TrialOutcome], dict],
    task: str | None = None,
) -> TrialOutcome:
    """``run(out_dir)`` trains and saves into ``out_dir``; the outcome is reported to Tune once the files are in
    their final place (or, without ``config["checkpoint_root"]``, reported with a Tune checkpoint of a temporary
    directory). When the config asks for latency (``trainables.latency``), the saved model of ``task`` is timed
    first. An exception from ``run`` leaves no directory behind and propagates."""
    from ray import tune

    root = config.get(CHECKPOINT_ROOT)
    if root:
        with atomic_dir(checkpoint_dir(root, trial_id)) as out:
            outcome = with_latency(config, task or "", out, run(str(out)))
        tune.report(to_result(outcome))
        return outcome
    with tempfile.TemporaryDirectory(prefix="fw-trial-") as out:
        outcome = with_latency(config, task or "", out, run(out))
        tune.report(to_result(outcome), checkpoint=tune.Checkpoint.from_directory(out))
    return outcome
