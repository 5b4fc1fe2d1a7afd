"""Export-friendly forms of the models: student encoders whose recurrences ONNX and tracing can follow (a scripted
Elman scan, an int8 LSTM computed step by step from its packed weights), and the wrappers whose inputs are plain
int64 tensors and whose output is the logits."""

from __future__ import annotations

import torch
from torch import nn

from featherweight_core.compression.quantize import ElmanRNN
from featherweight_core.students.models import RecurrentEncoder

# ---------------------------------------------------------------------------------------------------------------
# export-friendly forms of the quantized recurrent encoders


@torch.jit.script
def _elman_scan(xp: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor, lengths: torch.Tensor):
    """The recurrence of :class:`featherweight_core.compression.quantize.ElmanDirection` as a scripted loop (a trace keeps
    the loop, so the time axis stays dynamic). xp: (B, T, H) input projections -> outputs (B, T, H), h_last (B, H)."""
    B = xp.size(0)
    T = xp.size(1)
    h = xp.new_zeros([B, w_hh.size(0)])
    outs = [xp.new_zeros([B, 0, w_hh.size(0)])]
    for t in range(T):
        h_new = torch.tanh(xp[:, t] + torch.nn.functional.linear(h, w_hh, b_hh))
        alive = (t < lengths).unsqueeze(1)
        h = torch.where(alive, h_new, h)
        outs.append(torch.where(alive, h_new, torch.zeros_like(h_new)).unsqueeze(1))
    return torch.cat(outs, 1), h


def _reverse_within(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    T = x.shape[1]
    t = torch.arange(T, device=x.device)[None, :]
    idx = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
    return x.gather(1, idx.view(*idx.shape, *([1] * (x.dim() - 2))).expand_as(x))


def _padding_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


class _ElmanEncoder(nn.Module):
    """RecurrentEncoder over a quantized :class:`~featherweight_core.compression.quantize.ElmanRNN`, computing what its packed
    path computes: input projections (int8 dynamic Linear) over the zero-padded batch, the recurrent weight
    dequantized once (as ElmanDirection does), the scan in a scripted loop."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        rnn = encoder.rnn
        self.pooling = encoder.pooling
        self.ih_f, self.ih_b = rnn.fwd.ih, rnn.bwd.ih
        for name, d in (("f", rnn.fwd), ("b", rnn.bwd)):
            hh = d.hh
            w, b = (
                (hh.weight().dequantize(), hh.bias()) if callable(getattr(hh, "weight", None)) else (hh.weight, hh.bias)
            )
            self.register_buffer(f"w_hh_{name}", w.detach().clone())
            self.register_buffer(f"b_hh_{name}", b.detach().clone())

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = x * _padding_mask(lengths, x.shape[1])[..., None].to(x.dtype)  # the packed path pads with zeros
        out_f, h_f = _elman_scan(self.ih_f(x), self.w_hh_f, self.b_hh_f, lengths)
        out_b, h_b = _elman_scan(self.ih_b(_reverse_within(x, lengths)), self.w_hh_b, self.b_hh_b, lengths)
        if self.pooling == "last":
            return torch.cat([h_f, h_b], dim=-1)
        out = torch.cat([out_f, _reverse_within(out_b, lengths)], dim=-1)
        return out.masked_fill(~_padding_mask(lengths, x.shape[1])[..., None], float("-inf")).amax(1)


class _QuantizedLSTMEncoder(nn.Module):
    """RecurrentEncoder over an int8 dynamic bidirectional LSTM, without packed sequences (which a trace fixes to
    the example's batch): each direction's packed weights run as a one-direction dynamic LSTM over the padded
    batch, the backward one over each sequence reversed within its length; the state at ``length - 1`` is read.
    For one example this is the packed computation exactly; in a padded batch the padding rows also enter each
    step's dynamic activation range."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        import torch.ao.nn.quantized.dynamic as nnqd

        rnn = encoder.rnn
        self.pooling = encoder.pooling
        self.hidden = rnn.hidden_size
        dirs = []
        for i in range(2):
            one = nnqd.LSTM(
                rnn.input_size,
                rnn.hidden_size,
                num_layers=1,
                bias=rnn.bias,
                batch_first=True,
                bidirectional=False,
                dtype=rnn.dtype,
            )
            one._all_weight_values = nn.ModuleList([rnn._all_weight_values[i]])
            dirs.append(one)
        self.fwd, self.bwd = dirs

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        x = x * _padding_mask(lengths, T)[..., None].to(x.dtype)
        out_f, _ = self.fwd(x)
        out_b, _ = self.bwd(_reverse_within(x, lengths))
        if self.pooling == "last":
            idx = (lengths - 1).view(B, 1, 1).expand(B, 1, self.hidden)
            return torch.cat([out_f.gather(1, idx).squeeze(1), out_b.gather(1, idx).squeeze(1)], dim=-1)
        out = torch.cat([out_f, out_b], dim=-1)  # time order differs between halves; max over time does not care
        return out.masked_fill(~_padding_mask(lengths, T)[..., None], float("-inf")).amax(1)


def _exportable_student(model: nn.Module) -> nn.Module:
    """The student with its quantized recurrent encoder (if any) replaced by a traceable equivalent."""
    import copy

    enc = getattr(model, "encoder", None)
    rnn = getattr(enc, "rnn", None)
    if not isinstance(enc, RecurrentEncoder) or isinstance(rnn, nn.LSTM | nn.RNN) and enc._fast_path_ok():
        return model
    out = copy.copy(model)
    out._modules = dict(model._modules)
    if isinstance(rnn, ElmanRNN):
        out.encoder = _ElmanEncoder(enc)
    elif type(rnn).__module__.startswith("torch.ao.nn.quantized") and type(rnn).__name__ == "LSTM":
        out.encoder = _QuantizedLSTMEncoder(enc)
    return out


class StudentExport(nn.Module):
    """A student with plain tensor inputs: ``(ids, lengths)`` or ``(ids_a, lengths_a, ids_b, lengths_b)`` ->
    logits (batch, num_labels) float32."""

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        self.student = _exportable_student(student).eval()

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.student(*inputs)


class TransformerExport(nn.Module):
    """A sequence classifier with plain tensor inputs: ``input_ids, attention_mask[, token_type_ids]`` -> logits."""

    def __init__(self, model: nn.Module, token_types: bool) -> None:
        super().__init__()
        self.model = model.eval()
        self.token_types = token_types

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self.token_types:
            kwargs["token_type_ids"] = rest[0]
        return self.model(**kwargs).logits
