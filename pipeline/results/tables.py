"""A comparison as markdown: the tables ``compare.md`` holds."""

from __future__ import annotations

import pandas as pd


def markdown_tables(frame: pd.DataFrame, summary: pd.DataFrame, epochs: pd.DataFrame,
                    agreement: pd.DataFrame, curve: pd.DataFrame) -> str:
    """The comparison as markdown: a row per method and seed, the mean and spread over
    seeds, the judge's picks (where a selection ran), each method's pick at four points of
    its budget, and (with a table) how well each objective ranks the cells and the cells'
    mean table score after each epoch."""
    per_seed = [("variant", "variant", "{}"), ("start_space", "start", "{}"),
                ("method", "method", "{}"), ("seed", "seed", "{}"),
                ("best_value", "objective", "{:.2f}"), ("cell", "cell", "{}"),
                ("params_M", "params (M)", "{:.3f}"), ("skip_share", "skip", "{:.2f}"),
                ("pool_share", "pool", "{:.2f}"), ("none_share", "none", "{:.2f}"),
                ("best_cifar10_test", "CIFAR-10", "{:.2f}"),
                ("best_cifar100_test", "CIFAR-100", "{:.2f}"),
                ("best_imagenet16_test", "ImageNet16", "{:.2f}"),
                ("mean_cifar10_test", "CIFAR-10, all its cells", "{:.2f}"),
                ("max_cifar10_test", "CIFAR-10, best of its cells", "{:.2f}"),
                ("cut_off", "cut off by none", "{}"), ("trials", "trials", "{}"),
                ("epochs", "epochs", "{}"), ("tuning_epochs", "of them tuning", "{}")]
    text = "Best trial of each method and seed (by its own validation objective), scored " \
        "by the table:\n\n" + _markdown(frame, per_seed)
    spread = [("variant", "variant", "{}"), ("start_space", "start", "{}"),
              ("method", "method", "{}"), ("seeds", "seeds", "{}")] + [
        (f"{stat}_{column}", f"{label} {stat}", "{:.2f}" if column != "params_M" else "{:.3f}")
        for column, label in (("best_value", "objective"), ("best_cifar10_test", "CIFAR-10"),
                              ("best_cifar100_test", "CIFAR-100"),
                              ("best_imagenet16_test", "ImageNet16"),
                              ("max_cifar10_test", "CIFAR-10, best of its cells"),
                              ("params_M", "params (M)"), ("skip_share", "skip"),
                              ("none_share", "none"), ("cut_off", "cut off"))
        for stat in ("mean", "std")]
    text += "\nMean and standard deviation over seeds:\n\n" + _markdown(summary, spread)
    if "judge_cifar10_test" in frame:
        text += _judge_tables(frame, summary)
    if not curve.empty:
        text += _pick_tables(curve)
    if not agreement.empty:
        text += ("\nSpearman correlation of what a search can see with the table's CIFAR-10 "
                 "test accuracy, over every complete trial:\n\n" + _markdown(agreement, [
                     ("objective", "validation signal", "{}"),
                     ("spearman_cifar10", "Spearman rho", "{:.2f}"), ("trials", "trials", "{}")]))
    if not epochs.empty:
        text += _epoch_table(epochs)
    return text


def _epoch_table(epochs: pd.DataFrame) -> str:
    """The table score of the cell a search would return after each epoch."""
    curve = epochs.groupby(["method", "epoch"], sort=False)["cifar10_test"].mean().unstack()
    curve = curve.reset_index().rename(columns=lambda c: f"epoch {c}" if c != "method" else c)
    columns = [("method", "method", "{}")] + [(c, c, "{:.2f}") for c in curve.columns[1:]]
    return ("\nCIFAR-10 table score of the cell a search would return after each epoch "
            "(mean over complete trials and seeds):\n\n" + _markdown(curve, columns))


def _judge_tables(frame: pd.DataFrame, summary: pd.DataFrame) -> str:
    """The selection stage's pick (``compare --select``) of each method and seed, after all
    its searches and after its first ones, scored by the table, and its mean over seeds."""
    first = (f", first {int(frame['first_searches'].iloc[0])}"
             if "first_searches" in frame and frame["first_searches"].notna().all() else None)
    measures = [("judge_cifar10_test", "CIFAR-10", "{:.2f}"),
                ("judge_regret", "regret", "{:.2f}"),
                ("judge_from_centre", "from the centre", "{}")]
    budgets = [("", "")] + ([("first_", first)] if first else [])
    per_seed = [("variant", "variant", "{}"), ("method", "method", "{}"),
                ("seed", "seed", "{}"), ("judge_cell", "cell", "{}"),
                ("judge_params_M", "params (M)", "{:.3f}")] + [
        (prefix + key, label + suffix, fmt) for prefix, suffix in budgets
        for key, label, fmt in measures]
    spread = [("variant", "variant", "{}"), ("method", "method", "{}"),
              ("seeds", "seeds", "{}")] + [
        (f"{stat}_{prefix}{key}", f"{label}{suffix} {stat}", fmt)
        for prefix, suffix in budgets for key, label, fmt in measures[:2]
        for stat in ("mean", "std")]
    return ("\nThe judge's pick of each method and seed (the selection stage, compare "
            f"--select), after all its searches{' and after its' + first[1:] if first else ''}"
            ", scored by the table; regret: the best candidate's score minus the pick's:\n\n"
            + _markdown(frame, per_seed) + "\nThe judge's pick, mean and standard deviation "
            "over seeds:\n\n" + _markdown(summary, spread))


def _pick_tables(curve: pd.DataFrame) -> str:
    """The pick's objective (and table score) after each quarter of the budget, rounded
    to whole searches."""
    marks = sorted(curve["epochs"].unique())
    every, budget = marks[0], marks[-1]
    step = max(1, round(budget / 4 / every)) * every
    shown = sorted({m for m in marks if m % step == 0} | {budget})
    text = ""
    for column, what in (("best_value", "Objective"),
                         ("best_cifar10_test", "CIFAR-10 table score")):
        if column not in curve:
            continue
        wide = curve[curve["epochs"].isin(shown)].pivot(index="method", columns="epochs",
                                                        values=column)
        wide = wide.reindex(curve["method"].unique()).reset_index()
        wide.columns = ["method", *(f"after {m} epochs" for m in wide.columns[1:])]
        text += (f"\n{what} of each method's pick (its best trial so far) as its budget is "
                 "spent (mean over seeds):\n\n" + _markdown(
                     wide, [("method", "method", "{}"),
                            *((c, c, "{:.2f}") for c in wide.columns[1:])]))
    return text


def _markdown(frame: pd.DataFrame, columns: list[tuple[str, str, str]]) -> str:
    """The columns of ``frame`` that ``columns`` name (key, label, format), as a markdown
    table; missing values are blank and pipes (NB201 cells are full of them) escaped."""
    present = [(key, label, fmt) for key, label, fmt in columns if key in frame]
    shown = pd.DataFrame({label: ["" if pd.isna(value) else fmt.format(value).replace("|", "\\|")
                                  for value in frame[key]] for key, label, fmt in present})
    table: str = shown.to_markdown(index=False, disable_numparse=True)
    return table + "\n"
