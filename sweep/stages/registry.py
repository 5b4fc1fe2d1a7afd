"""The sweep's stages, in the order the driver runs them: first the steps that build the assets
(``sweep.stages.study_stages``), then the trial stages (``sweep.stages.base.Stage``). A new trial stage is its
trial and trainable (a module under ``trainables/``), its stage (a module under ``sweep/stages/``) and one line here.
"""

from __future__ import annotations

from typing import Any

from sweep.stages.base import Stage
from sweep.stages.compress import CompressStage
from sweep.stages.distill import DistillStage
from sweep.stages.study_stages import AssetStep, SpecAssets, StudyStages
from sweep.stages.teacher_compression import TeacherCompressionStage

ASSET_STEPS: tuple[AssetStep, ...] = (SpecAssets(), StudyStages())
STAGES: tuple[Stage, ...] = (DistillStage(), CompressStage(), TeacherCompressionStage())


def trial_from_dict(d: dict[str, Any]):
    """The trial a stored config describes (the ``config`` column of the trials table): the trial class of the stage
    its ``stage`` key names (a distillation trial's config has none). ``resolved``, what a finished row adds to its
    config, is not part of the trial."""
    trial = {s.name: s.trial for s in STAGES}.get(d.get("stage"), DistillStage.trial)
    return trial.from_dict({k: v for k, v in d.items() if k != "resolved"})
