"""Compressing a trained student: pruning (configs, masks and schedules, the fine-tuning loop) and int8 quantization."""
