"""Exporting a trained model as a deployable artefact (ONNX or TorchScript) checked against the PyTorch model."""
