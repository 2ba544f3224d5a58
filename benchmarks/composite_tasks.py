"""Learning figures for composite spaces over several seeds (issue: your own problem).

PPO and DQN on GoalLine (a Dict observation: position and goal as Discrete entries, time as a
Box; tests/envs.py), PPO on MultiDiscrete actions, PPO and A2C on MultiBinary actions.  Final models,
evaluated over 40 episodes on evaluation seeds of their own; IQM over the seeds with a bootstrap
CI.  Usage: python benchmarks/composite_tasks.py [--seeds 1000 1001 ...] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deeprl import A2C, DQN, PPO  # noqa: E402
import numpy as np  # noqa: E402

from deeprl.report import iqm, iqm_ci  # noqa: E402
from tests.envs import GOAL_LINE, MULTI_BINARY, MULTI_DISCRETE  # noqa: E402

TASKS = {  # name: (algo, env, steps, threshold)
    "ppo-goalline-dict": (PPO, GOAL_LINE, 24_000, 0.6),
    "dqn-goalline-dict": (DQN, GOAL_LINE, 15_000, 0.6),
    "ppo-multidiscrete": (PPO, MULTI_DISCRETE, 16_000, 18.0),
    "ppo-multibinary": (PPO, MULTI_BINARY, 16_000, 18.0),
    "a2c-multibinary": (A2C, MULTI_BINARY, 60_000, 18.0),  # A2C's defaults learn it more slowly
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[1000, 1001, 1002, 1003, 1004])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--out", default=str(Path(__file__).with_name("results_composite_tasks.json")))
    args = parser.parse_args()
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}  # tasks run earlier are kept
    for name in args.tasks:
        algo, env, steps, threshold = TASKS[name]
        returns, seconds = [], []
        for seed in args.seeds:
            start = time.perf_counter()
            agent = algo(env, total_steps=steps, seed=seed, preset=None, eval_freq=0, checkpoint_freq=0,
                         log_interval=steps)
            agent.learn(progress=False)
            returns.append(agent.evaluate(episodes=40, seed=10_000 + seed)["mean_return"])
            seconds.append(time.perf_counter() - start)
            print(f"{name} seed {seed}: {returns[-1]:.3f} ({seconds[-1]:.0f} s)", flush=True)
        centre, (low, high) = iqm(np.array(returns)), iqm_ci(np.array(returns))
        results[name] = {"algo": algo.algo, "env": env, "total_steps": steps, "threshold": threshold,
                         "seeds": args.seeds, "returns": returns, "iqm": centre, "ci": [low, high],
                         "solved": sum(r >= threshold for r in returns), "seconds_per_run": sum(seconds) / len(seconds)}
        print(f"{name}: IQM {centre:.3f} [{low:.3f}, {high:.3f}], {results[name]['solved']} of {len(returns)} at "
              f"{threshold} or better", flush=True)
        out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
