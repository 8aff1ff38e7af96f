"""How a study shows it is alive: progress bars on a terminal; elsewhere (a log file, a
batch job) a log line per finished epoch, trial and budget step, at the default level."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from optuna.trial import TrialState
from tqdm.auto import tqdm

from pipeline.outer.record import TrialRecord
from pipeline.outer.trial_steps import TrialRun
from pipeline.search import EpochRecord

logger = logging.getLogger("pipeline.progress")


def duration(seconds: float) -> str:
    """A duration as a person reads it: 45 s, 12 min, 3 h 05 min."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


class TrialProgress:
    """The progress of trials run side by side: a bar of epochs on a terminal, else a log
    line per member's epoch and one when a trial ends."""

    def __init__(self, runs: Sequence[TrialRun], *, bars: bool) -> None:
        first = runs[0].search
        names = ", ".join(str(run.trial.number) for run in runs)
        self.bars = bars
        self.bar = tqdm(total=first.total_epochs, initial=first.epoch, unit="epoch", leave=False,
                        desc=f"trial{'s' if len(runs) > 1 else ''} {names}", disable=not bars)

    def epoch(self, run: TrialRun, record: EpochRecord) -> None:
        search = run.search
        left = (search.total_epochs - search.epoch) * record.seconds
        if self.bars:
            self.bar.set_postfix(valid=f"{record.valid_acc:.1f}%")
        else:
            logger.info("trial %d epoch %d/%d: supernet %.2f %%, %s, trial ETA %s",
                        run.trial.number, record.epoch, search.total_epochs, record.valid_acc,
                        duration(record.seconds), duration(left))

    def step(self) -> None:
        self.bar.update(1)

    def ended(self, run: TrialRun, state: TrialState, value: float | None = None) -> None:
        """A trial told its outcome: complete with ``value``, pruned or failed."""
        if self.bars:
            return
        record, spent = TrialRecord.of(run.trial), sum(r.seconds for r in run.search.history)
        outcome = (f"value {value:.2f} %" if value is not None and state == TrialState.COMPLETE
                   else record.fail_reason or "" if state == TrialState.FAIL
                   else f"after epoch {run.search.epoch}")
        logger.info("trial %d %s: %s, cell %s, %s", run.trial.number, state.name.lower(),
                    outcome, record.cell or "-", duration(spent))

    def close(self) -> None:
        self.bar.close()


class StudyProgress:
    """A study's spending: a bar of its budget on a terminal, else a log line whenever it
    grows, with the time so far and an estimate of the time left."""

    def __init__(self, name: str, *, total: int, spent: int, unit: str, bars: bool) -> None:
        self.name, self.total, self.unit, self.bars = name, total, unit, bars
        self.start_spent, self.started = spent, time.perf_counter()
        self.bar = tqdm(total=total, initial=spent, desc=name, unit=unit, disable=not bars)

    def update(self, spent: int, best: float | None) -> None:
        grown = spent - self.bar.n
        self.bar.update(grown)
        if best is not None:
            self.bar.set_postfix(best=f"{best:.2f}%")
        if self.bars or grown <= 0:
            return
        elapsed = time.perf_counter() - self.started
        rate = elapsed / max(spent - self.start_spent, 1)
        logger.info("study %s: %d of %d %ss spent, %s here, ETA %s%s", self.name, spent,
                    self.total, self.unit, duration(elapsed),
                    duration(rate * (self.total - spent)),
                    "" if best is None else f", best {best:.2f} %")

    def close(self) -> None:
        self.bar.close()
