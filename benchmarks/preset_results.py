"""Write `deeprl bench` results into the presets' `results:` lines and print one markdown table.

    .venv/bin/python benchmarks/preset_results.py bench/*/results.json            # print the table
    .venv/bin/python benchmarks/preset_results.py bench/*/results.json --write    # and update the presets

Each (algorithm, env) cell of a bench report replaces the `results:` line of that algorithm's
preset for that env in deeprl/presets/<algo>.yaml, so the documented figures are the
instrument's: the command, seeds, IQM [95% CI], per-seed finals, machine and date.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def results_line(report: dict, cell: dict) -> str:
    m = report["machine"]
    seeds = cell["seeds"]
    solved = "" if cell["threshold"] is None else (
        f", {round(cell['solved_fraction'] * len(cell['final']))} of {len(cell['final'])} at {cell['threshold']:g} "
        "or better")
    times = [t for t in cell["train_time"] if t is not None]
    per_run = f"; {sum(times) / len(times):.0f} s per run" if times else ""
    return (f"'{report['command']}' (seeds {seeds[0]}-{seeds[-1]}, not tuned on), {m['cpus']}-core {m['processor']} "
            f"CPU, {report['date']}: final models over {report['eval_episodes']} episodes "
            f"{' / '.join(fmt(f) for f in cell['final'])}, IQM {fmt(cell['iqm'])} [{fmt(cell['iqm_ci'][0])}, "
            f"{fmt(cell['iqm_ci'][1])}]{solved}{per_run}; machine-specific")


def update_preset(algo: str, env: str, line: str) -> bool:
    path = ROOT / "deeprl" / "presets" / f"{algo}.yaml"
    if not path.exists():  # an algorithm that ships no presets (worldmodel): its defaults were benched
        return False
    text = path.read_text()
    start = text.find(f"\n{env}:\n")
    if start < 0:
        return False
    key = text.index("  results:", start)
    end = text.index("\n", key)
    path.write_text(text[:key] + "  results: " + json.dumps(line, ensure_ascii=False) + text[end:])
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
            times = [t for t in cell["train_time"] if t is not None]
            solved = "-" if cell["solved_fraction"] is None else \
                f"{round(cell['solved_fraction'] * len(cell['final']))}/{len(cell['final'])} at {cell['threshold']:g}"
            stay = "-" if cell["median_time_to_stay"] is None else f"{cell['median_time_to_stay']:.0f} s"
            print(f"| {cell['algo']} | {cell['env']} | {cell['seeds'][0]}-{cell['seeds'][-1]} | {fmt(cell['iqm'])} "
                  f"[{fmt(cell['iqm_ci'][0])}, "
                  f"{fmt(cell['iqm_ci'][1])}] | {solved} | {', '.join(fmt(f) for f in cell['final'])} | {stay} | "
                  f"{sum(times) / len(times):.0f} s |")
            if args.write and not update_preset(cell["algo"], cell["env"], results_line(report, cell)):
                print(f"(no {cell['algo']} preset for {cell['env']})")


if __name__ == "__main__":
    main()
