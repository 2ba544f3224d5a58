"""Invalid-action masking on Taxi-v4: masked vs unmasked DQN and PPO, same settings, same seeds.

Taxi-v4 gives ``info["action_mask"]`` (moves into walls, pick-ups and drop-offs where they are
illegal are masked).  The unmasked agents train on the same env with the mask taken out of
``info`` (``DropActionMask``), so they must learn by trial that those actions cost -1 (a wall)
or -10 (an illegal pick-up or drop-off).  For each seed the script reports each agent's final
return (deterministic, ``FINAL_EPISODES`` episodes on evaluation seeds), the step at which the
masked agent's periodic evaluation first reached the unmasked agent's final return, how many
invalid actions each agent took while training (the masked ones: none, which deeprl checks on
every step), and the periodic evaluation curves.

    nice -n 19 .venv/bin/python benchmarks/masked_taxi.py              # seeds 1000-1002 -> results_masked_taxi.json
    .venv/bin/python benchmarks/masked_taxi.py --algos ppo --seeds 1000 --json /tmp/ppo.json

Settings were chosen on seed 1000 with masks (gamma 0.95 made DQN's target reach the drop-off);
the unmasked agents get the same.  Everything runs in this process, one run after the other, on
one CPU thread (about 8 minutes of CPU time).

On seeds 1000-1002 (results_masked_taxi.json): unmasked DQN (70k steps) ends at -200, -196, -200 and
masked DQN at -46, -34, -17, reaching the unmasked final return at its first or third evaluation
(7k, 21k, 7k steps); unmasked PPO (154k steps) ends at -200 on every seed (-1 on each of 200 steps:
it never tries a pick-up or drop-off, legal or not) and masked PPO at 8.0, 8.0, 7.5 (solved; first evaluation
at or above 0 after 92k, 82k, 72k steps).  The unmasked agents took 51-82k invalid actions each, the
masked ones none.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deeprl import DQN, PPO  # noqa: E402

COMMON = dict(preset=None, checkpoint_freq=0, torch_threads=1)
SETTINGS: dict[str, dict[str, Any]] = {
    "dqn": dict(total_steps=70_000, eval_every=7_000, lr=1e-3, buffer_size=50_000, learning_starts=1_000,
                batch_size=64, train_freq=4, target_update_interval=500, eps_fraction=0.1, eps_end=0.05,
                gamma=0.95),
    "ppo": dict(total_steps=153_600, eval_every=10_240, num_envs=8, n_steps=128, minibatch_size=256, n_epochs=4,
                lr=1e-3, gamma=0.99, gae_lambda=0.95, ent_coef=0.01),
}
EVAL_EPISODES = 10     # each periodic evaluation
FINAL_EPISODES = 50    # the final one
MASKED, UNMASKED = "DeeprlBench/TaxiCounted-v4", "DeeprlBench/TaxiUnmasked-v4"


class DropActionMask(gym.Wrapper):
    """Counts the actions that Taxi's own mask forbids (``invalid``) and, with ``drop``, takes the
    mask out of ``info`` so the agent never sees it."""

    def __init__(self, env: gym.Env, drop: bool):
        super().__init__(env)
        self.drop, self.invalid = drop, 0

    def _pass(self, info: dict[str, Any]) -> dict[str, Any]:
        self._mask = info["action_mask"]
        return {k: v for k, v in info.items() if k != "action_mask"} if self.drop else info

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        return obs, self._pass(info)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self.invalid += int(not self._mask[int(action)])
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._pass(info)


gym.register(MASKED, entry_point=lambda **kw: DropActionMask(gym.make("Taxi-v4", **kw), drop=False))
gym.register(UNMASKED, entry_point=lambda **kw: DropActionMask(gym.make("Taxi-v4", **kw), drop=True))


def invalid_actions(agent: Any) -> int:
    """The invalid actions taken in the agent's training envs (evaluation envs are others)."""
    total = 0
    for env in agent.envs.envs:
        while not isinstance(env, DropActionMask):
            env = env.env
        total += env.invalid
    return total


def train(algo: str, masked: bool, seed: int) -> dict[str, Any]:
    settings = dict(SETTINGS[algo])
    every = settings.pop("eval_every")
    cls = {"dqn": DQN, "ppo": PPO}[algo]
    agent = cls(MASKED if masked else UNMASKED, seed=seed, eval_freq=every, log_interval=every,
                eval_episodes=EVAL_EPISODES, **COMMON, **settings)
    curve: list[tuple[int, float]] = []
    seen: list[Any] = [None]

    def record(a: Any) -> None:  # after each log row: keep the evaluation it made, if it made one
        if a.last_eval is not None and a.last_eval is not seen[0]:
            seen[0] = a.last_eval
            curve.append((a.num_timesteps, round(a.last_eval["mean_return"], 2)))

    start = time.perf_counter()
    agent.learn(progress=False, callback=record)
    seconds = time.perf_counter() - start
    invalid = invalid_actions(agent)
    final = agent.evaluate(FINAL_EPISODES)
    agent.close()
    return {"algo": algo, "masked": masked, "seed": seed, "steps": agent.num_timesteps,
            "final_return": round(final["mean_return"], 2), "final_std": round(final["std_return"], 2),
            "invalid_actions_in_training": invalid, "train_seconds": round(seconds, 1), "curve": curve}


def first_reaching(curve: list[tuple[int, float]], level: float) -> int | None:
    return next((step for step, ret in curve if ret >= level), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algos", nargs="+", default=["dqn", "ppo"], choices=sorted(SETTINGS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1000, 1001, 1002])
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("results_masked_taxi.json"))
    args = parser.parse_args()
    runs, summary = [], []
    for algo in args.algos:
        for seed in args.seeds:
            pair = {masked: train(algo, masked, seed) for masked in (False, True)}
            runs += list(pair.values())
            target = pair[False]["final_return"]
            row = {"algo": algo, "seed": seed, "unmasked_final": target, "masked_final": pair[True]["final_return"],
                   "masked_steps_to_unmasked_final": first_reaching(pair[True]["curve"], target),
                   "unmasked_steps_to_its_final": first_reaching(pair[False]["curve"], target),
                   "unmasked_invalid_actions": pair[False]["invalid_actions_in_training"],
                   "masked_invalid_actions": pair[True]["invalid_actions_in_training"]}
            summary.append(row)
            print(json.dumps(row), flush=True)
    result = {"script": "benchmarks/masked_taxi.py", "settings": SETTINGS, "eval_episodes": EVAL_EPISODES,
              "final_episodes": FINAL_EPISODES, "seeds": args.seeds,
              "machine": platform.processor() or platform.machine(),
              "python": platform.python_version(), "summary": summary, "runs": runs}
    for algo in args.algos:
        rows = [r for r in summary if r["algo"] == algo]
        result[f"{algo}_mean"] = {k: float(np.mean([r[k] for r in rows])) for k in ("unmasked_final", "masked_final")}
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
