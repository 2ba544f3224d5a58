"""MinAtar on a CPU: how fast the env steps, and how fast each value learner trains on it.

The MinAtar paper's budget is 5M env steps per run.  This script measures, per game, the env alone
(random actions, one env) and ``deeprl``'s PQN, DQN and Rainbow with their ``minatar`` presets over
a short stretch of training past ``learning_starts``, in CPU seconds of one thread, and projects what a
5M-step run costs.  It answers "is the env the bottleneck?" and "which of these fits a CPU?".

    nice -n 19 .venv/bin/python benchmarks/minatar_throughput.py --games Breakout Asterix Freeway \
        --json benchmarks/results_minatar_throughput.json

Every measurement runs in its own fresh Python process (one thread), one after the other.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

import _common as C

BUDGET = 5_000_000
# agent -> (algo, preset, env steps timed, steps before the timing starts: past learning_starts, so
# the figure is the training loop's steady state, not the random prefill)
AGENTS: dict[str, tuple[str, str, int, int]] = {
    "pqn": ("pqn", "minatar", 65_536, 8_192),
    "dqn": ("dqn", "minatar", 4_000, 6_000),
    "rainbow": ("dqn", "rainbow-minatar", 2_000, 2_000),
}


def worker(game: str, what: str) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    env_id = f"MinAtar/{game}-v1"
    if what == "env":
        import gymnasium as gym

        from deeprl.envs.minatar import register_minatar
        register_minatar()
        env = gym.make(env_id)
        env.reset(seed=0)
        n, t0 = 0, time.process_time()
        while time.process_time() - t0 < 5.0:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            n += 1
            if terminated or truncated:
                env.reset()
        return {"steps_per_s": n / (time.process_time() - t0)}
    import deeprl

    algo, preset, timed, warmup = AGENTS[what]
    agent = deeprl.ALGORITHMS[algo](env_id, preset=preset, seed=0, total_steps=BUDGET, eval_freq=0,
                                    checkpoint_freq=0, log_interval=1_000, torch_threads=1)
    agent.learn(pause_at=warmup)            # a 5M-step run's schedules, paused past learning_starts
    start_steps, t0 = agent.num_timesteps, time.process_time()
    agent.learn(pause_at=start_steps + timed)
    cpu = time.process_time() - t0
    return {"steps_per_s": (agent.num_timesteps - start_steps) / cpu, "timed_steps": agent.num_timesteps - start_steps}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games", nargs="+", default=["Breakout", "Asterix", "Freeway", "Seaquest", "SpaceInvaders"])
    p.add_argument("--agents", nargs="+", default=["env", *AGENTS], choices=["env", *AGENTS])
    p.add_argument("--json")
    p.add_argument("--worker", nargs=2, metavar=("GAME", "WHAT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(C.MARKER + json.dumps(worker(*args.worker)), flush=True)
        return
    rows, results = [], {}
    for game in args.games:
        results[game] = {}
        for what in args.agents:
            out = subprocess.run([sys.executable, __file__, "--worker", game, what], capture_output=True, text=True,
                                 env=C.worker_process_env(), cwd=C.REPO, check=True).stdout
            line = next(x for x in out.splitlines() if x.startswith(C.MARKER))
            r = json.loads(line[len(C.MARKER):])
            r["hours_for_5M"] = BUDGET / r["steps_per_s"] / 3600
            results[game][what] = r
            C.log(f"{game} {what}: {r['steps_per_s']:,.0f} steps/s, {r['hours_for_5M']:.2f} h for 5M steps")
        rows.append([game, *[f"{results[game][w]['steps_per_s']:,.0f} ({results[game][w]['hours_for_5M']:.2f} h)"
                             for w in args.agents]])
    print(C.table(["game", *[f"{w} steps/s (h per 5M)" for w in args.agents]], rows))
    C.write_json(args.json, {"benchmark": "minatar_throughput", "budget": BUDGET, "machine": C.machine(),
                             "cpu_seconds_one_thread": True, "results": results})


if __name__ == "__main__":
    main()
