"""The README's "Your own dataset" commands, run as written on a small 3-class CSV."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

WORDS = {
    "negative": ["awful", "hate", "terrible", "sad", "worst"],
    "neutral": ["report", "today", "meeting", "schedule", "update"],
    "positive": ["love", "great", "happy", "wonderful", "best"],
}
FILLER = ["the", "a", "this", "my", "our", "is", "was", "so", "very", "day", "team", "phone", "game"]


def write_tweets(path: Path, n: int = 420, seed: int = 0) -> None:
    """A learnable 3-class sentiment file with an extra column, classes of unequal size."""
    rng = np.random.default_rng(seed)
    lines = ["sentiment,confidence,text"]
    labels = rng.choice(list(WORDS), size=n, p=[0.4, 0.4, 0.2])
    for label in labels:
        words = list(rng.choice(FILLER, size=5)) + [rng.choice(WORDS[label]) for _ in range(2)]
        rng.shuffle(words)
        lines.append(f"{label},{rng.uniform(0.5, 1):.2f},{' '.join(words)}")
    path.write_text("\n".join(lines) + "\n")


def readme_block(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


def test_your_own_dataset_commands_work_as_written(tmp_path):
    write_tweets(tmp_path / "tweets.csv")
    script = f'featherweight() {{ "{sys.executable}" -m sweep.cli "$@"; }}\nset -e\n' + readme_block("Your own dataset")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("FEATHERWEIGHT_DB", None)
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    assert r.returncode == 0, r.stderr[-4000:]
    # dev and test macro-F1 side by side, per-class figures, the report with its chart
    assert "dev_macro_f1" in r.stdout and "test_macro_f1" in r.stdout and "precision" in r.stdout
    report = tmp_path / "runs" / "reports" / "tweets"
    assert any(report.glob("*.html")) and any(report.glob("*.png"))
    html = next(report.glob("*.html")).read_text()
    assert "macro" in html.lower()
    # the thesis' SST-2/QQP/MNLI reference models do not belong to this task's tables or chart
    assert not any(name in html for name in ("RoBERTa", "TinyBERT", "GLUE BiLSTM"))
    # compressed students are scored on the test split too
    compression = (report / "report.md").read_text().split("### Compression", 1)[1].split("###", 1)[0]
    children = [line.split("|") for line in compression.splitlines() if line.startswith("|   ")]
    assert children and all(cells[4].strip() != "-" for cells in children)  # the test macro-F1 column
