"""What ``deeprl bench`` and ``deeprl sweep`` report, written once: statistics over seeds,
markdown tables and figures.

The statistics follow Agarwal et al. (2021), "Deep RL at the Edge of the Statistical Precipice":
the interquartile mean (IQM) with a 95% percentile bootstrap confidence interval (scipy's
``trim_mean`` and ``bootstrap``; with one task per cell the stratified bootstrap is the plain
bootstrap over seeds), the seeds at or above a threshold, the env steps and wall time from
which a run's evaluations *stay* above it, and an IQM curve with its CI band.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

# --------------------------------------------------------------------------------------------
# statistics


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% (scipy's 25%-trimmed mean)."""
    from scipy.stats import trim_mean
    return float(trim_mean(np.asarray(values, dtype=float), 0.25))


def iqm_ci(values: np.ndarray, confidence: float = 0.95, resamples: int = 2000, seed: int = 0) -> list[float]:
    """A percentile bootstrap confidence interval of the IQM over seeds."""
    from scipy.stats import bootstrap
    values = np.asarray(values, dtype=float)
    if len(values) < 2 or np.all(values == values[0]):
        return [float(values.mean()), float(values.mean())] if len(values) else [math.nan, math.nan]
    res = bootstrap((values,), lambda x, axis: _trim(x, axis), confidence_level=confidence, n_resamples=resamples,
                    method="percentile", random_state=np.random.default_rng(seed), vectorized=True)
    return [float(res.confidence_interval.low), float(res.confidence_interval.high)]


def _trim(x: np.ndarray, axis: int) -> np.ndarray:
    from scipy.stats import trim_mean
    return trim_mean(x, 0.25, axis=axis)


def iqm_curve(curves: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """IQM over seeds at the evaluation steps every seed has, with a 95% bootstrap band.  Seeds
    evaluated at steps of their own (collection by whole episodes ends an interval at an episode's
    end) share few steps: then each is interpolated linearly onto the steps of the seed with the
    fewest evaluations, within the span all of them cover."""
    out: dict[str, list[float]] = {"step": [], "iqm": [], "lo": [], "hi": []}
    if not curves:
        return out
    steps = sorted(set.intersection(*(set(c["step"]) for c in curves)))
    if len(steps) < min(len(c["step"]) for c in curves) / 2:
        first, last = max(c["step"][0] for c in curves), min(c["step"][-1] for c in curves)
        steps = [s for s in min(curves, key=lambda c: len(c["step"]))["step"] if first <= s <= last]
        series = np.array([np.interp(steps, c["step"], c["eval"]) for c in curves])
    else:
        series = np.array([[c["eval"][c["step"].index(s)] for s in steps] for c in curves])
    for step, values in zip(steps, series.T):
        lo, hi = iqm_ci(values, resamples=500)
        out["step"].append(step)
        out["iqm"].append(iqm(values))
        out["lo"].append(lo)
        out["hi"].append(hi)
    return out


def solved(finals: Iterable[float], threshold: float | None, n_seeds: int) -> tuple[int | None, float | None]:
    """How many final returns are at or above ``threshold``, and that count as a fraction of
    ``n_seeds``, every seed run (a seed with no final return, one that errored, is not solved);
    ``(None, None)`` without a threshold."""
    if threshold is None:
        return None, None
    n = int(np.sum(np.asarray(list(finals), dtype=float) >= threshold))
    return n, n / n_seeds if n_seeds else None


def stays_above(curve: dict[str, list[float]], final: float, threshold: float) -> dict[str, float | None]:
    """The first evaluation from which every later evaluation, and the final model's, is at or
    above ``threshold``: its env step and wall time (None if the run does not end there)."""
    if final < threshold:
        return {"step": None, "wall_time": None}
    steps, evals, times = curve["step"], curve["eval"], curve["wall_time"]
    first = len(evals)
    for i in range(len(evals) - 1, -1, -1):
        if evals[i] < threshold:
            break
        first = i
    if first == len(evals):
        return {"step": None, "wall_time": None}
    return {"step": steps[first], "wall_time": times[first]}


# --------------------------------------------------------------------------------------------
# markdown


def fmt(x: float | None, digits: int = 1) -> str:
    """A number with ``digits`` decimals; ``-`` for none."""
    return "-" if x is None else f"{x:.{digits}f}"


def table(header: list[str], rows: Iterable[list[Any]]) -> list[str]:
    """A markdown table's lines: the header, its rule, then one line per row."""
    return [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows)]


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


# --------------------------------------------------------------------------------------------
# figures


@contextmanager
def figure(path: Path, panels: int, width: float, height: float) -> Iterator[tuple[Any, list[Any]]]:
    """A figure of ``panels`` axes side by side, each ``width`` x ``height`` inches: yields the
    figure and its axes, and writes it to ``path`` when the block ends."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=(width * panels, height), dpi=110, squeeze=False)
    try:
        yield fig, list(axes[0])
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)


def plot_curves(cells: list[dict[str, Any]], path: Path) -> Path:
    """One panel per env: each cell's IQM evaluation curve with its 95% CI band, and the env's
    threshold as a dashed line."""
    envs = list(dict.fromkeys(c["env"] for c in cells))
    with figure(path, len(envs), 5, 3.6) as (_, axes):
        for ax, env in zip(axes, envs):
            for c in (c for c in cells if c["env"] == env):
                curve = c["curve"]
                if curve["step"]:
                    line, = ax.plot(curve["step"], curve["iqm"], label=c["algo"])
                    ax.fill_between(curve["step"], curve["lo"], curve["hi"], color=line.get_color(), alpha=0.2)
            threshold = next((c["threshold"] for c in cells if c["env"] == env), None)
            if threshold is not None:
                ax.axhline(threshold, color="grey", linestyle="--", linewidth=1)
            ax.set_title(env)
            ax.set_xlabel("environment steps")
            ax.set_ylabel("IQM of evaluation return (95% CI)")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
    return path


def plot_ladder(cells: list[dict[str, Any]], path: Path, title: str) -> Path:
    """A ladder's rungs on one env (``cells`` in rung order, each with ``rung`` and ``curve``): every
    rung's IQM curve with its 95% CI band, coloured along a sequential map so that later rungs are
    darker; rungs that were not run are named in the legend."""
    import matplotlib

    colours = matplotlib.colormaps["viridis_r"](np.linspace(0.15, 1.0, max(len(cells), 1)))
    with figure(path, 1, 7.5, 4.6) as (_, (ax,)):
        for colour, c in zip(colours, cells):
            curve = c.get("curve") or {"step": []}
            if curve["step"]:
                ax.plot(curve["step"], curve["iqm"], color=colour, label=c["rung"], linewidth=1.6)
                ax.fill_between(curve["step"], curve["lo"], curve["hi"], color=colour, alpha=0.15)
            else:
                ax.plot([], [], color=colour, linestyle=":", label=f"{c['rung']} (not run)")
        threshold = next((c.get("threshold") for c in cells if c.get("threshold") is not None), None)
        if threshold is not None:
            ax.axhline(threshold, color="grey", linestyle="--", linewidth=1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("IQM of evaluation return (95% CI)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return path


def plot_objective(title: str, params: list[Any], candidates: list[dict[str, Any]], path: Path) -> Path:
    """A sweep's objective against each searched setting (``params``: name, kind, choices), one
    panel each; candidates stopped early (``status`` "stopped") drawn hollow."""
    scored = [c for c in candidates if c.get("objective") is not None]
    y = np.asarray([c["objective"] for c in scored])
    finished = np.array([c.get("status") != "stopped" for c in scored], dtype=bool)
    with figure(path, len(params), 4, 3.4) as (fig, axes):
        for ax, p in zip(axes, params):
            if p.kind == "choice":
                labels = [str(v) for v in p.choices]
                x = np.asarray([labels.index(str(c["params"][p.name])) for c in scored])
                ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=8)
            else:
                x = np.asarray([c["params"][p.name] for c in scored])
                if p.kind in ("loguniform", "logint"):
                    ax.set_xscale("log")
            ax.scatter(x[finished], y[finished], s=22, alpha=0.8, label="whole run")
            if not finished.all():  # ASHA: judged at the rung where it stopped
                ax.scatter(x[~finished], y[~finished], s=22, facecolors="none", edgecolors="grey",
                           label="stopped early")
                ax.legend(fontsize=7)
            ax.set_xlabel(p.name)
            ax.set_ylabel("objective (mean final return)")
            ax.grid(alpha=0.3)
        fig.suptitle(title, fontsize=10)
    return path
