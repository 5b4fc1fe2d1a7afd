"""Unstructured pruning of students (thesis 4.2, 6.1.6, 6.2.5): magnitude, top-v and movement, local or global,
one-shot after training or gradually while fine-tuning on the distillation loss.

Module groups and their thesis table 6.3 default sparsity targets (only the groups a student has apply):

=============  ========  ===============================================================
group          default   weights pruned (biases never are)
=============  ========  ===============================================================
``lstm``       0.5       the BiLSTM's ``weight_ih_l0``, ``weight_hh_l0`` (and ``_reverse``)
``rnn``        0.1       the Elman RNN's ``weight_ih_l0``, ``weight_hh_l0`` (and ``_reverse``)
``linear``     0.125     both classifier Linear weights
``hash_emb``   0.0       hash embedding importance scalars and bucket table
``char_emb``   0.3       character embedding table
``bpe_emb``    0.4       byte-pair embedding table
=============  ========  ===============================================================

Aliases, spelled as the module groups users name everywhere (:data:`featherweight_core.vocab.MODULE_GROUPS`):
``embedding`` is this student's ``*_emb`` group, ``encoder`` its ``lstm`` / ``rnn`` group, ``classifier`` its
``linear`` group.

Methods (the mask keeps weights with high *importance*: ``|w|`` for magnitude / top-v, learned scores for movement):

- ``topv``: prune exactly ``k = round(target * n)`` weights of lowest ``|w|`` per tensor (local) or across all
  pruned tensors (global). Ties are broken by position: the earlier element is pruned first.
- ``magnitude``: prune every weight with ``|w| < t``; a weight equal to ``t`` is kept. ``t`` is an absolute
  threshold when given (``thresholds`` per group, ``threshold`` for global scope), otherwise the smallest
  ``|w|`` that top-v would keep - so without ties both methods prune the same weights, and with ties at the
  boundary magnitude prunes fewer (achieved sparsity <= target).
- ``movement`` (Sanh et al. 2020, hard movement / straight-through top-v): every pruned tensor gets a score per
  weight (initialised to 0) and the forward pass uses ``W * TopV(S)``; the straight-through estimator passes
  ``dL/dS = dL/dW' * W`` to the scores, which are trained (Adam, ``score_lr``) together with the weights on the
  distillation loss while the sparsity ramps up. Weights that move towards zero lose score and are pruned.

Scope ``local`` applies each group's target to each of its tensors; ``global`` ranks all tensors of the groups
with a non-zero target together and prunes ``sparsity`` of them overall (default: the count-weighted mean of the
per-group targets, i.e. as many weights as local pruning would remove, chosen by one ranking).

Schedules: ``post`` prunes once (then optionally fine-tunes ``epochs`` epochs with masks fixed); ``gradual``
fine-tunes ``epochs`` epochs while the sparsity follows the cubic schedule of Zhu & Gupta (2017)
``s_t = s_final * (1 - (1 - t / (ramp * T))^3)`` and stays at ``s_final`` for the last ``1 - ramp`` of the steps.

Masks are applied by a forward pre-hook (like ``torch.nn.utils.prune``, which also keeps ``nn.LSTM``'s flat
weights in sync): the tensor ``name`` becomes ``name_orig * name_mask``. :func:`make_permanent` bakes the zeros
into a plain Parameter and removes every trace, as needed before saving or quantizing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from featherweight_core.compression.prune_config import PruneConfig, PruningError
from featherweight_core.compression.pruner import Pruner, Slot, cubic_fraction, prunable_tensors
from featherweight_core.data.batching import bucket_batches, iter_batches
from featherweight_core.students.distill import TrainingError, distill_loss, make_optimizer

# ----------------------------------------------------------------------------------------------------------------
# Sparsity report


def sparsity_report(model: nn.Module, arch: str, embedding: str) -> dict[str, Any]:
    """Fraction of zeros among the prunable weights (biases excluded): per tensor (``tensors``), per group
    (``groups``: lstm, linear, bpe_emb...), per module (``embedding``, ``encoder``, ``classifier``) and
    ``overall``. Works with masks installed or after :func:`make_permanent`."""
    tensors: dict[str, float] = {}
    counts: dict[str, list[int]] = {}
    for m, n, g, path in prunable_tensors(model, arch, embedding):
        w = Slot(m, n, g, path).weight()
        zeros, numel = int((w == 0).sum()), w.numel()
        tensors[path] = zeros / numel if numel else 0.0
        for key in (f"group:{g}", f"module:{path.split('.', 1)[0]}", "overall"):
            c = counts.setdefault(key, [0, 0])
            c[0] += zeros
            c[1] += numel
    frac = {k: (z / n if n else 0.0) for k, (z, n) in counts.items()}
    out: dict[str, Any] = {k.split(":", 1)[1]: v for k, v in frac.items() if k.startswith("module:")}
    out["overall"] = frac.get("overall", 0.0)
    out["groups"] = {k.split(":", 1)[1]: v for k, v in frac.items() if k.startswith("group:")}
    out["tensors"] = tensors
    return out


# ----------------------------------------------------------------------------------------------------------------
# Pruning with optional fine-tuning on the distillation loss


def prune_student(
    model: nn.Module,
    cfg: PruneConfig,
    arch: str,
    embedding: str,
    train_split=None,
    distill_cfg=None,
    on_epoch=None,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Prune ``model`` in place per ``cfg``; returns (model with permanent zeros, per-epoch fine-tuning log).

    ``train_split`` (EncodedSplit, with teacher logits when ``distill_cfg.alpha < 1``) and a *resolved*
    ``distill_cfg`` are needed when ``cfg.epochs > 0``. Deterministic for a given ``distill_cfg.seed``.
    """
    pruner = Pruner(model, cfg, arch, embedding)
    log: list[dict[str, float]] = []
    if cfg.epochs == 0:
        return pruner.finish(), log
    if train_split is None or distill_cfg is None:
        raise PruningError(f"{cfg.schedule} pruning with {cfg.epochs} fine-tuning epochs needs a training split")
    if distill_cfg.alpha < 1.0 and train_split.teacher_logits is None:
        raise TrainingError(f"alpha={distill_cfg.alpha} < 1 needs teacher logits on the training split")
    steps_per_epoch = len(bucket_batches(train_split.lengths, distill_cfg.batch_size, None))
    total = steps_per_epoch * cfg.epochs
    if cfg.schedule == "post":
        pruner.update(1.0)

    def before_step(step: int) -> None:
        if cfg.schedule == "gradual" and (
            cfg.method == "movement" or step % cfg.update_every == 0 or step >= round(cfg.ramp * total)
        ):
            pruner.update(cubic_fraction(step, total, cfg.ramp))

    log = _fine_tune(model, pruner, train_split, distill_cfg, cfg, before_step, on_epoch)
    return pruner.finish(), log


def _fine_tune(model, pruner: Pruner, split, dcfg, pcfg: PruneConfig, before_step, on_epoch) -> list[dict]:
    import time

    holder = nn.ParameterList(pruner.weight_parameters())
    opt = make_optimizer(holder, dcfg)
    scores = pruner.score_parameters()
    score_opt = torch.optim.Adam(scores, lr=pcfg.score_lr) if scores else None
    rng = np.random.default_rng(dcfg.seed)
    torch.manual_seed(dcfg.seed)
    model.train()
    step, log = 0, []
    for epoch in range(1, pcfg.epochs + 1):
        t0, total_loss, seen = time.perf_counter(), 0.0, 0
        for batch in iter_batches(split, dcfg.batch_size, rng):
            before_step(step)
            logits = model(*batch.inputs)
            loss = distill_loss(logits, batch.labels, batch.teacher_logits, dcfg.alpha, dcfg.temperature)
            if not torch.isfinite(loss):
                raise TrainingError(f"non-finite loss ({loss.item()}) while pruning, epoch {epoch}")
            opt.zero_grad(set_to_none=True)
            if score_opt:
                score_opt.zero_grad(set_to_none=True)
            loss.backward()
            if dcfg.grad_clip:
                nn.utils.clip_grad_norm_(holder.parameters(), dcfg.grad_clip)
            opt.step()
            if score_opt:
                score_opt.step()
            total_loss += loss.item() * len(batch.labels)
            seen += len(batch.labels)
            step += 1
        rec = {
            "epoch": epoch,
            "train_loss": total_loss / max(seen, 1),
            "sparsity_fraction": pruner.fraction,
            "seconds": time.perf_counter() - t0,
        }
        log.append(rec)
        if on_epoch is not None:
            on_epoch(rec)
    model.eval()
    return log
