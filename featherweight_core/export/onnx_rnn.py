"""Bidirectional recurrent layers exported as one ONNX ``RNN`` node, or one ONNX Runtime ``DynamicQuantizeLSTM`` node,
over the whole padded batch, its ``sequence_lens`` taking the lengths: the backward direction then starts at each
sequence's last real step and ``Y_h`` holds each direction's last real state, which is what the packed PyTorch layer
computes. Written as one node (rather than per-direction layers, reversal within lengths and gathers of the last
state) because at batch 1 ONNX Runtime's time goes on per-node overhead, not arithmetic.

ONNX Runtime runs these layouts only time-major (``layout`` 0): the input is transposed once. The PyTorch side of
each :class:`torch.autograd.Function` returns zeros of the right shapes: it exists for the exporter's trace only
(the graph's values come from ONNX Runtime, and every export is checked against the PyTorch model).
"""

from __future__ import annotations

import torch
from torch import nn

_INT32 = 6  # onnx.TensorProto.INT32
QUANTIZED_LSTM_OP = "DynamicQuantizeLSTM"  # ONNX Runtime's int8 LSTM (domain com.microsoft)


def _recurrent_node(g, op: str, x, w, r, b, lengths, hidden: int, quantization: tuple = ()):
    """``op`` (``RNN``, ``LSTM`` or :data:`QUANTIZED_LSTM_OP`, whose weight scales and zero points are
    ``quantization``) over ``x`` (B, T, I) -> Y (T, 2, B, H), Y_h (2, B, H)."""
    seq = g.op("Cast", lengths, to_i=_INT32)
    xt = g.op("Transpose", x, perm_i=[1, 0, 2])
    outs = 2 if op == "RNN" else 3
    kwargs = {"activations_s": ["Tanh", "Tanh"]} if op == "RNN" else {}
    inputs = [xt, w, r, b, seq]
    if op == QUANTIZED_LSTM_OP:
        op = f"com.microsoft::{op}"
        inputs += [_absent(g) for _ in range(3)] + list(quantization)  # initial_h, initial_c, P: none
    y = g.op(op, *inputs, direction_s="bidirectional", hidden_size_i=hidden, outputs=outs, **kwargs)
    if quantization:  # the exporter has no shape inference for ONNX Runtime's ops: Y (T, 2, B, H), Y_h / Y_c (2, B, H)
        for k, sizes in enumerate(([None, 2, None, hidden], [2, None, hidden], [2, None, hidden])):
            y[k].setType(x.type().with_sizes(sizes))
    return y[0], y[1]


def _absent(g):
    """An optional input left out (written as an empty input name)."""
    n = g.op("prim::Constant")
    n.setType(torch._C.OptionalType.ofTensor())
    return n


def _zeros(x: torch.Tensor, hidden: int) -> tuple[torch.Tensor, torch.Tensor]:
    B, T, _ = x.shape
    return x.new_zeros(T, 2, B, hidden), x.new_zeros(2, B, hidden)


class _RNNOp(torch.autograd.Function):
    """x (B, T, 2H): both directions' input projections side by side, taken through identity input weights."""

    @staticmethod
    def forward(ctx, x, r, b, lengths):
        return _zeros(x, r.shape[-1])

    @staticmethod
    def symbolic(g, x, r, b, lengths):
        hidden = _static_dim(r, -1)
        # W = [[I 0], [0 I]] (2, H, 2H) built in the graph from its shape (ONNX Runtime folds it at load): stored,
        # it would be the largest tensor of the file
        shape = g.op("Constant", value_t=torch.tensor([hidden, 2 * hidden], dtype=torch.int64))
        zeros = g.op("ConstantOfShape", shape, value_t=torch.zeros(1, dtype=torch.float32))
        axis0 = g.op("Constant", value_t=torch.tensor([0], dtype=torch.int64))
        halves = [g.op("Unsqueeze", g.op("EyeLike", zeros, k_i=k), axis0) for k in (0, hidden)]
        w = g.op("Concat", *halves, axis_i=0)
        return _recurrent_node(g, "RNN", x, w, r, b, lengths, hidden)


class _QuantizedLSTMOp(torch.autograd.Function):
    """w (2, I, 4H) and r (2, H, 4H): int8 codes; scales and zero points per direction or per gate unit."""

    @staticmethod
    def forward(ctx, x, w, r, b, lengths, w_scale, w_zero, r_scale, r_zero):
        return _zeros(x, r.shape[1])

    @staticmethod
    def symbolic(g, x, w, r, b, lengths, w_scale, w_zero, r_scale, r_zero):
        quantization = (w_scale, w_zero, r_scale, r_zero)
        return _recurrent_node(g, QUANTIZED_LSTM_OP, x, w, r, b, lengths, _static_dim(r, 1), quantization)


def _static_dim(value, axis: int) -> int:
    return value.type().sizes()[axis]


def pool(y: torch.Tensor, y_h: torch.Tensor, lengths: torch.Tensor, pooling: str) -> torch.Tensor:
    """(B, 2H) features from the node's outputs, Y (T, 2, B, H) and Y_h (2, B, H): the last real state of each
    direction (``last``) or the max over the real steps (``max``; ONNX Runtime leaves padded steps at 0, so they are
    masked)."""
    if pooling == "max":
        steps = torch.arange(y.shape[0], device=y.device)[:, None] < lengths[None, :]  # (T, B)
        y_h = y.masked_fill(~steps[:, None, :, None], float("-inf")).amax(0)
    return y_h.transpose(0, 1).flatten(1)


def run_rnn(x: torch.Tensor, r: torch.Tensor, b: torch.Tensor, lengths: torch.Tensor):
    """ONNX ``RNN`` (tanh, bidirectional) over precomputed input projections: x (B, T, 2H) (forward direction's
    first), r (2, H, H), b (2, 2H) -> Y, Y_h."""
    return _RNNOp.apply(x, r, b, lengths)


class QuantizedOnnxLSTM(nn.Module):
    """A dynamic int8 bidirectional LSTM (one layer, batch first) as one ONNX Runtime ``DynamicQuantizeLSTM`` node
    holding the int8 weights as they are: ``codes`` and ``scales``, each PyTorch's ``[forward, backward]`` input and
    recurrent weights, (4H, I) / (4H, H) int8 codes in PyTorch's gate order (i, f, g, o) with their scale (one per
    tensor, or one per gate unit: (4H,)) and zero point 0; ``biases``: each direction's float (b_ih, b_hh).

    The node multiplies the activations, quantized per call to uint8, with these codes, so the weights are the int8
    model's own, not quantized a second time. x: (B, T, I), lengths: (B,) -> (B, 2H)."""

    def __init__(self, codes: list, scales: list, biases: list, pooling: str) -> None:
        super().__init__()
        self.pooling = pooling
        H = codes[1].shape[1]
        order = _onnx_gate_order(H)
        w, r = codes[0::2], codes[1::2]
        self.register_buffer("w", torch.stack([c[order].t() for c in w]).contiguous())
        self.register_buffer("r", torch.stack([c[order].t() for c in r]).contiguous())
        self.register_buffer("b", torch.stack([torch.cat([b[order] for b in pair]) for pair in biases]).float())
        # one scale per direction when every weight has one, else one per gate unit
        per_tensor = all(s.numel() == 1 for s in scales)
        for name, sc in (("w", scales[0::2]), ("r", scales[1::2])):
            s = torch.stack([s.reshape(()) if per_tensor else s.expand(4 * H)[order] for s in sc]).float()
            self.register_buffer(f"{name}_scale", s.contiguous())
        self.register_buffer("zero", torch.zeros(self.w_scale.shape, dtype=torch.int8))  # W's and R's

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        q = (self.w_scale, self.zero, self.r_scale, self.zero)
        y, y_h = _QuantizedLSTMOp.apply(x, self.w, self.r, self.b, lengths, *q)
        return pool(y, y_h, lengths, self.pooling)


def _onnx_gate_order(hidden: int) -> torch.Tensor:
    """Rows of PyTorch's gate order (i, f, g, o) in ONNX's (i, o, f, c)."""
    H = hidden
    return torch.cat([torch.arange(0, H), torch.arange(3 * H, 4 * H), torch.arange(H, 3 * H)])
