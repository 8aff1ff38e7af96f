from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from pipeline.report import TRIAL_COLUMNS, trials_frame


def _trial(number: int, state: TrialState, **attrs: object) -> optuna.trial.FrozenTrial:
    trial = create_trial(
        state=state, value=attrs.pop("value", None), params={"alpha:1<-0:none": 0.1},
        distributions={"alpha:1<-0:none": FloatDistribution(-1, 1)}, user_attrs=attrs,
        intermediate_values={1: 50.0, 2: 60.0})
    trial.number = number
    return trial


def test_trials_frame_columns_and_dtypes() -> None:
    trials = [
        _trial(0, TrialState.COMPLETE, value=91.5, cell="|none~0|+|none~0|none~1|+|"
               "none~0|none~1|none~2|", supernet_acc=91.5, discrete_acc=40.0, epochs_run=2,
               eval_params_M=0.07, skip_share=0.0, pool_share=0.0, none_share=1.0, seed=7,
               original_number=0, wall_time_s=3.5),
        _trial(1, TrialState.PRUNED, value=60.0, epochs_run=2, seed=8, original_number=1),
        _trial(2, TrialState.FAIL, fail_reason="diverged: loss became non-finite", seed=9),
    ]
    frame = trials_frame(trials)
    assert list(frame.columns) == list(TRIAL_COLUMNS)
    assert frame["state"].tolist() == ["COMPLETE", "PRUNED", "FAIL"]
    assert str(frame["value"].dtype) == "float64" and str(frame["epochs_run"].dtype) == "Int64"
    assert frame.loc[2, "epochs_run"] == 2  # from the intermediate values of a failed trial
    assert frame["value"].isna().tolist() == [False, False, True]
    assert frame.loc[2, "fail_reason"].startswith("diverged")
