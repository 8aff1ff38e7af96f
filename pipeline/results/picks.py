"""The picks that ``compare --picks`` gathered, summarised per setting, method and budget:
what the results page shows (``globaldarts picks``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from pipeline.config import ConfigError
from pipeline.results import figures
from pipeline.results.compare import check_picks
from pipeline.results.report import page_html

# What a budget's row summarises: (its column in the summary, the picks' column at the
# whole budget; at the first searches' budget it is prefixed "first_").
MEASURES = (("judge_pick", "judge_cifar10"), ("objective_pick", "cifar10"),
            ("best_of_its_cells", "best_of_its_cells"), ("judge_regret", "judge_regret"),
            ("mean_cell", "mean_cell"), ("judge_params", "judge_params"),
            ("objective_params", "params"), ("cut_off", "cut_off"))
CENTRE = (("judge_from_centre", "judge_from_centre"),
          ("objective_from_centre", "pick_from_centre"))
METHOD_NAMES = {"darts": "plain", "random": "random", "cmaes": "CMA-ES"}


def read_picks(path: Path, settings: Sequence[str]) -> pd.DataFrame:
    """The rows of ``settings`` (in that order) in the picks table at ``path``.

    Raises:
        ConfigError: no such file, not a picks table, or a setting it does not hold.
    """
    picks = check_picks(path)
    if picks is None:
        raise ConfigError(f"{path}: no such picks table (compare --picks writes one)")
    missing = [s for s in settings if s not in set(picks["setting"])]
    if missing:
        raise ConfigError(f"{path} holds no setting {missing[0]!r} (it holds: "
                          + "; ".join(dict.fromkeys(picks["setting"])) + ")")
    order = {setting: i for i, setting in enumerate(settings)}
    chosen = picks[picks["setting"].isin(order)]
    return chosen.sort_values("setting", key=lambda s: s.map(order), kind="stable")


def summarise_picks(picks: pd.DataFrame) -> pd.DataFrame:
    """A row per setting, method and budget (the first searches, where recorded, then
    all): the mean and standard deviation over seeds of each pick's table score, of the
    best of the cells, of the judge's regret, the mean cell and the parameters, and how
    many picks came from the centre trial (plain DARTS' own start). Settings keep their
    order; methods come as compare runs them, plain starts first."""
    settings, methods = list(dict.fromkeys(picks["setting"])), list(METHOD_NAMES)

    def place(key: tuple[str, str]) -> tuple[int, int]:
        setting, method = key
        return settings.index(setting), (methods.index(method) if method in methods
                                         else len(methods))

    rows = []
    groups = picks.groupby(["setting", "method"], sort=False)
    for (setting, method), group in sorted(groups, key=lambda item: place(item[0])):
        searches = group.get("searches", pd.Series(dtype=float))
        budgets = [("all" if searches.isna().any() or searches.nunique() != 1
                    else f"all {int(searches.iloc[0])}", "")]
        if "first_searches" in group and group["first_searches"].notna().all():
            budgets.insert(0, (f"first {int(group['first_searches'].iloc[0])}", "first_"))
        for budget, prefix in budgets:
            row = {"setting": setting, "method": METHOD_NAMES.get(method, method),
                   "budget": budget, "seeds": len(group)}
            for name, column in MEASURES:
                values = group.get(prefix + column, pd.Series(dtype=float)).astype(float)
                row[f"{name}_mean"] = values.mean()
                row[f"{name}_std"] = values.std(ddof=1) if len(values) > 1 else 0.0
            for name, column in CENTRE:  # None where the picks do not say
                flags = group.get(prefix + column, pd.Series(dtype=object)).dropna()
                row[name] = (int(flags.astype(str).str.lower().eq("true").sum())
                             if len(flags) else None)
            rows.append(row)
    return pd.DataFrame(rows)


def summary_markdown(summary: pd.DataFrame) -> str:
    """The summary as a markdown table: mean ± std over seeds."""
    header = ("| setting | method | searches | seeds | judge's pick | trial objective's pick "
              "| best of its cells | judge's regret | mean cell | params, judge's pick (M) "
              "| cut off by none | picks from the centre, judge / objective |\n"
              + "|" + " --- |" * 12 + "\n")

    def spread(row: pd.Series, name: str, digits: int = 2) -> str:  # "-": not recorded
        mean, std = row[name + "_mean"], row[name + "_std"]
        return "-" if pd.isna(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"

    def count(value: object) -> str:
        return "-" if pd.isna(value) else str(int(value))  # type: ignore[call-overload]

    lines = [f"| {r['setting']} | {r['method']} | {r['budget']} | {r['seeds']} | "
             f"{spread(r, 'judge_pick')} | {spread(r, 'objective_pick')} | "
             f"{spread(r, 'best_of_its_cells')} | {spread(r, 'judge_regret')} | "
             f"{spread(r, 'mean_cell')} | {spread(r, 'judge_params', 3)} | "
             + ("-" if pd.isna(r["cut_off_mean"]) else f"{r['cut_off_mean']:.1f}")
             + f" | {count(r['judge_from_centre'])} / {count(r['objective_from_centre'])} |"
             for _, r in summary.iterrows()]
    return header + "\n".join(lines) + "\n"


def write_picks_summary(picks: pd.DataFrame, out_dir: Path, *, images: bool = False
                        ) -> pd.DataFrame:
    """Write the summary of ``picks`` into ``out_dir``: ``picks.md`` (the table),
    ``picks.csv`` and ``picks.html`` (the figure); with ``images``, the figure as a PNG."""
    summary = summarise_picks(picks)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out_dir / "picks.csv", index=False)
    (out_dir / "picks.md").write_text(summary_markdown(summary), encoding="utf-8")
    sections = [("The pick per method beside the best of its cells",
                 figures.picks_figure(summary))]
    settings = [("settings", "; ".join(dict.fromkeys(summary["setting"])))]
    (out_dir / "picks.html").write_text(page_html("picks", settings, sections),
                                        encoding="utf-8")
    if images:
        figures.write_images(sections, out_dir)
    return summary
