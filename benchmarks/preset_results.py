"""Write `deeprl bench` results into the presets' `results:` lines and print one markdown table.

    .venv/bin/python benchmarks/preset_results.py bench/*/results.json            # print the table
    .venv/bin/python benchmarks/preset_results.py bench/*/results.json --write    # and update the presets

Each (algorithm, env) cell of a bench report replaces the `results:` line of that algorithm's
preset for that env in deeprl/presets/<algo>.yaml (a preset without one gains it after its
description), so the documented figures are the
instrument's: the command, seeds, IQM [95% CI], per-seed finals, machine and date.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def solved_count(cell: dict) -> tuple[int, int] | None:
    """(seeds solved, seeds run), None without a threshold.  bench counts an errored seed as run and
    not solved (``n_solved`` of ``n_seeds``); a report from before those fields has only the
    fraction, over its finals."""
    if cell["threshold"] is None or cell["solved_fraction"] is None:
        return None
    if cell.get("n_solved") is not None and cell.get("n_seeds"):
        return cell["n_solved"], cell["n_seeds"]
    return round(cell["solved_fraction"] * len(cell["final"])), len(cell["final"])


def seed_range(cell: dict) -> str:
    """The seeds the cell ran, errored ones included: ``1000-1004``."""
    seeds = sorted(cell["seeds"] + cell.get("errored_seeds", []))
    return f"{seeds[0]}-{seeds[-1]}" if seeds else "-"


def iqm_text(cell: dict) -> str:
    ci = cell["iqm_ci"] or [None, None]  # none when every seed errored
    return f"{fmt(cell['iqm'])} [{fmt(ci[0])}, {fmt(ci[1])}]"


def per_run(cell: dict) -> float | None:
    times = [t for t in cell["train_time"] if t is not None]
    return sum(times) / len(times) if times else None


def results_line(report: dict, cell: dict) -> str:
    m = report["machine"]
    count = solved_count(cell)
    solved = "" if count is None else f", {count[0]} of {count[1]} at {cell['threshold']:g} or better"
    errored = f" ({cell['n_errored']} of {cell['n_seeds']} seeds errored)" if cell.get("n_errored") else ""
    time = per_run(cell)
    return (f"'{report['command']}' (seeds {seed_range(cell)}, not tuned on), {m['cpus']}-core {m['processor']} "
            f"CPU, {report['date']}: final models over {report['eval_episodes']} episodes "
            f"{' / '.join(fmt(f) for f in cell['final']) or '-'}{errored}, IQM {iqm_text(cell)}{solved}"
            f"{'' if time is None else f'; {time:.0f} s per run'}; machine-specific")


def update_preset(algo: str, env: str, line: str) -> bool:
    path = ROOT / "deeprl" / "presets" / f"{algo}.yaml"
    if not path.exists():  # an algorithm that ships no presets (worldmodel): its defaults were benched
        return False
    text = path.read_text().rstrip("\n") + "\n"  # every line, the last one too, ends in a newline
    start = text.find(f"\n{env}:\n")
    if start < 0:
        return False
    block_end = re.search(r"\n\S", text[start + 1:])  # the next top-level key, or the end of the file
    block_end = len(text) if block_end is None else start + 1 + block_end.start()
    new = "  results: " + json.dumps(line, ensure_ascii=False)
    key = text.find("\n  results:", start, block_end)
    if key < 0:  # a new preset: its results line goes after its description (or its name)
        description = text.find("\n  description:", start, block_end)
        key = text.index("\n", description + 1) if description >= 0 else start + len(f"\n{env}:")
        path.write_text(text[:key] + "\n" + new + text[key:])
        return True
    end = text.index("\n", key + 1)
    path.write_text(text[:key + 1] + new + text[end:])
    return True


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("reports", nargs="+")
    p.add_argument("--write", action="store_true", help="update deeprl/presets/*.yaml")
    args = p.parse_args()
    print("| algo | env | seeds | IQM [95% CI] | solved | per-seed finals | median time to stay solved | "
          "train time / run |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for file in args.reports:
        report = json.loads(Path(file).read_text())
        for cell in report["results"]:
            count = solved_count(cell)
            solved = "-" if count is None else f"{count[0]}/{count[1]} at {cell['threshold']:g}"
            stay = "-" if cell["median_time_to_stay"] is None else f"{cell['median_time_to_stay']:.0f} s"
            print(f"| {cell['algo']} | {cell['env']} | {seed_range(cell)} | {iqm_text(cell)} | {solved} | "
                  f"{', '.join(fmt(f) for f in cell['final'])} | {stay} | {fmt(per_run(cell), 0)} s |")
            if args.write and not update_preset(cell["algo"], cell["env"], results_line(report, cell)):
                print(f"(no {cell['algo']} preset for {cell['env']})")


if __name__ == "__main__":
    main()
