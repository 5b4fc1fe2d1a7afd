"""Bidirectional recurrent layers exported as one ONNX ``RNN`` / ``LSTM`` node over the whole padded batch, its
``sequence_lens`` taking the lengths: the backward direction then starts at each sequence's last real step and
``Y_h`` holds each direction's last real state, which is what the packed PyTorch layer computes. Written as one
node (rather than per-direction layers, reversal within lengths and gathers of the last state) because at batch 1
ONNX Runtime's time goes on per-node overhead, not arithmetic.

ONNX Runtime runs these layouts only time-major (``layout`` 0): the input is transposed once. The PyTorch side of
each :class:`torch.autograd.Function` returns zeros of the right shapes: it exists for the exporter's trace only
(the graph's values come from ONNX Runtime, and every export is checked against the PyTorch model).
"""

from __future__ import annotations

import torch
from torch import nn

_INT32 = 6  # onnx.TensorProto.INT32


def _recurrent_node(g, op: str, x, w, r, b, lengths, hidden: int):
    seq = g.op("Cast", lengths, to_i=_INT32)
    xt = g.op("Transpose", x, perm_i=[1, 0, 2])
    outs = 3 if op == "LSTM" else 2
    kwargs = {"activations_s": ["Tanh", "Tanh"]} if op == "RNN" else {}
    y = g.op(op, xt, w, r, b, seq, direction_s="bidirectional", hidden_size_i=hidden, outputs=outs, **kwargs)
    return y[0], y[1]


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


class _LSTMOp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, r, b, lengths):
        return _zeros(x, r.shape[-1])

    @staticmethod
    def symbolic(g, x, w, r, b, lengths):
        return _recurrent_node(g, "LSTM", x, w, r, b, lengths, _static_dim(r, -1))


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


class OnnxLSTM(nn.Module):
    """A float bidirectional ``nn.LSTM`` (one layer, batch first) as one ONNX ``LSTM`` node with its weights in ONNX's
    gate order (i, o, f, c) as plain initializers (what ONNX Runtime's dynamic quantization rewrites as
    ``DynamicQuantizeLSTM``). x: (B, T, I), lengths: (B,) -> (B, 2H)."""

    def __init__(self, lstm: nn.LSTM, pooling: str) -> None:
        super().__init__()
        self.pooling = pooling
        H = lstm.hidden_size
        order = torch.cat([torch.arange(0, H), torch.arange(3 * H, 4 * H), torch.arange(H, 3 * H)])  # ifgo -> iofg
        ws, rs, bs = [], [], []
        for suffix in ("", "_reverse"):
            ws.append(getattr(lstm, f"weight_ih_l0{suffix}").detach()[order])
            rs.append(getattr(lstm, f"weight_hh_l0{suffix}").detach()[order])
            if lstm.bias:
                bias = [getattr(lstm, f"bias_{k}_l0{suffix}").detach()[order] for k in ("ih", "hh")]
            else:
                bias = [torch.zeros(4 * H), torch.zeros(4 * H)]
            bs.append(torch.cat(bias))
        self.register_buffer("w", torch.stack(ws).float().contiguous())
        self.register_buffer("r", torch.stack(rs).float().contiguous())
        self.register_buffer("b", torch.stack(bs).float().contiguous())

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        y, y_h = _LSTMOp.apply(x, self.w, self.r, self.b, lengths)
        return pool(y, y_h, lengths, self.pooling)
