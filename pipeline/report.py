"""Study results as data: trials -> pandas DataFrame (no torch here)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from optuna.trial import FrozenTrial

TRIAL_COLUMNS = ("number", "state", "value", "epochs_run", "cell", "supernet_acc",
                 "discrete_acc", "eval_params_M", "skip_share", "pool_share", "none_share",
                 "seed", "original_number", "wall_time_s", "fail_reason")


def trials_frame(trials: Sequence[FrozenTrial]) -> pd.DataFrame:
    """One row per trial with its state, value and recorded attributes."""
    rows = []
    for trial in trials:
        attrs = trial.user_attrs
        row = {name: attrs.get(name) for name in TRIAL_COLUMNS}
        row.update(number=trial.number, state=trial.state.name, value=trial.value)
        if row["epochs_run"] is None and trial.intermediate_values:
            row["epochs_run"] = max(trial.intermediate_values)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))
    numeric = ["value", "supernet_acc", "discrete_acc", "eval_params_M", "skip_share",
               "pool_share", "none_share", "wall_time_s"]
    frame[numeric] = frame[numeric].astype("float64")
    for name in ("epochs_run", "seed", "original_number"):
        frame[name] = frame[name].astype("Int64")
    return frame
