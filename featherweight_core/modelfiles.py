"""Cheap checks that a model directory's files are what their names claim (headers only, no weights loaded).

Used where a teacher directory is opened (:mod:`featherweight_core.softtargets`, :mod:`featherweight_core.teacher`),
so a missing or corrupt file is one error naming it instead of a traceback from deep inside a loader.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path


def check_model_files(d: Path, error: type[Exception]) -> None:
    """A model directory's files are what they claim to be (cheap: headers only): ``config.json`` (and
    ``featherweight_teacher.json``, if any) parse as JSON objects, ``*.safetensors`` have a readable header, torch
    ``*.bin`` / ``*.pt`` files are zip archives or pickles. Raises ``error`` naming the first bad file."""
    for name in ("config.json", "featherweight_teacher.json"):
        p = d / name
        if not p.is_file():
            continue
        try:
            obj = json.loads(p.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise error(
                f"{p}: not valid JSON ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
            ) from None
        if not isinstance(obj, dict):
            raise error(f"{p}: expected a JSON object, got {type(obj).__name__}")
    for p in sorted(d.iterdir()):
        if not p.is_file():
            continue
        if p.suffix == ".safetensors":
            from safetensors import SafetensorError, safe_open

            try:
                with safe_open(str(p), framework="pt") as f:
                    f.keys()
            except (SafetensorError, OSError) as e:
                raise error(f"{p}: not a readable safetensors weights file ({str(e).splitlines()[0]})") from None
        elif p.suffix in (".bin", ".pt", ".pth"):
            with p.open("rb") as f:
                head = f.read(2)
            if head.startswith(b"\x80"):  # a legacy torch pickle
                continue
            try:
                with zipfile.ZipFile(p) as z:
                    z.namelist()
            except (zipfile.BadZipFile, OSError, EOFError) as e:
                raise error(
                    f"{p}: not a readable PyTorch weights file (not a complete torch zip archive: {e})"
                ) from None
