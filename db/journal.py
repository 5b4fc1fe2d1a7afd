"""The sweep journal: every trial record is appended to a JSON-lines file (one fsync'd line per trial) before the
database sees it, so a result is durable even while another process holds the DuckDB file.

The driver's writer applies journal records to the database in short transactions; a record that cannot be applied
because the file is locked stays pending and is applied later (by the next write, at the end of a stage, by a
resumed sweep, or by ``featherweight db sync``). Applying is idempotent: ``record_trial`` of a finished trial
changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from db.rows import TrialRecord
from db.values import to_json

JOURNAL_NAME = "journal.jsonl"


class Journal:
    """Append-only file of :class:`TrialRecord` as JSON lines."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, rec: TrialRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = to_json(dataclasses.asdict(rec)) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def records(self) -> list[TrialRecord]:
        """Every complete record, the last one per (sweep, trial_id) winning; a torn last line (a killed writer) is
        ignored."""
        if not self.path.is_file():
            return []
        out: dict[tuple[str, str], TrialRecord] = {}
        names = {f.name for f in dataclasses.fields(TrialRecord)}
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # the writer died mid-line: that trial was never acknowledged
                d = json.loads(line)
                rec = TrialRecord(**{k: v for k, v in d.items() if k in names})
                out[(rec.sweep, rec.trial_id)] = rec
        return list(out.values())


def apply_journal(store, journal: Journal, sweep: str | None = None) -> int:
    """Write the journal's records the database does not hold as finished yet; returns how many were written."""
    recs = [r for r in journal.records() if sweep is None or r.sweep == sweep]
    done: dict[str, set[str]] = {}
    written = 0
    for rec in recs:
        if rec.sweep not in done:
            done[rec.sweep] = store.finished_trial_ids(rec.sweep)
        if rec.trial_id in done[rec.sweep]:
            continue
        written += int(store.record_trial(rec))
    return written
