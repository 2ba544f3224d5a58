"""The same sweep with 1 worker and with N: how much faster, and are the results the same?

A random search of PPO on CartPole-v1 (its preset, lr searched), ``--runs`` runs in all (candidates x
seeds), on a local Ray cluster of ``--workers`` CPUs, then the identical sweep on a cluster of one
CPU.  Each sweep runs in a fresh process (``deeprl sweep``), timed from start to report, Ray's
start-up included.  The speed-up is wall time with 1 worker over wall time with N; the final
returns must match run for run (same seeds, one torch thread per run).

    .venv/bin/python benchmarks/scale_out.py                       # 8 runs, 2 workers vs 1
    .venv/bin/python benchmarks/scale_out.py --runs 16 --workers 16 --json results/scale.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C


def run_sweep(out: Path, runs: int, seeds: int, workers: int, steps: int | None, backend: str) -> dict:
    cmd = [sys.executable, "-m", "deeprl", "sweep", "ppo", "--env", C.ENV_ID, "--space", "lr=loguniform:3e-4:3e-3",
           "--trials", str(runs // seeds), "--seeds", str(seeds), "--workers", str(workers), "--backend", backend,
           "--out", str(out)]
    if steps:
        cmd += ["--steps", str(steps)]
    env = C.worker_process_env()
    C.log(f"  {' '.join(cmd[2:])}")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=C.REPO)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-4000:])
        raise SystemExit(f"sweep failed (exit {proc.returncode})")
    report = json.loads((out / "results.json").read_text())
    finals = {(c["index"], s): f for c in report["ranked"] for s, f in zip(c["seeds"], c["finals"])}
    return {"workers": workers, "wall_s": wall, "finals": {f"{i}/{s}": f for (i, s), f in sorted(finals.items())}}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=8, help="runs in the sweep (candidates x seeds; default 8)")
    p.add_argument("--seeds", type=int, default=2, help="seeds per candidate (default 2)")
    p.add_argument("--workers", type=int, default=2, help="workers of the parallel sweep (default 2)")
    p.add_argument("--steps", type=int, help="env steps per run (default: the preset's 100k)")
    p.add_argument("--backend", choices=["ray", "processes"], default="ray")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    if args.runs % args.seeds:
        p.error("--runs must be a multiple of --seeds")
    tmp = Path(tempfile.mkdtemp(prefix="deeprl_scale_"))
    try:
        parallel = run_sweep(tmp / "parallel", args.runs, args.seeds, args.workers, args.steps, args.backend)
        serial = run_sweep(tmp / "serial", args.runs, args.seeds, 1, args.steps, args.backend)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    speedup = serial["wall_s"] / parallel["wall_s"]
    same = serial["finals"] == parallel["finals"]
    print(f"deeprl sweep, PPO {C.ENV_ID}, {args.runs} runs ({args.runs // args.seeds} candidates x {args.seeds} "
          f"seeds), backend {args.backend}; machine: {C.machine()['processor']}, {C.machine()['cpu_count']} CPUs")
    print(C.table(["workers", "wall s", "runs/min"],
                  [[str(r["workers"]), f"{r['wall_s']:.1f}", f"{60 * args.runs / r['wall_s']:.2f}"]
                   for r in (serial, parallel)]))
    print(f"speed-up with {args.workers} workers: {speedup:.2f}x; final returns identical run for run: {same}")
    C.write_json(args.json, {"benchmark": "scale_out", "runs": args.runs, "seeds": args.seeds,
                             "workers": args.workers, "backend": args.backend, "machine": C.machine(),
                             "serial": serial, "parallel": parallel, "speedup": speedup, "identical": same})


if __name__ == "__main__":
    sys.exit(main())
