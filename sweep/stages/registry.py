"""The sweep's stages, in the order the driver runs them: first the steps that build the assets
(``sweep.stages.study_stages``), then the trial stages (``sweep.stages.base.Stage``). A new trial stage is one
module under ``sweep/stages/`` and one line here."""

from __future__ import annotations

from sweep.stages.base import Stage
from sweep.stages.compress import CompressStage
from sweep.stages.distill import DistillStage
from sweep.stages.study_stages import AssetStep, SpecAssets, StudyStages
from sweep.stages.teacher_compression import TeacherCompressionStage

ASSET_STEPS: tuple[AssetStep, ...] = (SpecAssets(), StudyStages())
STAGES: tuple[Stage, ...] = (DistillStage(), CompressStage(), TeacherCompressionStage())
