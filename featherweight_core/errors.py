"""Which exceptions are the user's to fix: the CLI prints them as one line instead of a traceback."""

from __future__ import annotations


def user_error_types() -> tuple[type[BaseException], ...]:
    from featherweight_core.data import DataError
    from featherweight_core.distill import TrainingError
    from featherweight_core.encoders import EncoderError

    return (DataError, EncoderError, TrainingError, ValueError, FileNotFoundError)
