import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets, located through FEATHERWEIGHT_SHARED_DATA (set by .ci/run); skips when unset."""
    value = os.environ.get("FEATHERWEIGHT_SHARED_DATA")
    if not value:
        pytest.skip("FEATHERWEIGHT_SHARED_DATA is not set (the directory of the real datasets; .ci/run sets it)")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"FEATHERWEIGHT_SHARED_DATA={value} is not a directory")
    return path


@pytest.fixture()
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"
