"""Pruning: targets per module (local) and overall (global), magnitude thresholds, movement masks, bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from featherweight_core.compression.prune import prune_student, sparsity_report
from featherweight_core.compression.prune_config import TABLE_6_3, PruneConfig, PruningError
from featherweight_core.compression.pruner import (
    Pruner,
    has_pruning,
    magnitude_mask,
    magnitude_threshold,
    make_permanent,
    prunable_tensors,
    topv_mask,
)
from featherweight_core.data.batching import EncodedSplit
from featherweight_core.data.encoders import Ragged
from featherweight_core.errors import UserError
from featherweight_core.students.distill import DistillConfig
from featherweight_core.students.models import StudentConfig, build_student


def tiny(arch="bilstm", embedding="bpe", seed=0, pair=False):
    torch.manual_seed(seed)
    cfg = StudentConfig(arch, embedding, 8, 2, pair=pair, vocab_size=60, hidden=6, classifier_hidden=5).resolved()
    return build_student(cfg).eval(), cfg


def inputs(embedding="bpe", B=5, T=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    shape = (B, T, 3) if embedding == "hash" else (B, T)
    hi = 30 if embedding == "char" else 60
    return torch.randint(1, hi, shape, generator=g), torch.tensor([7, 3, 1, 5, 2][:B])


def random_split(n=120, T=6, embedding="bpe", seed=0) -> EncodedSplit:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, n)
    width = (3,) if embedding == "hash" else ()
    ids = rng.integers(1, 60, (int(lengths.sum()), *width)).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    labels = (ids[offsets[:-1]].reshape(n, -1)[:, 0] % 2).astype(np.int64)  # learnable: first token's parity
    return EncodedSplit((Ragged(ids, offsets),), labels, [f"train:{i}" for i in range(n)])


@pytest.mark.parametrize("arch,embedding", [("bilstm", "bpe"), ("rnn", "char"), ("ffn", "hash"), ("bilstm", "hash")])
def test_local_topv_hits_each_tensors_target_exactly(arch, embedding):
    model, _ = tiny(arch, embedding)
    cfg = PruneConfig(method="topv")
    prune_student(model, cfg, arch, embedding)
    rep = sparsity_report(model, arch, embedding)
    targets = cfg.group_targets(arch, embedding)
    for m, name, group, path in prunable_tensors(model, arch, embedding):
        n = getattr(m, name).numel()
        assert rep["tensors"][path] == pytest.approx(round(targets[group] * n) / n), path
    for group, target in targets.items():
        assert rep["groups"][group] == pytest.approx(target, abs=0.02)
    assert not has_pruning(model)


def test_table_6_3_defaults_and_overrides():
    cfg = PruneConfig()
    assert cfg.group_targets("bilstm", "bpe") == {"lstm": 0.5, "linear": 0.125, "bpe_emb": 0.4}
    assert cfg.group_targets("rnn", "char") == {"rnn": 0.1, "linear": 0.125, "char_emb": 0.3}
    assert cfg.group_targets("ffn", "hash") == {"linear": 0.125, "hash_emb": 0.0}
    assert TABLE_6_3["lstm"] == 0.5
    over = PruneConfig(targets={"embedding": 0.2, "encoder": 0.7, "classifier": 0.3})
    assert over.group_targets("bilstm", "bpe") == {"lstm": 0.7, "linear": 0.3, "bpe_emb": 0.2}
    assert over.group_targets("ffn", "char") == {"linear": 0.3, "char_emb": 0.2}


def test_module_group_aliases_are_the_vocabulary():
    from featherweight_core import vocab
    from featherweight_core.compression.prune_config import ALIASES

    assert ALIASES == vocab.MODULE_GROUPS
    assert {g: vocab.PRUNE_GROUP_OF_MODULE_GROUP[g] for g in vocab.MODULE_GROUPS} == {g: g for g in ALIASES}
    assert PruneConfig(targets=dict.fromkeys(vocab.MODULE_GROUPS, 0.2)).group_targets("rnn", "hash") == {
        "rnn": 0.2,
        "linear": 0.2,
        "hash_emb": 0.2,
    }


@pytest.mark.parametrize("method", ["topv", "magnitude"])
def test_global_overall_sparsity_matches_target(method):
    model, _ = tiny("bilstm", "bpe")
    cfg = PruneConfig(method=method, scope="global", sparsity=0.6)
    prune_student(model, cfg, "bilstm", "bpe")
    rep = sparsity_report(model, "bilstm", "bpe")
    assert rep["overall"] == pytest.approx(0.6, abs=1e-3)
    # one ranking: per-group sparsities differ from each other
    assert len({round(v, 3) for v in rep["groups"].values()}) > 1


def test_global_default_prunes_as_many_weights_as_local():
    a, _ = tiny()
    b, _ = tiny()
    prune_student(a, PruneConfig(scope="local"), "bilstm", "bpe")
    prune_student(b, PruneConfig(scope="global"), "bilstm", "bpe")
    za = sparsity_report(a, "bilstm", "bpe")["overall"]
    zb = sparsity_report(b, "bilstm", "bpe")["overall"]
    assert za == pytest.approx(zb, abs=2e-3)


def test_global_leaves_zero_target_groups_alone():
    model, _ = tiny("ffn", "hash")
    before = model.embedding.buckets.weight.detach().clone()
    prune_student(model, PruneConfig(scope="global", sparsity=0.5), "ffn", "hash")
    assert torch.equal(model.embedding.buckets.weight, before)
    assert sparsity_report(model, "ffn", "hash")["groups"]["linear"] == pytest.approx(0.5, abs=1e-3)


def test_magnitude_threshold_rules():
    w = torch.tensor([0.05, -0.2, 0.1, -0.1, 0.3, 0.0])
    # absolute threshold: strictly smaller magnitudes are pruned, equal ones kept
    assert magnitude_mask(w, 0.1).tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    # from a target: the smallest magnitude top-v keeps
    assert magnitude_threshold(w.abs(), 0.5) == pytest.approx(0.1)
    # ties at the boundary: top-v prunes exactly k (earlier element first), magnitude keeps all ties
    assert topv_mask(w.abs(), 0.5).tolist() == [0.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    assert magnitude_mask(w, magnitude_threshold(w.abs(), 0.5)).sum() == 4  # sparsity 1/3 <= 1/2
    assert magnitude_threshold(w.abs(), 0.0) == 0.0


def test_magnitude_absolute_thresholds_per_group():
    model, _ = tiny()
    lin = model.classifier[1].weight.detach().clone()
    cfg = PruneConfig(method="magnitude", thresholds={"linear": 0.1}, targets={"embedding": 0.0, "encoder": 0.0})
    prune_student(model, cfg, "bilstm", "bpe")
    expected = torch.where(lin.abs() < 0.1, torch.zeros_like(lin), lin)
    assert torch.equal(model.classifier[1].weight, expected)
    assert cfg.describe("bilstm", "bpe") == "magnitude-local(lstm=0,linear=|w|<0.1,embedding=0)"


def test_pruned_lstm_forward_uses_masked_weights():
    """The pre-hook keeps nn.LSTM's flat weights in sync: output equals a copy with the zeros written in."""
    model, _ = tiny("bilstm", "bpe")
    ids, lens = inputs()
    pruner = Pruner(model, PruneConfig(targets={"lstm": 0.7}), "bilstm", "bpe")
    pruner.update(1.0)
    masked_out = model(ids, lens)
    ref, _ = tiny("bilstm", "bpe")
    ref.load_state_dict(make_permanent(model).state_dict())
    assert torch.allclose(masked_out, ref(ids, lens), atol=1e-6)
    assert sparsity_report(ref, "bilstm", "bpe")["groups"]["lstm"] == pytest.approx(0.7, abs=0.01)


def test_make_permanent_leaves_a_plain_state_dict():
    model, _ = tiny("rnn", "hash")
    keys = set(model.state_dict())
    prune_student(model, PruneConfig(), "rnn", "hash")
    assert set(model.state_dict()) == keys
    assert not any(k.endswith(("_orig", "_mask", "_scores")) for k in model.state_dict())


def test_movement_scores_are_learned_and_masks_follow_topv_of_scores():
    model, _ = tiny("bilstm", "bpe")
    split = random_split()
    cfg = PruneConfig(
        method="movement", targets={"encoder": 0.5, "embedding": 0.0, "classifier": 0.0}, epochs=2, ramp=0.5
    )
    dcfg = DistillConfig(alpha=1.0, batch_size=16, seed=0).resolved("bilstm", False)
    pruner = Pruner(model, cfg, "bilstm", "bpe")
    from featherweight_core.compression.prune import _fine_tune
    from featherweight_core.compression.pruner import cubic_fraction

    total = 2 * int(np.ceil(len(split) / 16))
    log = _fine_tune(model, pruner, split, dcfg, cfg, lambda s: pruner.update(cubic_fraction(s, total, cfg.ramp)), None)
    assert len(log) == 2 and pruner.fraction == 1.0
    pruner.update(1.0)  # masks were last set before the final optimizer step; finish() does this too
    for slot in pruner.slots:
        scores = slot.scores.detach()
        assert scores.abs().sum() > 0, f"{slot.path}: scores never moved"
        assert torch.equal(slot.mask, topv_mask(scores, 0.5)), slot.path
    # the masks are not simply magnitude pruning of the final weights
    assert any(not torch.equal(s_.mask, topv_mask(s_.orig.detach().abs(), 0.5)) for s_ in pruner.slots)
    pruner.finish()
    assert sparsity_report(model, "bilstm", "bpe")["encoder"] == pytest.approx(0.5, abs=1e-3)


def test_gradual_and_movement_reach_targets_via_prune_student():
    split = random_split()
    dcfg = DistillConfig(alpha=1.0, batch_size=32, seed=0).resolved("rnn", False)
    for cfg in (
        PruneConfig(method="topv", schedule="gradual", epochs=1, targets={"rnn": 0.4}),
        PruneConfig(method="movement", epochs=1, scope="global", sparsity=0.3),
    ):
        model, _ = tiny("rnn", "bpe")
        model, log = prune_student(model, cfg, "rnn", "bpe", split, dcfg)
        rep = sparsity_report(model, "rnn", "bpe")
        if cfg.scope == "local":
            assert rep["groups"]["rnn"] == pytest.approx(0.4, abs=0.01)
        else:
            # movement keeps the all-zero padding row (its score never moves), so it adds ~1% of zeros
            assert 0.3 - 1e-3 <= rep["overall"] <= 0.3 + 0.015
        assert len(log) == 1 and not has_pruning(model)


def test_post_with_fine_tuning_keeps_pruned_weights_zero():
    model, _ = tiny("ffn", "bpe")
    split = random_split()
    dcfg = DistillConfig(alpha=1.0, batch_size=32, lr=0.05, seed=0).resolved("ffn", False)
    before = model.embedding.weight.detach().clone()
    prune_student(model, PruneConfig(targets={"embedding": 0.5}, epochs=1), "ffn", "bpe", split, dcfg)
    w = model.embedding.weight.detach()
    assert (w == 0).float().mean() >= 0.5
    assert not torch.equal(w[w != 0], before[w != 0])  # surviving weights were fine-tuned


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(targets={"lstm": 1.0}), r"sparsity target for 'lstm' must be a sparsity in \[0, 1\), got 1.0"),
        (dict(targets={"lstm": -0.1}), r"in \[0, 1\)"),
        (dict(targets={"gru": 0.5}), r"unknown module group 'gru'"),
        (
            dict(targets={"emb": 0.5}),
            r"unknown module group 'emb' in targets; expected one of \['embedding', 'encoder'",
        ),
        (dict(targets={"embedding": 0.5, "bpe_emb": 0.1}), "either 'embedding'"),
        (dict(targets={"classifier": 0.5, "linear": 0.1}), "either 'classifier'"),
        (dict(method="lottery"), "unknown pruning method 'lottery'"),
        (dict(scope="layer"), "unknown pruning scope"),
        (dict(sparsity=0.5), "global pruning"),
        (dict(scope="global", sparsity=1.5), r"global sparsity must be a sparsity in \[0, 1\)"),
        (dict(method="movement", schedule="post"), "movement pruning learns its masks"),
        (dict(schedule="gradual", epochs=0), "epochs must be >= 1"),
        (dict(thresholds={"lstm": 0.1}), "need method 'magnitude'"),
        (dict(targets={"lstm": True}), "sparsity"),
    ],
)
def test_bad_arguments_give_one_line_errors(kwargs, match):
    with pytest.raises(PruningError, match=match) as e:
        PruneConfig(**kwargs)
    assert "\n" not in str(e.value)
    assert isinstance(e.value, UserError) and isinstance(e.value, ValueError)


def test_config_round_trip_and_describe():
    cfg = PruneConfig(method="movement", targets={"encoder": 0.8}, epochs=3)
    assert PruneConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.describe("bilstm", "bpe") == "movement-local(lstm=0.8,linear=0.125,embedding=0.4)-gradual3"
    with pytest.raises(PruningError, match="unknown PruneConfig keys"):
        PruneConfig.from_dict({"method": "topv", "amount": 0.3})
    hash(cfg)


def test_pruning_a_quantized_model_is_refused():
    from featherweight_core.compression.quantize import QuantConfig, quantize_student

    model, _ = tiny("bilstm", "bpe")
    q = quantize_student(model, QuantConfig(), "bilstm")
    with pytest.raises(PruningError, match="quantized models cannot be pruned"):
        Pruner(q, PruneConfig(), "bilstm", "bpe")


def test_prune_twice_without_make_permanent_is_refused():
    model, _ = tiny()
    Pruner(model, PruneConfig(), "bilstm", "bpe")
    with pytest.raises(PruningError, match="already carries pruning masks"):
        Pruner(model, PruneConfig(), "bilstm", "bpe")
    assert isinstance(model.encoder.rnn, nn.LSTM)
