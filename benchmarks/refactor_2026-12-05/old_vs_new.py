"""Throughput of two checkouts of deeprl, side by side: the deeprl workers of pg_same_work.py and
dqn_same_work.py (identical work, learn() timed alone), run alternately old, new, old, new, ...
each in a fresh interpreter with PYTHONPATH set to its checkout (the worker reports deeprl.__file__).

    .venv/bin/python benchmarks/refactor_2026-12-05/old_vs_new.py --old /tmp/deeprl-old --new /tmp/deeprl-new \
        --pairs 3 --a2c-steps 100000 --ppo-steps 50000 --dqn-steps 20000 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

MARKER = "@@BENCH_RESULT@@ "


CLOCK = "wall"


def run(tree: Path, script: str, args: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1")
    cmd = [sys.executable, str(tree / "benchmarks" / script), "--worker", "deeprl", *args]
    if CLOCK == "cpu":  # learn() timed in CPU seconds of the worker (benchmarks/refactor_2026-12-05/cpu_worker.py)
        cmd = [sys.executable, str(Path(__file__).with_name("cpu_worker.py")), str(tree), script,
               "--worker", "deeprl", *args]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tree)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-2000:] + p.stderr[-4000:])
        raise SystemExit(f"failed: {cmd}")
    line = next(l for l in reversed(p.stdout.splitlines()) if l.startswith(MARKER))
    r = json.loads(line[len(MARKER):])
    r["process_s"] = time.perf_counter() - t0
    path = r["versions"]["deeprl_path"]
    if not path.startswith(str(tree)):
        raise SystemExit(f"{tree}: imported deeprl from {path}")
    r.pop("settings", None)
    r["eval"].pop("returns", None)
    return r


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--old", type=Path, required=True)
    p.add_argument("--new", type=Path, required=True)
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--algos", nargs="+", default=["a2c", "ppo", "dqn"])
    p.add_argument("--a2c-steps", type=int, default=100_000)
    p.add_argument("--ppo-steps", type=int, default=50_000)
    p.add_argument("--dqn-steps", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="time learn() in wall seconds (the scripts' own way) or in the worker's CPU seconds")
    p.add_argument("--json")
    a = p.parse_args()
    global CLOCK
    CLOCK = a.clock
    steps = {"a2c": a.a2c_steps, "ppo": a.ppo_steps, "dqn": a.dqn_steps}
    out = {"benchmark": "old_vs_new", "clock": a.clock, "old": str(a.old), "new": str(a.new), "seed": a.seed, "steps": steps,
           "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                       "python": platform.python_version()},
           "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "algos": {}}
    for algo in a.algos:
        runs = []
        for i in range(a.pairs):
            order = [("old", a.old), ("new", a.new)]  # strictly old, new, old, new as asked
            for name, tree in order:
                if algo == "dqn":
                    r = run(tree, "dqn_same_work.py", ["--seed", str(a.seed), "--steps", str(steps[algo])])
                else:
                    r = run(tree, "pg_same_work.py", ["--algo", algo, "--seed", str(a.seed),
                                                      "--steps", str(steps[algo])])
                r["tree"] = name
                r["pair"] = i
                r["sps"] = r["env_steps"] / r["learn_s"]
                runs.append(r)
                print(f"{algo} pair {i} {name}: {r['sps']:,.0f} steps/s ({r['learn_s']:.1f} s learn, "
                      f"final {r['eval']['mean_return']:.1f}, grad steps {r['gradient_steps']}) "
                      f"[{r['versions']['deeprl_path']}]", file=sys.stderr, flush=True)
        med = {n: statistics.median(r["sps"] for r in runs if r["tree"] == n) for n in ("old", "new")}
        pair_ratios = [runs[2 * i + 1]["sps"] / runs[2 * i]["sps"] for i in range(a.pairs)]
        out["algos"][algo] = {"steps": steps[algo], "median_sps": med, "ratio_new_over_old": med["new"] / med["old"],
                              "pair_ratios": pair_ratios, "runs": runs}
        print(f"== {algo}: old {med['old']:,.0f}  new {med['new']:,.0f}  new/old {med['new'] / med['old']:.3f}  "
              f"pairs {', '.join(f'{x:.3f}' for x in pair_ratios)}", file=sys.stderr, flush=True)
        if a.json:
            Path(a.json).write_text(json.dumps(out, indent=1))
    out["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
