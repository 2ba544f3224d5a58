"""DeepMind Control Suite proprio tasks (through shimmy): Dreamer and PPO beside the published figures.

Each run trains from scratch, then its final model is evaluated over ``--eval-episodes`` episodes
on evaluation seeds of its own (10,000 + seed); IQM over the seeds.  ``--minutes`` caps a run's
training by wall-clock (checked at every log row): the final model is then the one at the step
reached, and the record says so (``stopped_by_time``, ``steps``), so a capped run is never read as
one of the full length.  Runs one at a time, in this process; results are merged into ``--out``
(keyed algo/task/steps, runs of a seed done earlier are replaced).

``--steps`` counts env steps; with ``--action-repeat 2`` (each decision held for two env steps, as
Dreamer, TD-MPC2 and SAC's published DMC runs are) a run makes ``steps / 2`` decisions.

Usage: python benchmarks/dmc.py --algos dreamer ppo --tasks pendulum-swingup cartpole-swingup
       --seeds 1000 1001 1002 --steps 100000 --action-repeat 2      (needs pip install "deeprl[dmc]")
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from deeprl import PPO, Dreamer  # noqa: E402
from deeprl.report import iqm  # noqa: E402

# Not tuned on these tasks.  PPO: CleanRL's / SB3's MuJoCo settings (one env, 2048-step rollouts,
# 10 epochs of 64-sample minibatches, tanh torsos, observations and rewards normalized, learning
# rate annealed).  Dreamer: the S model with the work per env step cut for a 2-core CPU (one
# gradient step per 8 env steps, 32-step sequences, 15-step dreams from 128 states).
SETTINGS = {
    "ppo": (PPO, dict(num_envs=1, n_steps=2048, minibatch_size=64, n_epochs=10, lr=3e-4, anneal_lr=True,
                      gamma=0.99, gae_lambda=0.95, activation="tanh", normalize_obs=True, normalize_reward=True)),
    "dreamer": (Dreamer, dict(preset="S", replay_ratio=0.125, batch_length=32, horizon=15, imagine_starts=128)),
}
TASKS = ("pendulum-swingup", "cartpole-swingup")

# Published returns at 100k env steps, 3 seeds each (seeds 1, 2, 3), from TD-MPC2's result files:
# github.com/nicklashansen/tdmpc2, results/{tdmpc2,dreamerv3,sac}/<task>.csv, rows with step 100000
# (commit e9f5932).  Those are evaluations during training at that step.
PUBLISHED = {
    "pendulum-swingup": {"TD-MPC2": [563.7, 852.2, 756.0], "DreamerV3": [457.1, 811.7, 829.1],
                         "SAC": [0.0, 100.0, 188.1]},
    "cartpole-swingup": {"TD-MPC2": [860.5, 789.8, 867.9], "DreamerV3": [637.2, 718.6, 674.4],
                         "SAC": [844.8, 825.8, 834.3]},
}
SOURCE = "github.com/nicklashansen/tdmpc2 results/<algo>/<task>.csv, step 100000, seeds 1-3 (commit e9f5932)"


class TimeCap:
    """A learn() callback that stops training once ``seconds`` of wall-clock have passed."""

    def __init__(self, seconds: float):
        self.seconds, self.start, self.stopped = seconds, time.perf_counter(), False

    def __call__(self, agent) -> bool:
        self.stopped = time.perf_counter() - self.start >= self.seconds
        return not self.stopped


def run(algo: str, task: str, seed: int, steps: int, minutes: float, eval_episodes: int, repeat: int) -> dict:
    """One run of ``steps`` env steps: ``steps / repeat`` decisions, each held for ``repeat`` steps."""
    cls, settings = SETTINGS[algo]
    settings = {"preset": None, **settings}
    start = time.perf_counter()
    agent = cls(f"dm_control/{task}-v0", total_steps=steps // repeat, seed=seed, eval_freq=0, checkpoint_freq=0,
                checkpoint_minutes=0, log_interval=500, action_repeat=repeat, **settings)
    cap = TimeCap(minutes * 60) if minutes else None
    agent.learn(progress=False, callback=cap)
    trained = time.perf_counter() - start
    result = agent.evaluate(episodes=eval_episodes, seed=10_000 + seed)
    return {"seed": seed, "return": float(result["mean_return"]), "steps": int(agent.num_timesteps) * repeat,
            "decisions": int(agent.num_timesteps),
            "stopped_by_time": bool(cap and cap.stopped), "train_seconds": round(trained, 1),
            "eval_seconds": round(time.perf_counter() - start - trained, 1),
            "steps_per_second": round(agent.num_timesteps * repeat / trained, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001, 1002])
    parser.add_argument("--steps", type=int, default=100_000, help="env steps per run (decisions x --action-repeat)")
    parser.add_argument("--action-repeat", type=int, default=1,
                        help="hold each action this many env steps (Dreamer, TD-MPC2 and SAC's published runs use 2)")
    parser.add_argument("--minutes", type=float, default=0.0, help="cap each run's training (0 = none)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--out", default=str(Path(__file__).with_name("results_dmc.json")))
    args = parser.parse_args()
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {"published": {"source": SOURCE, "returns": PUBLISHED}}
    results["machine"] = f"{platform.machine()}, {os.cpu_count()} cores shared, load {os.getloadavg()[0]:.1f} at start"
    for algo in args.algos:
        for task in args.tasks:
            key = (f"{algo}/{task}/{args.steps}" + (f"/repeat{args.action_repeat}" if args.action_repeat > 1 else "")
                   + (f"/cap{args.minutes:g}min" if args.minutes else ""))
            cell = results.setdefault(key, {"algo": algo, "task": task, "total_steps": args.steps,
                                            "action_repeat": args.action_repeat, "minutes_cap": args.minutes,
                                            "settings": SETTINGS[algo][1], "runs": []})
            for seed in args.seeds:
                record = run(algo, task, seed, args.steps, args.minutes, args.eval_episodes, args.action_repeat)
                cell["runs"] = [r for r in cell["runs"] if r["seed"] != seed] + [record]
                returns = np.array([r["return"] for r in cell["runs"]])
                cell["iqm"] = float(iqm(returns))
                cell["seconds_per_run"] = float(np.mean([r["train_seconds"] + r["eval_seconds"] for r in cell["runs"]]))
                out.write_text(json.dumps(results, indent=2) + "\n")
                print(f"{key} seed {seed}: {record}", flush=True)
            print(f"{key}: IQM {cell['iqm']:.1f} over {len(cell['runs'])} seeds, {cell['seconds_per_run']:.0f} s per "
                  f"run; published: " + ", ".join(f"{k} {np.mean(v):.1f}" for k, v in PUBLISHED[task].items()),
                  flush=True)


if __name__ == "__main__":
    main()
