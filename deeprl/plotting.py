"""Learning curves from run directories' ``metrics.csv``, as a PNG."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from deeprl.checkpoint import atomic_write_with
from deeprl.errors import DeepRLError
from deeprl.run import read_metrics


def plot_runs(run_dirs: list[str | Path], out: str | Path, *, metric: str = "charts/episode_return",
              eval_metric: str = "eval/mean_return") -> Path:
    """One line per run: ``metric`` against env steps, with evaluations as markers."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    plotted = 0
    for run in run_dirs:
        run = Path(run)
        file = run / "metrics.csv" if run.is_dir() else run
        if not file.exists():
            raise DeepRLError(f"{str(run)!r} has no metrics.csv; pass run directories made by 'deeprl train'")
        cols = read_metrics(file)
        if metric not in cols:
            raise DeepRLError(f"{str(file)!r} has no column {metric!r}; columns: {', '.join(cols)}")
        label = run.name
        pts = [(s, v) for s, v in zip(cols["step"], cols[metric]) if not math.isnan(v)]
        if pts:
            line, = ax.plot(*zip(*pts), label=label)
            plotted += 1
            if eval_metric in cols:
                evs = [(s, v) for s, v in zip(cols["step"], cols[eval_metric]) if not math.isnan(v)]
                if evs:
                    ax.plot(*zip(*evs), "o", color=line.get_color(), markersize=4)
    if not plotted:
        raise DeepRLError("no data to plot yet: the runs have no logged episodes")
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"{metric} (line), {eval_metric} (dots)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = save_figure(fig, out)
    plt.close(fig)
    return out


def save_figure(fig: Any, out: str | Path) -> Path:
    """``fig`` written to :func:`figure_path` ``(out)`` atomically, as a regular file only."""
    path = figure_path(out)
    return atomic_write_with(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".").lower()))


def figure_path(out: str | Path) -> Path:
    """Where a figure goes: ``out`` with ``.png`` added when it has no extension; an extension
    matplotlib cannot write is refused before any work is done."""
    out = Path(out)
    if out.is_dir() or str(out).endswith(("/", "\\")):
        raise DeepRLError(f"figure path {str(out)!r} is a folder; give a file name such as plot.png")
    if out.exists() and not out.is_file():
        raise DeepRLError(f"figure path {str(out)!r} exists and is not a regular file; give a file name such as "
                          "plot.png")
    if not out.suffix:
        return out.with_name(out.name + ".png")
    if out.suffix.lower().lstrip(".") not in ("png", "pdf", "svg", "jpg", "jpeg", "eps", "ps", "tif", "tiff",
                                               "webp", "pgf", "raw", "rgba", "svgz"):
        raise DeepRLError(f"cannot write a figure as {out.suffix!r}; use .png, .pdf or .svg")
    return out
