"""Whether a ``teacher_compression`` grid fits each task's teacher, checked from configs before any teacher is built.

The grid's layer settings must fit the teacher's layer count (a BERT-Vision ``layers`` at most the layer count, a
Theseus ``replace_rate`` dividing it). A teacher that exists is checked against its directory
(:meth:`sweep.spec.SweepSpec.teacher_compression_trials`); this module knows the layer count of a teacher still to
be built as soon as the spec is read: the project's small teacher (``small`` or ``{model: small, ...}``) always has
:class:`featherweight_core.teacher.smallbert.SmallBertConfig`'s layers, and fine-tuning a local model directory keeps the
layers its ``config.json`` declares. Only a hub model still to download is left to the check after it is built.
Ray-free, so ``sweep validate`` runs it too.
"""

from __future__ import annotations

from pathlib import Path

from sweep.spec import SweepSpec, check_grid_against_teacher, teacher_layers


def planned_teacher_layers(spec: SweepSpec, task: str) -> tuple[int, str] | None:
    """``(layers, what)`` of ``task``'s teacher known from a config without building it, or None (a hub model)."""
    t = spec.tasks[task]["teacher"]
    model = t.get("model") if isinstance(t, dict) else t
    if not isinstance(model, str):
        return None
    if model == "small":
        # deferred: loads torch only when called (importing this module does not)
        from featherweight_core.teacher.smallbert import SmallBertConfig

        return SmallBertConfig().layers, "the built-in small teacher"
    path = Path(model).expanduser()
    if (path / "config.json").is_file():
        return teacher_layers(path), str(path)
    return None


def check_grid_against_teacher_configs(spec: SweepSpec, skip: set[str] | frozenset[str] = frozenset()) -> None:
    """:class:`sweep.spec.SpecError` naming the key and the value when the grid cannot fit a task's teacher as its
    config describes it (tasks in ``skip``, whose built teacher was checked already, are left out)."""
    tc = spec.teacher_compression
    if not tc:
        return
    for task in tc["tasks"]:
        planned = None if task in skip else planned_teacher_layers(spec, task)
        if planned is None:
            continue
        layers, what = planned
        check_grid_against_teacher(tc, layers, task, what)
