"""Student models of thesis 6.1.4 / table 6.1: BiLSTM, bidirectional Elman RNN, and FFN over mean embeddings.

Every student has three children, which are also the module groups sizes and pruning are reported by:
``embedding`` (ids -> vectors), ``encoder`` (vectors -> one feature vector per text), ``classifier`` (features
-> logits). Sentence-pair students encode both texts with the same weights and classify
``[u; v; |u - v|; u * v]``.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass

import numpy as np
import torch
from torch import _VF, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from featherweight_core import vocab
from featherweight_core.data.encoders import CHAR_ALPHABET
from featherweight_core.errors import ConfigError

ARCHS = vocab.ARCHS  # aliases of the one vocabulary, kept for callers that import them from here
POOLINGS = vocab.POOLINGS

# Thesis table 6.1. Encoder / classifier sizes are for single-sentence tasks and double for sentence pairs.
ARCH_DEFAULTS: dict[str, dict] = {
    "bilstm": dict(
        hidden=150, classifier_hidden=200, dropout=0.1, optimizer="adadelta", lr=1.0, weight_decay=0.0, temperature=None
    ),
    "rnn": dict(
        hidden=100, classifier_hidden=100, dropout=0.1, optimizer="adam", lr=1e-4, weight_decay=1e-5, temperature=None
    ),
    "ffn": dict(
        hidden=0, classifier_hidden=100, dropout=0.2, optimizer="adam", lr=1e-4, weight_decay=0.0, temperature=3.0
    ),
}


@dataclass(frozen=True)
class StudentConfig:
    """Everything needed to rebuild a student's modules (stored with every checkpoint).

    ``hidden``/``classifier_hidden`` of ``None`` take table 6.1's value for the arch (doubled for pairs).
    """

    arch: str
    embedding: str
    emb_dim: int
    num_labels: int
    pair: bool = False
    vocab_size: int | None = None  # BPE vocabulary / hash K; None: vocab.DEFAULT_VOCAB_SIZE (char ignores it)
    hidden: int | None = None
    classifier_hidden: int | None = None
    dropout: float | None = None
    pooling: str = "last"
    hash_buckets: int | None = None  # None: K // 10

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown arch {self.arch!r}; expected one of {list(ARCHS)}")
        if self.embedding not in vocab.EMBEDDINGS:
            raise ConfigError(f"unknown embedding {self.embedding!r}; expected one of {list(vocab.EMBEDDINGS)}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {self.pooling!r}; expected one of {list(POOLINGS)}")
        for name in ("emb_dim", "num_labels"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive int, got {getattr(self, name)!r}")
        if self.num_labels < 2:
            raise ConfigError(f"num_labels must be >= 2, got {self.num_labels}")
        if self.vocab_size is not None and self.vocab_size < 1:
            raise ConfigError(f"vocab_size must be >= 1, got {self.vocab_size}")
        # the FFN has no encoder (its resolved hidden is 0); everything else must be a positive size
        sizes = {"classifier_hidden": self.classifier_hidden, "hash_buckets": self.hash_buckets}
        if self.arch != "ffn":
            sizes["hidden"] = self.hidden
        for name, value in sizes.items():
            if value is not None and (not isinstance(value, numbers.Integral) or value < 1):
                raise ConfigError(f"{name} must be a positive int, got {value!r}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")

    def resolved(self) -> StudentConfig:
        """Fill ``None`` fields with the thesis defaults (doubling encoder/classifier sizes for pairs)."""
        d = ARCH_DEFAULTS[self.arch]
        scale = 2 if self.pair else 1
        vocab_size = self.vocab_size
        if vocab_size is None and self.embedding != "char":
            vocab_size = vocab.DEFAULT_VOCAB_SIZE
        return dataclasses.replace(
            self,
            vocab_size=vocab_size,
            hidden=self.hidden if self.hidden is not None else d["hidden"] * scale,
            classifier_hidden=self.classifier_hidden
            if self.classifier_hidden is not None
            else d["classifier_hidden"] * scale,
            dropout=self.dropout if self.dropout is not None else d["dropout"],
            hash_buckets=(self.hash_buckets or max(1, (vocab_size or vocab.DEFAULT_VOCAB_SIZE) // 10))
            if self.embedding == "hash"
            else None,
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> StudentConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ConfigError(f"unknown StudentConfig keys {sorted(unknown)}; expected a subset of {sorted(fields)}")
        return cls(**d)


class HashEmbedding(nn.Module):
    """Hash embeddings (Svenstrup et al. 2017) as in thesis 6.1.5.

    Each token carries ``num_hashes`` ids ``h`` in [1, K*B] (0 = padding). Hash i selects importance scalar
    ``importance[i*K + (h-1) % K]`` and bucket vector ``buckets[(h-1) // K]``; the token's vector is the
    importance-weighted sum of its bucket vectors (an EmbeddingBag in sum mode).

    ids: (B, T, num_hashes) int64 -> (B, T, dim).
    """

    def __init__(self, num_rows: int, num_buckets: int, dim: int, num_hashes: int = 3) -> None:
        super().__init__()
        self.num_rows, self.num_buckets, self.dim, self.num_hashes = num_rows, num_buckets, dim, num_hashes
        self.importance = nn.Embedding(num_hashes * num_rows, 1)
        self.buckets = nn.EmbeddingBag(num_buckets, dim, mode="sum")
        nn.init.normal_(self.importance.weight, mean=0.0, std=1.0)
        nn.init.normal_(self.buckets.weight, mean=0.0, std=1.0)
        self.register_buffer("hash_offsets", torch.arange(num_hashes) * num_rows, persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        B, T, H = ids.shape
        flat = ids.reshape(-1, H)
        valid = flat > 0
        h = (flat - 1).clamp_min(0)
        weights = self.importance(h % self.num_rows + self.hash_offsets).squeeze(-1) * valid
        out = self.buckets(h // self.num_rows, per_sample_weights=weights.to(self.buckets.weight.dtype))
        return out.view(B, T, self.dim)


def build_embedding(cfg: StudentConfig, num_embeddings: int, vectors: np.ndarray | None = None) -> nn.Module:
    if cfg.embedding == "hash":
        return HashEmbedding(cfg.vocab_size, cfg.hash_buckets, cfg.emb_dim)
    emb = nn.Embedding(num_embeddings, cfg.emb_dim, padding_idx=0)
    if vectors is not None:
        if vectors.shape != (num_embeddings, cfg.emb_dim):
            raise ValueError(f"pretrained vectors have shape {vectors.shape}, expected {(num_embeddings, cfg.emb_dim)}")
        with torch.no_grad():
            emb.weight.copy_(torch.from_numpy(vectors))
    return emb


def _mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


class RecurrentEncoder(nn.Module):
    """One bidirectional LSTM / Elman RNN layer.

    x: (B, T, E), lengths: (B,) -> (B, 2 * hidden): the last hidden state of each direction (``last``) or the
    max over time of the outputs (``max``). Padding never reaches a state that is used.

    Two equivalent paths. The fast path (a plain float ``nn.LSTM``/``nn.RNN`` with no hooks) runs each direction
    on the padded batch, the backward direction on each sequence reversed within its length, and reads the
    state at position ``length - 1``: padding comes after every used state, so results equal the packed path's.
    On CPU it is several times faster in training, because autograd through a ``PackedSequence`` RNN slices the
    packed data per time step and each slice's backward allocates and zero-fills a full-size gradient
    (quadratic in T). Anything else in ``.rnn`` (quantized, pruned with hooks, a custom module) takes the packed
    path through the module's own ``__call__``, and so does CUDA, where cuDNN handles packed sequences itself.
    On an accelerator the packing never waits for the device (:func:`_pack_without_sync`) as long as ``lengths``
    is a CPU tensor, which is how the training batches deliver it.
    """

    def __init__(self, cell: str, input_size: int, hidden: int, pooling: str = "last") -> None:
        super().__init__()
        rnn_cls = nn.LSTM if cell == "lstm" else nn.RNN
        self.rnn = rnn_cls(input_size, hidden, batch_first=True, bidirectional=True)
        self.pooling = pooling
        self.out_features = 2 * hidden

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # CUDA keeps the packed path: cuDNN runs PackedSequences natively and wants its flattened weights
        if x.device.type == "cpu" and self._fast_path_ok():
            return self._forward_padded(x, lengths)
        return self._forward_packed(x, lengths)

    def _fast_path_ok(self) -> bool:
        rnn = self.rnn
        return (
            type(rnn) in (nn.LSTM, nn.RNN)
            and rnn.num_layers == 1
            and rnn.bidirectional
            and rnn.batch_first
            and getattr(rnn, "proj_size", 0) == 0
            and not rnn._forward_pre_hooks
            and not rnn._forward_hooks
        )

    def _direction(self, x: torch.Tensor, suffix: str) -> torch.Tensor:
        """Run one direction's weights as a unidirectional layer over x: (B, T, E) -> (B, T, hidden)."""
        rnn = self.rnn
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if rnn.bias else ("weight_ih", "weight_hh")
        weights = [getattr(rnn, f"{n}_l0{suffix}") for n in names]
        h0 = x.new_zeros(1, x.shape[0], rnn.hidden_size)
        if isinstance(rnn, nn.LSTM):
            return _VF.lstm(x, (h0, h0), weights, rnn.bias, 1, 0.0, self.training, False, True)[0]
        fn = _VF.rnn_tanh if rnn.nonlinearity == "tanh" else _VF.rnn_relu
        return fn(x, h0, weights, rnn.bias, 1, 0.0, self.training, False, True)[0]

    def _forward_padded(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, T, E = x.shape
        lengths = lengths.to(x.device)
        t = torch.arange(T, device=x.device)[None, :]
        last = (lengths - 1)[:, None]  # (B, 1)
        # position t of the reversed sequence reads position len-1-t; padding positions stay where they are
        rev = torch.where(t <= last, last - t, t)
        fwd = self._direction(x, "")
        bwd = self._direction(x.gather(1, rev[..., None].expand(B, T, E)), "_reverse")
        if self.pooling == "last":
            H = fwd.shape[-1]
            idx = last[..., None].expand(B, 1, H)
            return torch.cat([fwd.gather(1, idx).squeeze(1), bwd.gather(1, idx).squeeze(1)], dim=-1)
        out = torch.cat([fwd, bwd], dim=-1)  # time order differs between halves; max over time does not care
        return out.masked_fill(~_mask(lengths, T)[..., None], float("-inf")).amax(1)

    def _forward_packed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu":
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        else:
            packed = _pack_without_sync(x, lengths)
        out, h = self.rnn(packed)
        if self.pooling == "last":
            h_n = h[0] if isinstance(h, tuple) else h  # (2, B, hidden); already unsorted to batch order
            return torch.cat([h_n[0], h_n[1]], dim=-1)
        padded, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        mask = _mask(lengths.to(x.device, non_blocking=True), x.shape[1])
        return padded.masked_fill(~mask[..., None], float("-inf")).amax(1)


def _pack_without_sync(x: torch.Tensor, lengths: torch.Tensor) -> PackedSequence:
    """``pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)`` for x on an accelerator, without
    waiting for the device: ``pack_padded_sequence`` copies its sort order to the device with a blocking copy (a
    full stream synchronisation every step). Here the order is computed on the host (lengths live there; pass them
    as a CPU tensor, else ``.cpu()`` is the one sync) and uploaded asynchronously; rows already in decreasing
    length order (how :class:`featherweight_core.data.batching.DeviceSplit` builds batches) need no reordering at all.
    """
    lengths = lengths.cpu().to(torch.int64)
    if lengths.numel() < 2 or bool((lengths[:-1] >= lengths[1:]).all()):
        return pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=True)
    sorted_lengths, order = torch.sort(lengths, descending=True)
    if x.device.type == "cuda":
        order = order.pin_memory()
    order = order.to(x.device, non_blocking=True)
    data, batch_sizes = _VF._pack_padded_sequence(x.index_select(0, order), sorted_lengths, True)
    return PackedSequence(data, batch_sizes, order, None)


class MeanEncoder(nn.Module):
    """Mean of the embeddings over the real (unpadded) tokens. x: (B, T, E) -> (B, E)."""

    def __init__(self, input_size: int) -> None:
        super().__init__()
        self.out_features = input_size

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        lengths = lengths.to(x.device, non_blocking=True)  # no stream sync when lengths come from the host
        mask = _mask(lengths, x.shape[1])[..., None].to(x.dtype)
        return (x * mask).sum(1) / lengths.to(x.dtype).clamp_min(1)[:, None]


class Student(nn.Module):
    """embedding -> encoder -> classifier. ``forward(ids_a, len_a[, ids_b, len_b]) -> (B, num_labels)`` logits.

    ids are (B, T) int64, or (B, T, 3) for hash embeddings; lengths (B,) int64, >= 1.
    """

    def __init__(
        self,
        embedding: nn.Module,
        encoder: nn.Module,
        classifier_hidden: int,
        num_labels: int,
        pair: bool,
        dropout: float,
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.encoder = encoder
        self.pair = pair
        features = encoder.out_features * (4 if pair else 1)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(features, classifier_hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(classifier_hidden, num_labels),
        )

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.embedding(ids), lengths)

    def forward(
        self,
        ids_a: torch.Tensor,
        len_a: torch.Tensor,
        ids_b: torch.Tensor | None = None,
        len_b: torch.Tensor | None = None,
    ) -> torch.Tensor:
        u = self.encode(ids_a, len_a)
        if self.pair:
            if ids_b is None or len_b is None:
                raise ValueError("a sentence-pair student needs ids_b and len_b")
            v = self.encode(ids_b, len_b)
            u = torch.cat([u, v, (u - v).abs(), u * v], dim=-1)
        return self.classifier(u)


def build_student(cfg: StudentConfig, num_embeddings: int | None = None, vectors: np.ndarray | None = None) -> Student:
    """Build a student from its config. ``num_embeddings`` is the encoder's row count (incl. padding) for
    bpe/char; hash embeddings size themselves from ``vocab_size``. ``vectors`` initialise bpe embeddings."""
    cfg = cfg.resolved()
    if num_embeddings is None:
        num_embeddings = default_num_embeddings(cfg)
    embedding = build_embedding(cfg, num_embeddings, vectors)
    if cfg.arch == "ffn":
        encoder: nn.Module = MeanEncoder(cfg.emb_dim)
    else:
        encoder = RecurrentEncoder("lstm" if cfg.arch == "bilstm" else "rnn", cfg.emb_dim, cfg.hidden, cfg.pooling)
    return Student(embedding, encoder, cfg.classifier_hidden, cfg.num_labels, cfg.pair, cfg.dropout)


def default_num_embeddings(cfg: StudentConfig) -> int:
    """Embedding rows the matching encoder produces: bpe vocab + pad, 33 chars + pad + unknown, hash K."""
    cfg = cfg.resolved()
    if cfg.embedding == "bpe":
        return cfg.vocab_size + 1
    if cfg.embedding == "char":
        return len(CHAR_ALPHABET) + 2
    return cfg.vocab_size
