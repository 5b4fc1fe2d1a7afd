"""Post-training quantization of students (thesis 4.3, 6.1.7).

What each switch of :class:`QuantConfig` does to a student's three module groups:

- ``embedding``: ``nn.Embedding`` (bpe / char) -> per-row uint8 weights (``quint8`` with float scale and zero
  point per row, PyTorch's ``float_qparams_weight_only_qconfig``). For hash embeddings the bucket table
  (``nn.EmbeddingBag``, sum mode with per-sample weights) gets the same per-row uint8 treatment and the
  importance scalars (one per row, where per-row qparams would cost more than they save) become float16, or with
  ``importance_bits`` 2..8 uniform ``bits``-bit codes over the tensor's range (:class:`CodedEmbedding`): for a
  hash student the float16 importance scalars are most of the compressed size.
- ``encoder``: int8 dynamic quantization (weights int8 per tensor, activations quantized on the fly). The BiLSTM
  uses PyTorch's dynamic LSTM. ``nn.RNN`` is left in float by ``quantize_dynamic`` without a word, so the Elman
  RNN is first rebuilt as :class:`ElmanRNN` - the same recurrence from ``nn.Linear`` layers, equal to ``nn.RNN``
  in float - whose Linears are then quantized (int8 weights; the input projection runs as one dynamic int8
  matmul over all time steps, the recurrent weight is dequantized once per call because a dynamic int8 matmul
  per time step is ~20x slower than a float one at these sizes). The FFN's mean encoder has no weights.
- ``classifier``: int8 dynamic quantization of both Linears, or with ``static_classifier`` static quantization
  (Linear+ReLU fused; activations quantized with observers calibrated on ``calibration_batches`` training
  batches - never on the reported dev set).

Known traps avoided here (measured on torch 2.13 CPU): ``nn.RNN`` silently stays float;
quantized ``EmbeddingBag`` in ``mean`` mode computes a sum (hash embeddings use ``sum`` with per-sample weights,
which the quantized bag supports - checked numerically in the tests); quint4x2 embeddings return the wrong width
(not used).
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from featherweight_core import vocab
from featherweight_core.compression.pruner import has_pruning
from featherweight_core.data.batching import iter_batches
from featherweight_core.errors import UserError
from featherweight_core.students.models import HashEmbedding

QUANT_ENGINES = ("x86", "fbgemm", "qnnpack", "onednn")
# Widths of hash-embedding importance scalars: uniform codes of 2..8 bits, or 16 = float16 (the thesis' choice).
IMPORTANCE_BITS = vocab.IMPORTANCE_BITS  # alias of the one vocabulary


class QuantizationError(UserError, ValueError):
    """Bad quantization settings, or a model that cannot be quantized as asked (e.g. it is already quantized, or
    still carries pruning masks)."""


@dataclass(frozen=True)
class QuantConfig:
    """Which module groups to quantize and how (thesis 6.1.7). All switches on = the thesis' ``+q`` models.

    ``static_classifier`` replaces dynamic int8 classifier quantization by static quantization calibrated on
    ``calibration_batches`` batches (of ``calibration_batch_size`` examples) of the *training* split.

    ``importance_bits`` (hash embeddings only; ignored for other students): 16 keeps the importance scalars
    float16 (the thesis' choice); 2..8 stores them as uniform affine codes with ``2 ** bits`` levels over the
    tensor's [min, max] (one float32 scale and offset per tensor), see :class:`CodedEmbedding`.
    """

    embedding: bool = True
    encoder: bool = True
    classifier: bool = True
    static_classifier: bool = False
    calibration_batches: int = 20
    calibration_batch_size: int = 64
    importance_bits: int = 16

    def __post_init__(self) -> None:
        for name in vocab.QUANT_PARTS:
            if not isinstance(getattr(self, name), bool):
                raise QuantizationError(f"QuantConfig.{name} must be a bool, got {getattr(self, name)!r}")
        for name in ("calibration_batches", "calibration_batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise QuantizationError(f"QuantConfig.{name} must be a positive int, got {v!r}")
        if self.static_classifier and not self.classifier:
            raise QuantizationError("QuantConfig: static_classifier=True needs classifier=True")
        b = self.importance_bits
        if isinstance(b, bool) or not isinstance(b, int) or b not in IMPORTANCE_BITS:
            raise QuantizationError(
                f"QuantConfig.importance_bits must be an int in 2..8 (uniform codes) or 16 (float16), got {b!r}"
            )

    @property
    def enabled(self) -> bool:
        return self.embedding or self.encoder or self.classifier

    def describe(self, arch: str | None = None, embedding: str | None = None) -> str:
        """Short label stored in the results DB, e.g. ``int8-dyn(enc,cls)+emb-u8`` or ``none``.

        >>> QuantConfig().describe("bilstm", "hash")
        'int8-dyn(enc,cls)+emb-u8/f16'
        >>> QuantConfig(encoder=False, static_classifier=True).describe()
        'int8-static(cls)+emb-u8'
        >>> QuantConfig(importance_bits=6).describe("ffn", "hash")
        'int8-dyn(cls)+emb-u8/u6'
        """
        parts = []
        dyn = []
        if self.encoder and arch != "ffn":
            dyn.append("enc")
        if self.classifier and not self.static_classifier:
            dyn.append("cls")
        if dyn:
            parts.append(f"int8-dyn({','.join(dyn)})")
        if self.static_classifier:
            parts.append("int8-static(cls)")
        if self.embedding:
            imp = "f16" if self.importance_bits == 16 else f"u{self.importance_bits}"
            parts.append(f"emb-u8/{imp}" if embedding == "hash" else "emb-u8")
        return "+".join(parts) if parts else "none"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> QuantConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise QuantizationError(
                f"unknown QuantConfig keys {sorted(unknown)}; expected a subset of {sorted(fields)}"
            )
        return cls(**d)


# ----------------------------------------------------------------------------------------------------------------
# A quantizable bidirectional Elman RNN


class ElmanDirection(nn.Module):
    """One direction of ``h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` built from two Linears."""

    def __init__(self, input_size: int, hidden: int) -> None:
        super().__init__()
        self.ih = nn.Linear(input_size, hidden)
        self.hh = nn.Linear(hidden, hidden)
        self.hidden = hidden

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, E) left-aligned, lengths: (B,) -> outputs (B, T, H) (zero past each length), h_last (B, H)."""
        B, T, _ = x.shape
        xp = self.ih(x)  # all input projections in one (quantized) matmul
        hh = self.hh
        if callable(getattr(hh, "weight", None)):
            # Quantized: the int8 W_hh is dequantized once per call. A dynamic-quantized Linear per time step
            # (quantize h, int8 matmul, dequantize) costs ~0.1 ms for a (1, 100) input - 20x a float matmul.
            w_hh, b_hh = hh.weight().dequantize(), hh.bias()

            def hh(h: torch.Tensor) -> torch.Tensor:
                return F.linear(h, w_hh, b_hh)

        h = x.new_zeros(B, self.hidden)
        outs = []
        for t in range(T):
            h_new = torch.tanh(xp[:, t] + hh(h))
            alive = (t < lengths)[:, None]
            h = torch.where(alive, h_new, h)
            outs.append(torch.where(alive, h_new, torch.zeros_like(h_new)))
        return torch.stack(outs, 1) if outs else x.new_zeros(B, 0, self.hidden), h


def _reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first ``lengths[b]`` steps, leaving padding in place. x: (B, T, ...)."""
    T = x.shape[1]
    t = torch.arange(T, device=x.device)[None, :]
    idx = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
    return x.gather(1, idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand_as(x))


class ElmanRNN(nn.Module):
    """Drop-in for a 1-layer bidirectional, batch_first ``nn.RNN(nonlinearity='tanh')`` made of ``nn.Linear``s,
    so ``quantize_dynamic`` can quantize it. Accepts a PackedSequence or a (B, T, E) tensor and returns
    ``(output, h_n)`` like ``nn.RNN``: output in the same form as the input ((B, T, 2H) or packed), h_n (2, B, H).
    """

    def __init__(self, input_size: int, hidden: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden
        self.fwd = ElmanDirection(input_size, hidden)
        self.bwd = ElmanDirection(input_size, hidden)

    @classmethod
    def from_rnn(cls, rnn: nn.RNN) -> ElmanRNN:
        if not (
            rnn.bidirectional and rnn.batch_first and rnn.num_layers == 1 and rnn.nonlinearity == "tanh" and rnn.bias
        ):
            raise TypeError("ElmanRNN.from_rnn expects a 1-layer bidirectional batch_first tanh nn.RNN")
        out = cls(rnn.input_size, rnn.hidden_size)
        with torch.no_grad():
            for d, suffix in ((out.fwd, ""), (out.bwd, "_reverse")):
                d.ih.weight.copy_(getattr(rnn, f"weight_ih_l0{suffix}"))
                d.ih.bias.copy_(getattr(rnn, f"bias_ih_l0{suffix}"))
                d.hh.weight.copy_(getattr(rnn, f"weight_hh_l0{suffix}"))
                d.hh.bias.copy_(getattr(rnn, f"bias_hh_l0{suffix}"))
        return out.train(rnn.training)

    def forward(self, x: torch.Tensor | PackedSequence) -> tuple[torch.Tensor | PackedSequence, torch.Tensor]:
        packed = isinstance(x, PackedSequence)
        if packed:
            padded, lengths = pad_packed_sequence(x, batch_first=True)
        else:
            padded, lengths = x, torch.full((x.shape[0],), x.shape[1], dtype=torch.int64)
        lengths = lengths.to(padded.device)
        out_f, h_f = self.fwd(padded, lengths)
        out_b, h_b = self.bwd(_reverse_within_length(padded, lengths), lengths)
        out = torch.cat([out_f, _reverse_within_length(out_b, lengths)], dim=-1)
        h_n = torch.stack([h_f, h_b])
        if packed:
            out = pack_padded_sequence(out, lengths.cpu(), batch_first=True, enforce_sorted=False)
        return out, h_n


# ----------------------------------------------------------------------------------------------------------------
# Embeddings


class HalfEmbedding(nn.Module):
    """A float16 lookup table returning float32 rows. weight: (N, D) float16 buffer; ids (...) -> (..., D)."""

    def __init__(self, num_embeddings: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.zeros(num_embeddings, dim, dtype=torch.float16))

    @classmethod
    def from_float(cls, emb: nn.Embedding) -> HalfEmbedding:
        out = cls(emb.num_embeddings, emb.embedding_dim)
        out.weight.copy_(emb.weight.detach().to(torch.float16))
        return out

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight).float()


class CodedEmbedding(nn.Module):
    """A lookup table of uniform affine ``bits``-bit codes returning float32 rows: ``codes * scale + offset``.

    codes: (N, D) uint8 buffer with values in [0, 2**bits - 1]; scale, offset: float32 scalars for the whole
    table. ``from_float`` spreads the ``2 ** bits`` levels over the table's [min, max], so every value is within
    ``scale / 2`` of its float original; when the range straddles 0 the offset is nudged to a multiple of the
    scale so 0 (a pruned weight) stays exactly 0. ``bits`` is recorded on the module: measure.ideal_size counts
    the codes at ``bits`` bits each (the uint8 buffer is only their in-memory container; gzip exploits the few
    distinct byte values). ids (...) -> (..., D).
    """

    def __init__(self, num_embeddings: int, dim: int, bits: int) -> None:
        super().__init__()
        if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
            raise ValueError(f"CodedEmbedding bits must be an int in 2..8, got {bits!r}")
        self.bits = bits
        self.register_buffer("codes", torch.zeros(num_embeddings, dim, dtype=torch.uint8))
        self.register_buffer("scale", torch.ones((), dtype=torch.float32))
        self.register_buffer("offset", torch.zeros((), dtype=torch.float32))

    @classmethod
    def from_float(cls, emb: nn.Embedding, bits: int) -> CodedEmbedding:
        out = cls(emb.num_embeddings, emb.embedding_dim, bits)
        w = emb.weight.detach().float().cpu()
        if w.numel() == 0:
            return out
        levels = 2**bits - 1
        lo, hi = float(w.min()), float(w.max())
        scale = torch.tensor((hi - lo) / levels if hi > lo else 1.0, dtype=torch.float32)
        offset = torch.tensor(lo, dtype=torch.float32)
        if lo < 0.0 < hi:  # 0 exactly representable: code z decodes to z*scale - z*scale = 0
            offset = -(torch.round(-offset / scale) * scale)
        out.codes.copy_(torch.round((w - offset) / scale).clamp_(0, levels).to(torch.uint8))
        out.scale.copy_(scale)
        out.offset.copy_(offset)
        return out

    def dequantize(self) -> torch.Tensor:
        """The whole table as float32 (N, D)."""
        return self.codes.float() * self.scale + self.offset

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.codes).float() * self.scale + self.offset

    def extra_repr(self) -> str:
        return f"{self.codes.shape[0]}, {self.codes.shape[1]}, bits={self.bits}"


class QuantizedHashEmbedding(nn.Module):
    """HashEmbedding with a per-row uint8 bucket table (quantized EmbeddingBag, sum mode with per-sample weights)
    and float16 importance scalars (``importance_bits=16``) or ``importance_bits``-bit codes (2..8,
    :class:`CodedEmbedding`). Same input / output as :class:`~featherweight_core.students.models.HashEmbedding`:
    ids (B, T, num_hashes) -> (B, T, dim) float32."""

    def __init__(
        self, num_rows: int, num_buckets: int, dim: int, num_hashes: int = 3, importance_bits: int = 16
    ) -> None:
        super().__init__()
        import torch.ao.nn.quantized as nnq

        self.num_rows, self.num_buckets, self.dim, self.num_hashes = num_rows, num_buckets, dim, num_hashes
        self.importance_bits = importance_bits
        n = num_hashes * num_rows
        self.importance = HalfEmbedding(n, 1) if importance_bits == 16 else CodedEmbedding(n, 1, importance_bits)
        self.buckets = nnq.EmbeddingBag(num_buckets, dim, mode="sum", include_last_offset=False)
        self.register_buffer("hash_offsets", torch.arange(num_hashes) * num_rows, persistent=False)

    @classmethod
    def from_float(cls, emb: nn.Module, importance_bits: int = 16) -> QuantizedHashEmbedding:
        out = cls(emb.num_rows, emb.num_buckets, emb.dim, emb.num_hashes, importance_bits)
        if importance_bits == 16:
            out.importance = HalfEmbedding.from_float(emb.importance)
        else:
            out.importance = CodedEmbedding.from_float(emb.importance, importance_bits)
        out.buckets = _quantize_embedding_table(emb.buckets)
        return out

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        B, T, H = ids.shape
        flat = ids.reshape(-1, H)
        valid = flat > 0
        h = (flat - 1).clamp_min(0)
        weights = self.importance(h % self.num_rows + self.hash_offsets).squeeze(-1) * valid
        out = self.buckets(h // self.num_rows, per_sample_weights=weights)
        return out.view(B, T, self.dim)


def _quantize_embedding_table(emb: nn.Module) -> nn.Module:
    """nn.Embedding / nn.EmbeddingBag -> quantized module with per-row quint8 weights (float scale/zero point)."""
    import torch.ao.nn.quantized as nnq
    from torch.ao.quantization import float_qparams_weight_only_qconfig

    src = copy.copy(emb)
    src.qconfig = float_qparams_weight_only_qconfig
    cls = nnq.EmbeddingBag if isinstance(emb, nn.EmbeddingBag) else nnq.Embedding
    return cls.from_float(src)


# ----------------------------------------------------------------------------------------------------------------
# Classifier


class StaticQuantClassifier(nn.Module):
    """QuantStub -> the classifier Sequential (Linear+ReLU fused) -> DeQuantStub, for static quantization.
    x: (B, F) float32 -> (B, num_labels) float32."""

    def __init__(self, body: nn.Sequential) -> None:
        super().__init__()
        from torch.ao.quantization import DeQuantStub, QuantStub

        self.quant = QuantStub()
        self.body = body
        self.dequant = DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.body(self.quant(x)))


def _prepare_static_classifier(classifier: nn.Sequential) -> StaticQuantClassifier:
    from torch.ao.quantization import fuse_modules, get_default_qconfig, prepare

    body = copy.deepcopy(classifier).eval()
    # Student classifier: Dropout, Linear, ReLU, Dropout, Linear.
    pairs = [
        [str(i), str(i + 1)]
        for i in range(len(body) - 1)
        if isinstance(body[i], nn.Linear) and isinstance(body[i + 1], nn.ReLU)
    ]
    if pairs:
        body = fuse_modules(body, pairs)
    wrapped = StaticQuantClassifier(body).eval()
    wrapped.qconfig = get_default_qconfig(torch.backends.quantized.engine)
    return prepare(wrapped, inplace=False)


def _convert_static_classifier(prepared: nn.Module) -> nn.Module:
    from torch.ao.quantization import convert

    return convert(prepared.eval(), inplace=False)


# ----------------------------------------------------------------------------------------------------------------
# Inspection


def _is_quantized_module(m: nn.Module) -> bool:
    mod = type(m).__module__
    return (
        mod.startswith("torch.ao.nn.quantized")
        or mod.startswith("torch.ao.nn.intrinsic.quantized")
        or isinstance(m, HalfEmbedding | CodedEmbedding | QuantizedHashEmbedding | StaticQuantClassifier)
    )


def is_quantized(model: nn.Module) -> bool:
    """True when any submodule is a quantized (or float16) replacement made by :func:`quantize_student`."""
    return any(_is_quantized_module(m) for m in model.modules())


def quantized_groups(model: nn.Module) -> dict[str, bool]:
    """Which of the student's module groups hold quantized modules."""
    return {g: is_quantized(getattr(model, g)) for g in vocab.MODULE_GROUPS if hasattr(model, g)}


# ----------------------------------------------------------------------------------------------------------------
# Entry points


def quiet_torch_ao() -> None:
    """torch.ao.quantization is deprecated upstream but works; keep its warnings out of users' logs."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.ao\..*")


def quantize_student(
    model: nn.Module,
    cfg: QuantConfig,
    arch: str,
    calibration_split=None,
    calibrate: bool = True,
) -> nn.Module:
    """Return a quantized copy of a float student (the input is left untouched). Forward inputs are unchanged.

    ``arch`` is the student's architecture (``bilstm`` | ``rnn`` | ``ffn``). ``calibration_split`` (an
    EncodedSplit of *training* data) is needed for ``static_classifier``; ``calibrate=False`` builds the quantized
    structure without calibrating (used to rebuild a saved model before loading its state_dict).
    """
    if is_quantized(model):
        groups = [g for g, q in quantized_groups(model).items() if q]
        raise QuantizationError(f"model is already quantized (groups {groups}); quantize the float student instead")
    if has_pruning(model):
        raise QuantizationError("model still carries pruning masks: call prune.make_permanent(model) before quantizing")
    if cfg.static_classifier and calibrate and calibration_split is None:
        raise QuantizationError("static_classifier needs calibration_split (training data) to calibrate on")
    with warnings.catch_warnings():
        quiet_torch_ao()
        q = copy.deepcopy(model).cpu().eval()
        if cfg.embedding:
            q.embedding = _quantize_embedding(q.embedding, cfg.importance_bits)
        if cfg.encoder and arch in vocab.RECURRENT_ARCHS:
            q.encoder = _quantize_encoder(q.encoder)
        if cfg.classifier:
            if cfg.static_classifier:
                q.classifier = _prepare_static_classifier(q.classifier)
                if calibrate:
                    _calibrate(q, calibration_split, cfg)
                q.classifier = _convert_static_classifier(q.classifier)
            else:
                from torch.ao.quantization import quantize_dynamic

                q.classifier = quantize_dynamic(q.classifier, {nn.Linear}, dtype=torch.qint8)
    return q.eval()


def _quantize_embedding(emb: nn.Module, importance_bits: int = 16) -> nn.Module:
    if isinstance(emb, HashEmbedding):
        return QuantizedHashEmbedding.from_float(emb, importance_bits)
    if isinstance(emb, nn.Embedding):
        return _quantize_embedding_table(emb)
    raise TypeError(f"don't know how to quantize embedding {type(emb).__name__}")


def _quantize_encoder(encoder: nn.Module) -> nn.Module:
    from torch.ao.quantization import quantize_dynamic

    rnn = getattr(encoder, "rnn", None)
    if isinstance(rnn, nn.RNN):
        encoder.rnn = ElmanRNN.from_rnn(rnn)  # nn.RNN would silently stay float
        return quantize_dynamic(encoder, {nn.Linear}, dtype=torch.qint8)
    if isinstance(rnn, nn.LSTM):
        return quantize_dynamic(encoder, {nn.LSTM}, dtype=torch.qint8)
    raise TypeError(f"don't know how to quantize encoder {type(encoder).__name__}")


@torch.no_grad()
def _calibrate(model: nn.Module, split, cfg: QuantConfig) -> None:
    """Run the first ``calibration_batches`` shuffled training batches through the model (observers record)."""
    import numpy as np

    if split is None or len(split) == 0:
        raise QuantizationError("static_classifier needs a non-empty calibration split")
    model.eval()
    rng = np.random.default_rng(0)
    for i, batch in enumerate(iter_batches(split, cfg.calibration_batch_size, rng)):
        if i >= cfg.calibration_batches:
            break
        model(*batch.inputs)
