"""Checks that a model directory's files are what their names claim, and the one way a model is loaded from one.

:func:`check_model_files` is cheap (headers only, no tensor data read): used where a teacher directory is opened
(:mod:`featherweight_core.teacher.softtargets`, :mod:`featherweight_core.teacher`), so a missing or corrupt file is one error
naming it instead of a traceback from deep inside a loader. PyTorch weight files (``*.bin``, ``*.pt``) are pickles:
they are read only through torch's ``weights_only`` unpickler (tensors and plain values, never code), and a pickle
that names anything else is refused before the model is built.

:func:`load_pretrained` is ``from_pretrained`` for every Hugging Face model the code loads: load errors become one
error naming the directory, and a checkpoint that leaves any tensor of the model newly initialised (a ``config.json``
naming another architecture than the weights, weights missing tensors) is refused, naming the missing tensors.
"""

from __future__ import annotations

import json
import pickle
import re
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def check_model_files(d: Path, error: type[Exception]) -> None:
    """A model directory's files are what they claim to be (cheap: headers only): ``config.json`` (and
    ``featherweight_teacher.json``, if any) parse as JSON objects, ``*.safetensors`` have a readable header, torch
    ``*.bin`` / ``*.pt`` files are zip archives or pickles that hold only tensors and plain values
    (:func:`check_torch_pickle`). Raises ``error`` naming the first bad file."""
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
            if not head.startswith(b"\x80"):  # not a legacy torch pickle: a torch zip archive
                try:
                    with zipfile.ZipFile(p) as z:
                        z.namelist()
                except (zipfile.BadZipFile, OSError, EOFError) as e:
                    raise error(
                        f"{p}: not a readable PyTorch weights file (not a complete torch zip archive: {e})"
                    ) from None
            check_torch_pickle(p, error)


# What torch.load raises on a file it cannot read (see featherweight_core.pipeline.checkpoint.LOAD_ERRORS).
TORCH_LOAD_ERRORS = (EOFError, RuntimeError, OSError, IndexError, KeyError, TypeError, ValueError, AttributeError)
_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")


def check_torch_pickle(p: Path, error: type[Exception]) -> None:
    """Run ``p``'s pickle through torch's ``weights_only`` unpickler with every tensor on the meta device: no tensor
    data is read and nothing of the pickle runs. A pickle that names anything but tensors and plain values (a
    ``__reduce__`` calling ``os.system``, say) is refused as ``error`` naming the file and what it names."""
    import torch
    from torch.torch_version import TorchVersion

    try:
        # ScriptObject: registered torchbind classes only (packed int8 weights), as featherweight_core.pipeline.checkpoint
        with torch.serialization.safe_globals([torch.ScriptObject, TorchVersion]), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning)
            try:
                torch.load(p, map_location="meta", weights_only=True)
            except NotImplementedError:  # quantized tensors have no meta form: read them (int8 files are small)
                torch.load(p, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(p))
    except pickle.UnpicklingError as e:
        raise error(unpickling_message(p, e)) from None
    except TORCH_LOAD_ERRORS as e:
        raise error(f"{p}: not a readable PyTorch weights file ({type(e).__name__}: {first_line(e)})") from None


def unpickling_message(p: Path | str, e: BaseException) -> str:
    """One line for torch's ``weights_only`` refusal of ``p``."""
    found = _GLOBAL_RE.search(str(e))
    if found:
        return (
            f"{p}: refused: its pickle names {found.group(1)}, not a tensor or plain value (loading it could run"
            " code; nothing of it was run); a weights file must hold tensors only (safetensors is safest)"
        )
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation", "In PyTorch")
    lines = [x.strip() for x in str(e).splitlines() if x.strip() and not x.strip().startswith(boilerplate)]
    detail = lines[0] if lines else "not a pickle of tensors"
    return (
        f"{p}: refused: torch's weights-only loader does not read its pickle ({detail}); nothing of it was run"
        " (a weights file must hold tensors only; safetensors is safest)"
    )


def first_line(e: BaseException) -> str:
    """The first non-empty line of an exception's message, up to its first sentence's end."""
    lines = [line for line in str(e).strip().splitlines() if line.strip()]
    return lines[0].split(". ")[0] if lines else ""


def _weight_file(source: str) -> str:
    """The pickle weight file of a model directory (for naming it in an error), else the directory."""
    d = Path(source)
    if d.is_dir():
        found = sorted(p for p in d.iterdir() if p.suffix in (".bin", ".pt", ".pth") and p.is_file())
        if len(found) == 1:
            return str(found[0])
    return source


def load_pretrained(
    loader,
    source: str | Path,
    error: type[Exception],
    what: str,
    new_ok: Callable[[Any, str], bool] | None = None,
    **kwargs,
):
    """``loader.from_pretrained(source, **kwargs)`` (a transformers model or Auto class) that loads completely.

    Load failures (unreadable files, a pickle torch's ``weights_only`` loader refuses, a config transformers does not
    know, tensors of the wrong shape) raise ``error`` naming ``source``. So does a checkpoint that leaves tensors of
    the model newly initialised (``missing_keys``, and ``mismatched_keys`` under ``ignore_mismatched_sizes``), except
    those ``new_ok(model, name)`` allows: a fine-tuning start may lack its task head, a teacher may lack nothing.
    Unexpected tensors (in the checkpoint, not in the model: another head, layers cut off) are not an error.
    """
    from safetensors import SafetensorError

    source = str(source)
    try:
        model, info = loader.from_pretrained(source, output_loading_info=True, **kwargs)
    except pickle.UnpicklingError as e:
        raise error(unpickling_message(_weight_file(source), e)) from None
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as e:  # RuntimeError: torch.load, shapes
        raise error(f"{source}: cannot load {what} ({type(e).__name__}: {first_line(e)})") from None
    new = sorted(set(info.get("missing_keys") or ()) | {m[0] for m in info.get("mismatched_keys") or ()})
    new = [k for k in new if new_ok is None or not new_ok(model, k)]
    if new:
        shown = ", ".join(new[:5]) + (", ..." if len(new) > 5 else "")
        kind = getattr(model.config, "model_type", None) or type(model).__name__
        why = (
            f"the checkpoint lacks the head {what} needs (a bare backbone or another task's model: fine-tune it first)"
            if all(is_task_head(model, k) for k in new)
            else "the config does not match the weights (another architecture, or tensors missing)"
        )
        raise error(
            f"{source}: {len(new)} tensor(s) of the {kind} model its config.json describes are not in its weights"
            f" and would be newly initialised ({shown}); {why}, so the model would compute noise"
        )
    return model


def load_state_strictly(model, state: Any, path: Path | str, error: type[Exception], what: str) -> None:
    """``model.load_state_dict(state)`` where ``state`` must hold exactly the model's tensors, with their shapes;
    otherwise ``error`` naming ``path`` and the first missing or unexpected tensors."""
    if not isinstance(state, dict):
        raise error(f"{path}: not {what} (holds a {type(state).__name__}, not a state dict)")
    expected = set(model.state_dict())
    for kind, keys in (("missing", expected - set(state)), ("unexpected", set(state) - expected)):
        if keys:
            shown = ", ".join(sorted(map(str, keys))[:5]) + (", ..." if len(keys) > 5 else "")
            raise error(f"{path}: not {what}: {len(keys)} {kind} tensor(s) ({shown})")
    try:
        model.load_state_dict(state)
    except (RuntimeError, ValueError, TypeError, KeyError, AttributeError) as e:  # shapes, non-tensor values
        lines = [x.strip() for x in str(e).splitlines() if x.strip()]
        detail = lines[1] if len(lines) > 1 else (lines[0] if lines else type(e).__name__)
        raise error(f"{path}: not {what} ({detail[:300]})") from None


def is_task_head(model, name: str) -> bool:
    """``name`` is a tensor a fine-tuning start may lack: outside the base model (the task head: ``classifier.*``,
    ``score.*``, ...) or the base model's pooler (masked-LM checkpoints such as BERT's have none)."""
    prefix = getattr(model, "base_model_prefix", "") or ""
    if prefix and not name.startswith(prefix + "."):
        return True
    return name.startswith("pooler.") or ".pooler." in name
