"""The outer loop: an Optuna study whose sampler proposes each trial's start point, whose
pruner stops hopeless searches, and whose storage lets workers share and resume it."""

from __future__ import annotations

from pipeline.outer.budget import Budget
from pipeline.outer.methods import MethodStudy, method_config, method_studies, methods, run_methods
from pipeline.outer.picks import best_trial, front_trials
from pipeline.outer.record import TrialRecord
from pipeline.outer.storage import StudyError, make_storage, redact
from pipeline.outer.study import StudySummary, load_study, run_study, trial_cells
from pipeline.outer.trial_steps import Publisher, TrialSteps

__all__ = ["Budget", "MethodStudy", "Publisher", "StudyError", "StudySummary", "TrialRecord",
           "TrialSteps", "best_trial", "front_trials", "load_study", "make_storage",
           "method_config", "method_studies", "methods", "redact", "run_methods", "run_study",
           "trial_cells"]
