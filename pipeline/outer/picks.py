"""A study's picks: its best complete trial, and the Pareto front of accuracy and cell
parameters."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from pipeline.outer.record import TrialRecord


def accuracy_of(trial: FrozenTrial) -> float | None:
    """A trial's accuracy objective: its value, or its first value in a study that also
    minimises parameters; None if it has no value (pruned, failed, running)."""
    return trial.values[0] if trial.values else None


def best_trial(trials: Sequence[FrozenTrial]) -> FrozenTrial | None:
    """The complete trial with the highest accuracy objective, the smaller cell among
    equals (so it is on the Pareto front, too)."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values]
    if not complete:
        return None
    return max(complete, key=lambda t: (t.values[0], -(TrialRecord.of(t).eval_params_M or 0.0)))


def baseline_trial(trials: Sequence[FrozenTrial]) -> FrozenTrial | None:
    """Plain DARTS' own trial in a study: the first complete trial at the centre of the
    start vector (plain DARTS' start), if there is one."""
    return next((t for t in trials if t.state == TrialState.COMPLETE and t.params
                 and not any(t.params.values())), None)


def front_trials(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """Complete trials no other beats on both accuracy objective and cell parameters,
    highest accuracy first."""
    params = {t.number: TrialRecord.of(t).eval_params_M for t in trials}
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.values
                and params[t.number] is not None]
    mask = pareto_mask([t.values[0] for t in complete],
                       [float(params[t.number] or 0.0) for t in complete])
    front = [t for t, on_front in zip(complete, mask, strict=True) if on_front]
    return sorted(front, key=lambda t: -t.values[0])


def pareto_mask(accuracy: Sequence[float], params: Sequence[float]) -> np.ndarray:
    """Which points no other point beats on both accuracy (higher) and params (lower)."""
    acc, size = np.asarray(accuracy, dtype=float), np.asarray(params, dtype=float)
    mask = np.ones(len(acc), dtype=bool)
    for i in range(len(acc)):
        no_worse = (acc >= acc[i]) & (size <= size[i])
        better = (acc > acc[i]) | (size < size[i])
        mask[i] = not np.any(no_worse & better)
    return mask
