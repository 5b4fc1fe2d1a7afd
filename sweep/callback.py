"""The driver-side Tune Callback: the only writer of the experiment database, and the progress printer.

Each finished or failed trial becomes one ``TrialRecord`` written in one short transaction (the store opens and
closes the DuckDB file per write, so ``featherweight query`` can read while a sweep runs). Writes are idempotent
per trial id; ``get_state``/``set_state`` carry the set of recorded ids through Tune's experiment checkpoints.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray import tune

from db.store import ExperimentStore, TrialRecord


def _fmt_bytes(n: float | None) -> str:
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "-"
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _fmt_secs(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def describe_trial(cfg: dict[str, Any]) -> str:
    """One short line naming a trial's configuration."""
    if cfg.get("stage") == "compress":
        t = cfg.get("targets") or {}
        sp = ",".join(f"{k[:3]}={v:.2f}" for k, v in t.items())
        return f"compress {cfg['parent_trial_id']} [{sp}]"
    vocab = f" v{cfg['vocab_size']}" if cfg.get("vocab_size") else ""
    return (
        f"{cfg['task']} {cfg['arch']} {cfg['embedding']}{cfg['emb_dim']}{vocab} a={cfg['alpha']:g}"
        f"{' +boot' if cfg['bootstrap'] else ''} seed={cfg['seed']}"
    )


class Progress:
    """Counts finished trials and prints one line each with an ETA from the mean wall time per trial so far."""

    def __init__(self, total: int, label: str, out: Callable[[str], None] | None = None) -> None:
        self.total, self.label, self.done, self.failed = total, label, 0, 0
        self.start = time.time()
        self.out = out or (lambda s: print(s, file=sys.stderr, flush=True))

    def step(self, line: str, failed: bool = False) -> None:
        self.done += 1
        self.failed += int(failed)
        elapsed = time.time() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        width = len(str(self.total))
        self.out(f"[{self.label} {self.done:{width}d}/{self.total} eta {_fmt_secs(eta)}] {line}")


class DatabaseCallback(tune.Callback):
    """Writes each trial's outcome to the store. ``to_record(trial_cfg, result, checkpoint_path)`` builds the row."""

    def __init__(
        self,
        db_path: str | Path,
        progress: Progress,
        to_record: Callable[[dict, dict, str | None], TrialRecord],
        size_key: str = "gzip_bytes",
        config_of: Callable[[Any], dict] | None = None,
    ) -> None:
        self.db_path = str(db_path)
        self.progress = progress
        self.to_record = to_record
        self.size_key = size_key
        self.config_of = config_of or (lambda trial: trial.config["trial"])
        self.recorded: set[str] = set()
        self.write_seconds: list[float] = []

    def get_state(self) -> dict | None:
        return {"recorded": sorted(self.recorded)}

    def set_state(self, state: dict) -> None:
        self.recorded = set(state.get("recorded", []))

    def _write(self, rec: TrialRecord) -> None:
        if rec.trial_id in self.recorded:
            return
        t0 = time.perf_counter()
        ExperimentStore(self.db_path).record_trial(rec)
        self.write_seconds.append(time.perf_counter() - t0)
        self.recorded.add(rec.trial_id)

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        cfg = self.config_of(trial)
        result = dict(trial.last_result or {})
        ckpt = trial.checkpoint.path if trial.checkpoint is not None else None
        rec = self.to_record(cfg, result, ckpt)
        self._write(rec)
        if rec.status == "finished":
            size = rec.sizes.get(self.size_key)
            size_s = f"{size:,}" if self.size_key == "params" else _fmt_bytes(size)
            line = (
                f"{describe_trial(cfg)} -> score {rec.metrics.get('score', float('nan')):.4f}  {self.size_key} {size_s}"
            )
            self.progress.step(f"{line}  ({rec.seconds or 0:.1f}s)")
        else:
            self.progress.step(f"{describe_trial(cfg)} -> FAILED: {rec.error}", failed=True)

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        # The trainable catches Python errors itself; this path is for crashed workers (killed, out of memory).
        cfg = self.config_of(trial)
        err = "trial worker failed"
        try:
            if trial.error_file and Path(trial.error_file).is_file():
                lines = [ln for ln in Path(trial.error_file).read_text().splitlines() if ln.strip()]
                err = lines[-1] if lines else err
        except OSError:
            pass
        rec = self.to_record(cfg, {"fw_status": "error", "fw_error": err}, None)
        self._write(rec)
        self.progress.step(f"{describe_trial(cfg)} -> FAILED: {err}", failed=True)


def decode_json_field(result: dict, key: str, default: Any) -> Any:
    value = result.get(key)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return default
    return default if value is None else value
