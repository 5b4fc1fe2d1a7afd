"""int8 students as ONNX: the PyTorch int8 student rewritten as a graph ONNX can export - its int8 LSTM as ONNX
Runtime's own int8 LSTM holding the same int8 weights, the other int8 layers as float layers holding their int8
weights dequantized - exported, then those layers quantized again with ONNX Runtime's own dynamic quantization
(``quantize_dynamic``).

PyTorch's dynamically quantized modules have no ONNX form, so the int8 student is first rewritten module by module
(:func:`int8_export_form`):

* int8 Linear layers (classifier; the Elman RNN's input projections) become float ``MatMul`` + ``Add`` holding the
  dequantized int8 weights (``MatMul`` rather than ``Gemm``: ONNX Runtime's dynamic quantization rewrites
  ``MatMul``). A statically quantized classifier is rewritten the same way (its calibrated activation ranges have
  no counterpart in dynamic quantization: ONNX Runtime takes them on the fly, as PyTorch's dynamic layers do).
* the int8 LSTM becomes one bidirectional ONNX Runtime ``DynamicQuantizeLSTM`` node, the lengths as its
  ``sequence_lens`` (:mod:`featherweight_core.export.onnx_rnn`), holding PyTorch's own int8 weight codes and scales
  (one per tensor): its weights are exactly the int8 model's, and it runs ONNX Runtime's int8 kernel with one
  scale per tensor, which is faster at batch 1 than one per gate unit.
* the Elman RNN becomes one bidirectional ONNX ``RNN`` node over its int8 input projections; its recurrent weight
  stays int8 in the file and is dequantized in the graph (PyTorch dequantizes it once per call too).
* per-row uint8 embedding tables (bpe / char tables, hash buckets) stay uint8 in the file: the graph dequantizes the
  whole table with each row's scale and offset, which is what PyTorch computes, exactly, and ONNX Runtime folds
  that once at load, so a lookup is one ``Gather``. float16 and coded importance scalars are stored as they are.

The graph is exported without constant folding (what is stored int8 stays int8) and written with as few nodes as it
can be - no reshapes or shape arithmetic, no per-step loops - because at batch 1 ONNX Runtime's time goes on per-node
overhead more than on arithmetic; a recurrent node's outputs that nothing reads are left out
(:func:`drop_unread_outputs`).

Then only the ``MatMul`` nodes that come from int8 Linear layers are handed to ``quantize_dynamic`` (weights int8,
symmetric, one scale per output channel; activations uint8 per call): a layer the compression left in float stays
float. Per channel rather than PyTorch's one scale per tensor: re-quantizing already-rounded weights per tensor adds
a second rounding (measured on an SST-2 BiLSTM whose LSTM was quantized the same way: 10 of 872 dev predictions
differed from PyTorch's int8 model per tensor, 4 per channel, for about 8% more bytes).

Both runtimes quantize activations on the fly but round differently (PyTorch's x86 kernels use 7-bit activation
ranges, ONNX Runtime 8-bit; for the Linear layers ONNX Runtime re-derives the weight scale from the dequantized
weights), so logits differ by a little and a prediction close to a tie can flip: the check counts the dev examples
whose prediction differs and accepts up to :data:`INT8_MAX_DISAGREE` of them."""

from __future__ import annotations

import copy
import logging
import re
from pathlib import Path

import torch
from torch import nn

from featherweight_core.compression.quantize import (
    CodedEmbedding,
    ElmanRNN,
    HalfEmbedding,
    QuantizedHashEmbedding,
    StaticQuantClassifier,
    is_quantized,
)
from featherweight_core.export.onnx_rnn import QUANTIZED_LSTM_OP, QuantizedOnnxLSTM, pool, run_rnn
from featherweight_core.export.rnn import _padding_mask
from featherweight_core.students.models import MeanEncoder

# Fraction of dev examples whose int8 ONNX prediction may differ from the PyTorch int8 model's (two int8 kernels
# round differently; a prediction near a tie can flip). Observed: 0 to 0.5% on SST-2 students.
INT8_MAX_DISAGREE = 0.01
INT8_OP_TYPES = ("MatMul",)
RECURRENT_OP_TYPES = ("RNN", "LSTM", QUANTIZED_LSTM_OP)


class MatMulLinear(nn.Module):
    """``x @ weight.T + bias`` exported as ``MatMul`` + ``Add`` (what ONNX Runtime's dynamic quantization rewrites)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.weight_t = nn.Parameter(weight.detach().t().contiguous().clone(), requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.matmul(x, self.weight_t)
        return y if self.bias is None else y + self.bias


class RowQuantEmbedding(nn.Module):
    """A per-row uint8 table: row ``i`` is ``codes[i] * scale[i] + offset[i]`` (PyTorch's float-qparams embedding,
    ``(q - zero_point) * scale``). ids (...) -> (..., D) float32.

    The whole table is dequantized in the graph from the uint8 codes kept in the file (exported without constant
    folding, ONNX Runtime folds it once when it loads the model), so a call is one ``Gather``."""

    def __init__(self, quantized_weight: torch.Tensor) -> None:
        super().__init__()
        scale = quantized_weight.q_per_channel_scales().float()
        zero = quantized_weight.q_per_channel_zero_points().float()
        self.register_buffer("codes", quantized_weight.int_repr().clone())
        self.register_buffer("scale", scale[:, None].clone())
        self.register_buffer("offset", (-zero * scale)[:, None].clone())

    def table(self) -> torch.Tensor:
        return self.codes.float() * self.scale + self.offset

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table()[ids]


def _importance_table(importance: nn.Module) -> torch.Tensor:
    """The (N, 1) float32 importance scalars of a float16 or coded table, computed in the graph from what is stored."""
    if isinstance(importance, CodedEmbedding):
        return importance.codes.float() * importance.scale + importance.offset
    return importance.weight.float()


class HashEmbeddingExport(nn.Module):
    """:class:`QuantizedHashEmbedding` with its uint8 bucket table as a :class:`RowQuantEmbedding` and the bag
    written as gathers + weighted sum over the last (fixed) axis: no reshape, so the graph needs no shape
    arithmetic. With ``s = id + num_rows - 1`` (never negative), a real id's bucket ``(id - 1) // num_rows`` is row
    ``s // num_rows - 1`` and its importance row ``(id - 1) % num_rows == s % num_rows``: the bucket table gets a 0
    row in front, so a padding id (0) reads the 0 row, and its vector is exactly 0."""

    def __init__(self, emb: QuantizedHashEmbedding) -> None:
        super().__init__()
        self.num_rows, self.dim = emb.num_rows, emb.dim
        self.importance = emb.importance
        self.buckets = RowQuantEmbedding(emb.buckets.weight())
        self.register_buffer("hash_offsets", emb.hash_offsets.clone(), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        buckets = torch.cat([torch.zeros(1, self.dim), self.buckets.table()])
        s = ids + (self.num_rows - 1)
        weights = _importance_table(self.importance)[s % self.num_rows + self.hash_offsets]  # (B, T, H, 1)
        rows = buckets[torch.div(s, self.num_rows, rounding_mode="trunc")]  # (B, T, H, D)
        return (rows * weights).sum(2)


class ZeroPaddedMean(nn.Module):
    """:class:`~featherweight_core.students.models.MeanEncoder` over embeddings whose padding vectors are exactly 0
    (a hash embedding's): the sum over time needs no mask. x: (B, T, E) -> (B, E)."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return x.sum(1) / lengths.clamp_min(1).unsqueeze(1).to(x.dtype)


class ElmanExport(nn.Module):
    """The int8 Elman RNN encoder as one bidirectional ONNX ``RNN`` node (:mod:`featherweight_core.export.onnx_rnn`):
    both directions' input projections as one float ``MatMul`` (quantized by ONNX Runtime: the same activation
    range and per-channel weight scales as two) whose output is the node's input, taken through identity input
    weights; the recurrent weights as :class:`~featherweight_core.compression.quantize.ElmanDirection` computes
    them: an int8 recurrent weight stays int8 in the file and is dequantized once (ONNX Runtime folds it when it
    loads the model; PyTorch dequantizes it once per call). ``zero_padded``: the embedding's padding vectors are
    exactly 0 (hash), so the input needs no mask (the packed PyTorch layer sees zeros there)."""

    def __init__(self, encoder: nn.Module, zero_padded: bool = False) -> None:
        super().__init__()
        rnn = encoder.rnn
        self.pooling, self.zero_padded = encoder.pooling, zero_padded
        (w_f, b_f), (w_b, b_b) = _weight_bias(rnn.fwd.ih), _weight_bias(rnn.bwd.ih)
        self.ih = MatMulLinear(torch.cat([w_f, w_b]), None if b_f is None else torch.cat([b_f, b_b]))
        H = rnn.hidden_size
        biases = []
        for name, d in (("f", rnn.fwd), ("b", rnn.bwd)):
            hh = d.hh
            if callable(getattr(hh, "weight", None)):  # int8: codes and the per-tensor scale / zero point
                q = hh.weight()
                codes, scale, zero_point = q.int_repr().clone(), float(q.q_scale()), float(q.q_zero_point())
            else:
                codes, scale, zero_point = hh.weight.detach().float().clone(), 1.0, 0.0
            self.register_buffer(f"w_hh_{name}", codes)
            self.register_buffer(f"s_hh_{name}", torch.tensor([scale, zero_point], dtype=torch.float32))
            b_hh = _weight_bias(hh)[1]
            biases.append(torch.cat([torch.zeros(H), torch.zeros(H) if b_hh is None else b_hh]))
        self.register_buffer("b", torch.stack(biases))

    @staticmethod
    def _weight(codes: torch.Tensor, qparams: torch.Tensor) -> torch.Tensor:
        return (codes.float() - qparams[1]) * qparams[0]

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if not self.zero_padded:
            x = x * _padding_mask(lengths, x.shape[1])[..., None].to(x.dtype)
        r = torch.stack([self._weight(self.w_hh_f, self.s_hh_f), self._weight(self.w_hh_b, self.s_hh_b)])
        y, y_h = run_rnn(self.ih(x), r, self.b, lengths)
        return pool(y, y_h, lengths, self.pooling)


def _weight_bias(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Float weight and bias of a Linear, int8 (dynamic or static, fused or not) or float."""
    if callable(getattr(layer, "weight", None)):
        w, b = layer.weight().dequantize(), layer.bias()
    else:
        w, b = layer.weight, layer.bias
    return w.detach().float().clone(), None if b is None else b.detach().float().clone()


def _linear(layer: nn.Module) -> MatMulLinear:
    return MatMulLinear(*_weight_bias(layer))


def int8_lstm_encoder(encoder: nn.Module) -> QuantizedOnnxLSTM:
    """PyTorch's dynamic int8 LSTM with its own int8 weight codes and scales (zero points must be 0: PyTorch's
    dynamic quantization makes them symmetric)."""
    rnn = encoder.rnn
    weights, biases = rnn._weight_bias()["weight"], rnn._weight_bias()["bias"]
    codes, scales, pairs = [], [], []
    for suffix in ("", "_reverse"):
        for kind in ("ih", "hh"):
            q = weights[f"weight_{kind}_l0{suffix}"]
            if q.qscheme() in (torch.per_tensor_affine, torch.per_tensor_symmetric):
                scale, zero = torch.tensor(q.q_scale()), torch.tensor(q.q_zero_point())
            else:
                scale, zero = q.q_per_channel_scales(), q.q_per_channel_zero_points()
            if zero.any():
                raise TypeError("no int8 ONNX form for an LSTM whose int8 weights have non-zero zero points")
            codes.append(q.int_repr().clone())
            scales.append(scale.float().clone())
        H4 = codes[-1].shape[0]
        b = [biases.get(f"bias_{k}_l0{suffix}") for k in ("ih", "hh")]
        pairs.append([torch.zeros(H4) if v is None else v.detach().float().clone() for v in b])
    return QuantizedOnnxLSTM(codes, scales, pairs, encoder.pooling).eval()


def _classifier(classifier: nn.Module) -> tuple[nn.Module, list[str]]:
    """The classifier with int8 Linears as :class:`MatMulLinear`; returns it and the rewritten layers' names."""
    body = classifier.body if isinstance(classifier, StaticQuantClassifier) else classifier
    layers: list[nn.Module] = []
    names: list[str] = []
    for m in body:
        if callable(getattr(m, "weight", None)):  # int8 Linear, or a fused int8 Linear+ReLU
            layers.append(_linear(m))
            names.append(str(len(layers) - 1))
            if "ReLU" in type(m).__name__:
                layers.append(nn.ReLU())
        elif isinstance(m, nn.Linear):
            layers.append(MatMulLinear(m.weight, m.bias))
        elif type(m).__name__ in ("QuantStub", "DeQuantStub", "Identity"):
            continue
        else:
            layers.append(m)
    return nn.Sequential(*layers).eval(), names


def int8_export_form(student: nn.Module) -> tuple[nn.Module, list[str]]:
    """A float copy of an int8 student that ONNX can export, and the module paths (``classifier.0``,
    ``encoder.rnn``...) whose nodes ONNX Runtime should quantize (those that were int8 in PyTorch)."""
    import torch.ao.nn.quantized as nnq

    out = copy.copy(student)
    out._modules = dict(student._modules)
    quantize: list[str] = []
    emb = student.embedding
    if isinstance(emb, QuantizedHashEmbedding):
        out.embedding = HashEmbeddingExport(emb)
        if isinstance(student.encoder, MeanEncoder):
            out.encoder = ZeroPaddedMean()
    elif isinstance(emb, nnq.Embedding):
        out.embedding = RowQuantEmbedding(emb.weight())
    elif not isinstance(emb, HalfEmbedding | CodedEmbedding | nn.Embedding) and not type(emb).__name__.endswith(
        "HashEmbedding"
    ):
        raise TypeError(f"no int8 ONNX form for embedding {type(emb).__name__}")
    enc = student.encoder
    rnn = getattr(enc, "rnn", None)
    if isinstance(rnn, ElmanRNN) and is_quantized(rnn):
        out.encoder = ElmanExport(enc, isinstance(emb, QuantizedHashEmbedding))
        quantize.append("encoder.ih")
    elif rnn is not None and type(rnn).__module__.startswith("torch.ao.nn.quantized") and type(rnn).__name__ == "LSTM":
        out.encoder = int8_lstm_encoder(enc)
    elif isinstance(rnn, ElmanRNN):  # float Elman RNN (quantized classifier only)
        out.encoder = ElmanExport(enc, isinstance(emb, QuantizedHashEmbedding))
    out.classifier, names = _classifier(student.classifier)
    quantize += [f"classifier.{n}" for n in names]
    return out.eval(), quantize


def ort_quantize(float_onnx: Path, int8_onnx: Path, module_paths: list[str]) -> int:
    """Quantize the ``MatMul`` nodes of ``float_onnx`` exported from ``module_paths`` (the exporter names nodes by
    module path) with ONNX Runtime's dynamic quantization into ``int8_onnx``; returns how many nodes were handed to
    it (none: the graph is written as it is, its int8 LSTM already int8). Recurrent nodes first lose the outputs
    nothing reads (:func:`drop_unread_outputs`)."""
    import onnx  # deferred: only exports load the ONNX toolchain
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(float_onnx))
    drop_unread_outputs(model.graph)
    if not module_paths:
        onnx.save(model, str(int8_onnx))
        return 0
    onnx.save(model, str(float_onnx))  # quantize_dynamic reads the graph from a file
    prefixes = tuple(_node_scope(p) for p in module_paths)
    chosen = [n for n in model.graph.node if n.op_type in INT8_OP_TYPES and _call_scope(n.name).startswith(prefixes)]
    if not chosen:  # quantize_dynamic reads an empty list as "every node"
        raise ValueError(f"no {'/'.join(INT8_OP_TYPES)} node of {module_paths} found in the exported graph")
    nodes = [n.name for n in chosen]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process the graph (shape inference) does not apply here
    try:
        quantize_dynamic(
            str(float_onnx),
            str(int8_onnx),
            op_types_to_quantize=list(INT8_OP_TYPES),
            nodes_to_quantize=nodes,
            per_channel=True,
            reduce_range=False,
            weight_type=QuantType.QInt8,
            extra_options={"MatMulConstBOnly": True},
        )
    finally:
        root.setLevel(level)
    return len(nodes)


def drop_unread_outputs(graph) -> bool:
    """Leave out the optional outputs of the recurrent nodes (``RNN``, ``LSTM``, ``DynamicQuantizeLSTM``: all their
    outputs are optional) that no node and no graph output reads - with last-state pooling, every step's hidden
    state ``Y`` (and an LSTM's last cell state ``Y_c``): ONNX Runtime then neither writes them nor, for the backward
    direction, reverses them back into place. Returns whether the graph changed."""
    read = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    changed = False
    for node in graph.node:
        if node.op_type in RECURRENT_OP_TYPES:
            for k, name in enumerate(node.output):
                if name and name not in read:
                    node.output[k] = ""
                    changed = True
    return changed


def _call_scope(node_name: str) -> str:
    """A node's name without the exporter's call counts: a module called again (a sentence pair's encoder, once per
    text) has its scope numbered, ``/student/encoder_1/LSTM``; both calls' layers are the same int8 module."""
    return re.sub(r"_\d+(?=/)", "", node_name)


def _node_scope(module_path: str) -> str:
    """The node-name prefix the TorchScript-based exporter gives a module of the wrapped student: one level per
    attribute, a numbered child named with its parent (``classifier.1`` -> ``/student/classifier/classifier.1/``)."""
    parts = module_path.split(".")
    scope = ["student"]
    for i, part in enumerate(parts):
        scope.append(f"{parts[i - 1]}.{part}" if part.isdigit() and i else part)
    return "/" + "/".join(scope) + "/"
