"""DQN, A2C, PPO and PQN on CartPole-v1, each library with its own preset: how long until solved, stably?

Stable-Baselines3 trains with rl-baselines3-zoo's CartPole-v1 hyperparameters (its tuned presets),
deeprl with its shipped CartPole-v1 presets (``DQN("CartPole-v1")`` etc.).  Each run trains for its
preset's whole budget and pauses on a fixed grid of env steps for a 20-episode deterministic
evaluation on the same start states in both libraries.  A run is *solved stably* at the first
evaluation from which every later one, and the final model's, has a mean return >= 475; its time
to solve is the training wall time up to that evaluation (evaluations are timed and subtracted).
A run whose final model scores below 475 is not solved, whatever it reached on the way.
Stable-Baselines3 has no PQN: deeprl's PQN is measured against SB3's DQN preset (and, with
``--algos pqn dqn``, against deeprl's DQN from the same run too).

    .venv/bin/python benchmarks/time_to_solve_stably.py                       # dqn a2c ppo, seeds 0-4
    .venv/bin/python benchmarks/time_to_solve_stably.py --algos ppo --seeds 0 1 --workers 1
    .venv/bin/python benchmarks/time_to_solve_stably.py --algos pqn --seeds 2000 2001 2002 2003 2004 --workers 1

Every training runs in a fresh Python process (this script with ``--worker``); ``--workers 2``
runs two at once (one torch thread each), so on a 2-core machine both libraries' runs share the
machine in the same way.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import _common as C

SOLVED_AT = 475.0
EVAL_EVERY = {"dqn": 2_500, "a2c": 10_000, "ppo": 4_096, "pqn": 4_096}
SB3_ALGO = {"pqn": "dqn"}  # what SB3 trains where deeprl trains an algorithm that SB3 lacks
# rl-baselines3-zoo's CartPole-v1 hyperparameters (hyperparams/{dqn,a2c,ppo}.yml); "lin_x" in the zoo
# is a linear schedule from x to 0, written here as SB3 callables.
SB3_PRESETS: dict[str, dict[str, Any]] = {
    "dqn": dict(n_envs=1, n_timesteps=C.SB3_ZOO_STEPS, kwargs=C.SB3_ZOO),
    "a2c": dict(n_envs=8, n_timesteps=500_000, kwargs=dict(ent_coef=0.0)),
    "ppo": dict(n_envs=8, n_timesteps=100_000,
                kwargs=dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, ent_coef=0.0,
                            learning_rate="lin_0.001", clip_range="lin_0.2")),
}


class Tracker:
    """Evaluations on a grid of env steps, their time, and the training time between them."""

    def __init__(self, every: int):
        self.every = every
        self.evals: list[dict[str, Any]] = []
        self.eval_s = 0.0
        self._t0 = time.perf_counter()
        self._next = every

    def maybe(self, step: int, run_eval: Callable[[], dict[str, Any]]) -> None:
        if step >= self._next:
            self._next = (step // self.every + 1) * self.every
            self.evaluate(step, run_eval)

    def evaluate(self, step: int, run_eval: Callable[[], dict[str, Any]]) -> None:
        train_s = time.perf_counter() - self._t0 - self.eval_s
        t = time.perf_counter()
        result = run_eval()
        self.eval_s += time.perf_counter() - t
        self.evals.append({"step": step, "train_s": train_s, "mean_return": result["mean_return"]})

    def result(self, library: str, algo: str, seed: int, env_steps: int, run_eval: Callable) -> dict[str, Any]:
        train_s = time.perf_counter() - self._t0 - self.eval_s
        final = run_eval()
        self.evals.append({"step": env_steps, "train_s": train_s, "mean_return": final["mean_return"], "final": True})
        stable = None  # the first evaluation from which all later ones (the final's too) are solved
        for e in reversed(self.evals):
            if e["mean_return"] < SOLVED_AT:
                break
            stable = e
        return {"library": library, "algo": algo, "seed": seed, "env_steps": env_steps, "train_s": train_s,
                "eval_s": self.eval_s, "final_return": final["mean_return"], "solved": stable is not None,
                "steps_to_solve": stable["step"] if stable else None,
                "train_s_to_solve": stable["train_s"] if stable else None, "evals": self.evals}


def worker_sb3(algo: str, seed: int) -> dict:
    import torch
    torch.set_num_threads(C.TORCH_THREADS)
    from stable_baselines3 import A2C, DQN, PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    preset = SB3_PRESETS[algo]
    kwargs = {k: (lambda x, v=float(v[4:]): x * v) if isinstance(v, str) and v.startswith("lin_") else v
              for k, v in preset["kwargs"].items()}  # SB3 schedules get progress_remaining, 1 -> 0
    env = make_vec_env(C.ENV_ID, n_envs=preset["n_envs"], seed=seed, vec_env_cls=DummyVecEnv)
    model = {"dqn": DQN, "a2c": A2C, "ppo": PPO}[algo]("MlpPolicy", env, seed=seed, device="cpu", verbose=0,
                                                        **kwargs)
    tracker = Tracker(EVAL_EVERY[algo])

    class EvalEvery(BaseCallback):
        def _on_step(self) -> bool:
            tracker.maybe(self.num_timesteps, lambda: C.sb3_evaluate(self.model, seed))
            return True

    model.learn(total_timesteps=preset["n_timesteps"], callback=EvalEvery(), progress_bar=False)
    out = tracker.result("sb3", algo, seed, int(model.num_timesteps), lambda: C.sb3_evaluate(model, seed))
    env.close()
    return {**out, "versions": C.versions("sb3"), "settings": {**preset["kwargs"], "n_envs": preset["n_envs"],
                                                                "n_timesteps": preset["n_timesteps"]}}


def worker_deeprl(algo: str, seed: int) -> dict:
    import dataclasses

    import deeprl

    cls = {"dqn": deeprl.DQN, "a2c": deeprl.A2C, "ppo": deeprl.PPO, "pqn": deeprl.PQN}[algo]
    # the shipped preset; a log row (and so the callback) after every update, or every 500 steps for DQN
    log_interval = {"dqn": 500, "a2c": 128, "ppo": 256, "pqn": 1_024}[algo]
    agent = cls(C.ENV_ID, seed=seed, eval_freq=0, checkpoint_freq=0, log_interval=log_interval)
    tracker = Tracker(EVAL_EVERY[algo])
    agent.learn(callback=lambda a: tracker.maybe(a.num_timesteps, lambda: a.evaluate(C.EVAL_EPISODES)),
                progress=False)
    out = tracker.result("deeprl", algo, seed, int(agent.num_timesteps), lambda: agent.evaluate(C.EVAL_EPISODES))
    agent.close()
    return {**out, "versions": C.versions("deeprl"), "eval_seeding_matches": C.deeprl_eval_seeding_matches(),
            "settings": dataclasses.asdict(agent.config)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algos", nargs="+", choices=["dqn", "a2c", "ppo", "pqn"], default=["dqn", "a2c", "ppo"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--workers", type=int, default=2, help="trainings at once (default 2)")
    p.add_argument("--json", metavar="PATH", help="also write every result to this JSON file")
    p.add_argument("--worker", choices=["sb3", "deeprl"], help=argparse.SUPPRESS)
    p.add_argument("--algo", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        C.emit((worker_sb3 if args.worker == "sb3" else worker_deeprl)(args.algo, args.seed))
        return
    jobs = list(dict.fromkeys((lib, trained(lib, algo), seed) for algo in args.algos
                              for i, seed in enumerate(args.seeds) for lib in C.run_order(i)))  # SB3's DQN runs once
    with ThreadPoolExecutor(max_workers=args.workers) as pool:  # each job is its own subprocess
        runs = list(pool.map(lambda j: C.run_worker(__file__, j[0], ["--algo", j[1], "--seed", str(j[2])]), jobs))
    report(args, runs)


def sb3_algo(algo: str) -> str:
    return SB3_ALGO.get(algo, algo)


def trained(lib: str, algo: str) -> str:
    """The algorithm ``lib`` trains for the row ``algo``: SB3 stands in with its DQN for PQN."""
    return sb3_algo(algo) if lib == "sb3" else algo


def report(args: argparse.Namespace, runs: list[dict]) -> None:
    by = {(r["library"], r["algo"], r["seed"]): r for r in runs}
    run_of = lambda lib, algo, seed: by[(lib, trained(lib, algo), seed)]  # noqa: E731
    v = {r["library"]: r["versions"] for r in runs}
    print(f"{C.ENV_ID}: time until the evaluations stay >= {SOLVED_AT:g} and the final model scores >= "
          f"{SOLVED_AT:g}; each library's own preset; {args.workers} trainings at once")
    print(f"stable-baselines3 {v['sb3']['stable_baselines3']} (rl-zoo presets) vs deeprl {v['deeprl']['deeprl']}, "
          f"torch {v['sb3']['torch']}, 1 torch thread each; machine: {C.machine()['processor']}, "
          f"{C.machine()['cpu_count']} CPUs\n")
    summary = {}
    for algo in args.algos:
        rows = []
        for seed in args.seeds:
            for lib in ("sb3", "deeprl"):
                r = run_of(lib, algo, seed)
                rows.append([str(seed), f"{lib} {r['algo']}", f"{r['final_return']:.1f}",
                             f"{r['steps_to_solve']:,}" if r["solved"] else "not solved",
                             f"{r['train_s_to_solve']:.1f}" if r["solved"] else "-", f"{r['train_s']:.1f}",
                             f"{r['env_steps']:,}"])
        grids = sorted({EVAL_EVERY[algo], EVAL_EVERY[sb3_algo(algo)]})
        print(f"{algo.upper()} (evaluation every {' / '.join(f'{g:,}' for g in grids)} env steps)")
        print(C.table(["seed", "library", "final", "stays solved from step", "train s to solve", "train s total",
                       "env steps"], rows))
        line = {}
        for lib in ("sb3", "deeprl"):
            times = [run_of(lib, algo, s)["train_s_to_solve"] for s in args.seeds if run_of(lib, algo, s)["solved"]]
            line[lib] = {"solved": len(times), "median_s": statistics.median(times) if times else None,
                         "worst_s": max(times) if times else None}
            print(f"  {lib}: solved {len(times)}/{len(args.seeds)}"
                  + (f"; median {line[lib]['median_s']:.1f} s, worst {line[lib]['worst_s']:.1f} s" if times else ""))
        if line["sb3"]["median_s"] and line["deeprl"]["median_s"]:
            line["median_ratio_sb3_over_deeprl"] = line["sb3"]["median_s"] / line["deeprl"]["median_s"]
            print(f"  median time to solve, SB3 / deeprl: {line['median_ratio_sb3_over_deeprl']:.2f}x")
        if line["sb3"]["worst_s"] and line["deeprl"]["worst_s"]:
            line["worst_ratio_sb3_over_deeprl"] = line["sb3"]["worst_s"] / line["deeprl"]["worst_s"]
            print(f"  worst seed's time to solve, SB3 / deeprl: {line['worst_ratio_sb3_over_deeprl']:.2f}x")
        summary[algo] = line
        print()
    pqn, dqn = (summary.get(a, {}).get("deeprl", {}) for a in ("pqn", "dqn"))
    if pqn.get("median_s") and dqn.get("median_s"):  # PQN against deeprl's own DQN, from the same run
        ratios = summary["pqn"]
        ratios["median_ratio_deeprl_dqn_over_pqn"] = dqn["median_s"] / pqn["median_s"]
        ratios["worst_ratio_deeprl_dqn_over_pqn"] = dqn["worst_s"] / pqn["worst_s"]
        print(f"deeprl DQN / deeprl PQN, time to solve: median {ratios['median_ratio_deeprl_dqn_over_pqn']:.2f}x, "
              f"worst seed {ratios['worst_ratio_deeprl_dqn_over_pqn']:.2f}x\n")
    if not all(r.get("eval_seeding_matches", True) for r in runs):
        print("WARNING: deeprl's evaluation seeding changed; update benchmarks/_common.py to match it")
    C.write_json(args.json, {"benchmark": "time_to_solve_stably", "env": C.ENV_ID, "seeds": args.seeds,
                             "workers": args.workers, "solved_at": SOLVED_AT, "eval_every": EVAL_EVERY,
                             "machine": C.machine(), "summary": summary, "runs": runs})


if __name__ == "__main__":
    sys.exit(main())
