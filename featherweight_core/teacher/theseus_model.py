"""BERT-of-Theseus' model: each block of the teacher's layers paired with its successor layer, a coin per block
and step deciding which of the two runs while the successor trains, and the finished successor taken out."""

from __future__ import annotations

import copy

import torch
from torch import nn

from featherweight_core.teacher.theseus_config import TheseusError

# ---------------------------------------------------------------------------------------------------------------
# the replacement modules


class _Coin:
    """The shared replacement probability and the seeded generator every block draws from."""

    def __init__(self, p: float, seed: int) -> None:
        self.p = p
        self.generator = torch.Generator().manual_seed(seed)

    def draw(self) -> bool:
        return bool(torch.rand((), generator=self.generator).item() < self.p)


class TheseusBlock(nn.Module):
    """``r`` predecessor layers and the successor layer that replaces them.

    In training mode each forward draws: the successor with probability ``p``, else the predecessor layers in
    order; in eval mode only the successor runs. ``last_used_successor`` records the last draw. Works with any layer
    whose output is the hidden states or a tuple starting with them (the HF encoder loops of BERT, RoBERTa,
    DistilBERT, ...): the remaining arguments (attention mask, ...) are passed on to every layer unchanged.
    """

    def __init__(self, predecessors: list[nn.Module], successor: nn.Module, coin: _Coin) -> None:
        super().__init__()
        self.predecessors = nn.ModuleList(predecessors)
        self.successor = successor
        self._coin = coin
        self.last_used_successor: bool | None = None

    def forward(self, hidden_states, *args, **kwargs):
        use_successor = not self.training or self._coin.draw()
        self.last_used_successor = use_successor
        if use_successor:
            return self.successor(hidden_states, *args, **kwargs)
        out = None
        for layer in self.predecessors:
            out = layer(hidden_states, *args, **kwargs)
            hidden_states = out[0] if isinstance(out, tuple) else out
        return out


def find_layer_list(model) -> tuple[nn.Module, str]:
    """``(parent module, attribute name)`` of the transformer layer ``ModuleList`` of a HF encoder classifier:
    ``base_model.encoder.layer`` (BERT, RoBERTa, ELECTRA, ...) or ``base_model.transformer.layer`` (DistilBERT)."""
    base = getattr(model, "base_model", model)
    for holder in ("encoder", "transformer"):
        parent = getattr(base, holder, None)
        if parent is not None and isinstance(getattr(parent, "layer", None), nn.ModuleList):
            return parent, "layer"
    kind = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
    raise TheseusError(
        f"model type {kind!r}: no encoder layer list found (expected base_model.encoder.layer or"
        " base_model.transformer.layer, as in BERT, RoBERTa or DistilBERT)"
    )


def check_replace_rate(model, replace_rate: int) -> int:
    """The successor's layer count ``L / r``; a one-line error when ``r`` does not divide the teacher's ``L``."""
    parent, attr = find_layer_list(model)
    n = len(getattr(parent, attr))
    if n < 2:
        raise TheseusError(f"the teacher has {n} layer; module replacement needs at least 2")
    if replace_rate < 2 or n % replace_rate:
        divisors = [d for d in range(2, n + 1) if n % d == 0]
        raise TheseusError(
            f"replace_rate {replace_rate} does not divide the teacher's {n} layers (choose one of {divisors})"
        )
    return n // replace_rate


class TheseusModel:
    """Module replacement set up on a loaded teacher classifier, in place.

    The teacher's layer list is swapped for a list of :class:`TheseusBlock` (so the model's own forward, loss-free
    call ``model(**inputs).logits`` runs the mixed network); :meth:`set_p` sets the replacement probability;
    :meth:`build_successor` returns the compressed classifier (``L / r`` layers, everything else from the teacher).
    Parameters are frozen except the successor layers and, with ``train_classifier``, the head.
    """

    def __init__(self, model, replace_rate: int = 2, train_classifier: bool = True, seed: int = 0) -> None:
        check_replace_rate(model, replace_rate)
        parent, attr = find_layer_list(model)
        layers = list(getattr(parent, attr))
        n = len(layers)
        self.model = model
        self.teacher_layers = n
        self.replace_rate = replace_rate
        self.coin = _Coin(0.0, seed)
        blocks = []
        for i in range(0, n, replace_rate):
            successor = copy.deepcopy(layers[i])
            blocks.append(TheseusBlock(layers[i : i + replace_rate], successor, self.coin))
        self.blocks = nn.ModuleList(blocks)
        setattr(parent, attr, self.blocks)
        base = getattr(model, "base_model", model)
        frozen = {id(p) for p in base.embeddings.parameters()} if hasattr(base, "embeddings") else set()
        frozen |= {id(p) for b in blocks for p in b.predecessors.parameters()}
        successor_ids = {id(p) for b in blocks for p in b.successor.parameters()}
        self.successor_params = [p for b in blocks for p in b.successor.parameters()]
        self.head_params = [p for p in model.parameters() if id(p) not in frozen and id(p) not in successor_ids]
        for p in model.parameters():
            p.requires_grad_(False)
        for p in self.successor_params + (self.head_params if train_classifier else []):
            p.requires_grad_(True)
        self.train_classifier = train_classifier

    @property
    def successor_layers(self) -> int:
        return len(self.blocks)

    @property
    def trainable_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def set_p(self, p: float) -> None:
        self.coin.p = float(p)

    def build_successor(self):
        """A fresh classifier of the teacher's class with ``L / r`` layers: the successor layers, and the teacher's
        embeddings and head (as trained). On the CPU, in eval mode."""
        state = {}
        prefix = _layer_list_prefix(self.model, self.blocks)
        for name, tensor in self.model.state_dict().items():
            if name.startswith(prefix):
                i, rest = name[len(prefix) :].split(".", 1)
                if not rest.startswith("successor."):
                    continue
                name = f"{prefix}{i}.{rest[len('successor.') :]}"
            state[name] = tensor.detach().cpu().clone()
        config = copy.deepcopy(self.model.config)
        config.num_hidden_layers = len(self.blocks)
        successor = type(self.model)(config)
        missing, unexpected = successor.load_state_dict(state, strict=False)
        # position_ids / token_type_ids buffers may be non-persistent in one and not the other; weights must match
        bad = [k for k in (*missing, *unexpected) if not k.endswith(("position_ids", "token_type_ids"))]
        if bad:
            raise RuntimeError(f"successor state dict does not fit the model: {bad[:5]}")
        return successor.eval()


def _layer_list_prefix(model, layer_list: nn.Module) -> str:
    for name, module in model.named_modules():
        if module is layer_list:
            return f"{name}."
    raise RuntimeError("the layer list is not part of the model")
