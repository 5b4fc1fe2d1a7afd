"""The int8 LSTM as ONNX Runtime's ``DynamicQuantizeLSTM``: PyTorch's int8 LSTM with one weight scale per tensor (what
``compress`` makes) or per gate unit, exported and run in ONNX Runtime over a padded batch, gives each text what
PyTorch's int8 LSTM gives it alone (up to the two runtimes' activation rounding)."""

from __future__ import annotations

import copy
import io

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from featherweight_core.export.int8 import int8_lstm_encoder


class _Encoder(nn.Module):
    def __init__(self, pooling: str) -> None:
        super().__init__()
        self.rnn = nn.LSTM(6, 5, batch_first=True, bidirectional=True)
        self.pooling = pooling


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("pooling", ["last", "max"])
def test_int8_lstm_node_matches_pytorchs_int8_lstm(per_channel, pooling):
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    torch.manual_seed(0)
    spec = {nn.LSTM: per_channel_dynamic_qconfig} if per_channel else {nn.LSTM}
    quantized = quantize_dynamic(copy.deepcopy(_Encoder(pooling).eval()), spec, dtype=torch.qint8)
    scheme = quantized.rnn._weight_bias()["weight"]["weight_hh_l0"].qscheme()
    assert (scheme == torch.per_channel_affine) == per_channel
    form = int8_lstm_encoder(quantized)
    assert form.w.dtype == form.r.dtype == torch.int8
    assert form.w_scale.shape == ((2, 20) if per_channel else (2,))
    x, lengths = torch.randn(3, 7, 6), torch.tensor([7, 4, 1])
    buf = io.BytesIO()
    torch.onnx.export(
        form,
        (x, lengths),
        buf,
        dynamo=False,
        input_names=["x", "lengths"],
        output_names=["out"],
        dynamic_axes={"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"}},
        opset_version=17,
        do_constant_folding=False,
    )
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"x": x.numpy(), "lengths": lengths.numpy()})[0]
    want = []
    for row, n in zip(x, lengths.tolist(), strict=True):
        y, (h, _) = quantized.rnn(row[None, :n])
        want.append((y.amax(1) if pooling == "max" else h.transpose(0, 1).flatten(1)).detach().numpy())
    np.testing.assert_allclose(got, np.concatenate(want), atol=0.02)
