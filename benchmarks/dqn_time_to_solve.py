"""DQN on CartPole-v1, each library with its own tuned preset: how long until it solves CartPole?

Stable-Baselines3 trains with rl-baselines3-zoo's CartPole hyperparameters (SB3's tuned preset),
deeprl with ``DQN("CartPole-v1")`` (its shipped CartPole-v1 preset, picked automatically).  Every
2,000 env steps both pause for a 20-episode deterministic evaluation on the same start states;
a run is solved when that mean return reaches 475.  The time to solve is training wall time only:
the evaluations are timed separately and subtracted (both are reported).

    .venv/bin/python benchmarks/dqn_time_to_solve.py                  # seeds 0 1 2
    .venv/bin/python benchmarks/dqn_time_to_solve.py --seeds 0 1 2 3 4 --json results/solve.json

A run stops when solved, or at ``--max-steps`` (default 100,000 for both).  The exploration
schedule always follows each preset's own budget (SB3 zoo: 50k steps; deeprl:
``agent.config.total_steps``): the run first learns for that budget, and if it has not solved by
then it continues (a second ``learn`` call) at the final ε up to ``--max-steps``.

Each training runs in its own fresh Python process (this script with ``--worker``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any, Callable

import _common as C

EVAL_EVERY = 2_000
SOLVED_AT = 475.0


class Tracker:
    """Evaluations, their time, and the training time between them, across learn() calls."""

    def __init__(self, max_steps: int):
        self.max_steps = max_steps
        self.evals: list[dict[str, Any]] = []
        self.eval_s = 0.0        # time spent evaluating, all evaluations during learn()
        self.learn_s = 0.0       # wall time of the finished learn() calls, evaluations included
        self.solved_at: dict[str, Any] | None = None
        self._t0: float | None = None

    def learn(self, fn: Callable[[], Any]) -> None:
        self._t0 = time.perf_counter()
        try:
            fn()
        finally:
            self.learn_s += time.perf_counter() - self._t0
            self._t0 = None

    def train_s(self) -> float:
        """Training time so far: learn() wall time minus evaluation time."""
        running = time.perf_counter() - self._t0 if self._t0 is not None else 0.0
        return self.learn_s + running - self.eval_s

    def evaluate(self, step: int, run_eval: Callable[[], dict[str, Any]], during_learn: bool = True) -> None:
        train_s = self.train_s()
        t = time.perf_counter()
        result = run_eval()
        dt = time.perf_counter() - t
        if during_learn:
            self.eval_s += dt
        self.evals.append({"step": step, "train_s": train_s, "eval_s": dt, "mean_return": result["mean_return"],
                           "std_return": result["std_return"], "returns": result["returns"]})
        if self.solved_at is None and result["mean_return"] >= SOLVED_AT:
            self.solved_at = self.evals[-1]

    def at_step(self, step: int, run_eval: Callable[[], dict[str, Any]]) -> bool:
        """The callback body shared by both libraries: evaluate on the grid; False = stop."""
        if step % EVAL_EVERY == 0 and (not self.evals or self.evals[-1]["step"] != step):
            self.evaluate(step, run_eval)
        return self.solved_at is None and step < self.max_steps

    def should_continue(self, step: int) -> bool:
        return self.solved_at is None and step < self.max_steps

    def result(self, library: str, seed: int, env_steps: int, gradient_steps: int, budget: int,
               run_eval: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if not self.evals or self.evals[-1]["step"] != env_steps:  # final evaluation, after training
            self.evaluate(env_steps, run_eval, during_learn=False)
        solved = self.solved_at
        return {"library": library, "seed": seed, "solved": solved is not None,
                "steps_to_solve": solved["step"] if solved else None,
                "train_s_to_solve": solved["train_s"] if solved else None,
                "train_s": self.learn_s - self.eval_s, "eval_s": self.eval_s, "learn_wall_s": self.learn_s,
                "env_steps": env_steps, "gradient_steps": gradient_steps, "budget": budget,
                "max_steps": self.max_steps, "final_eval": self.evals[-1], "evals": self.evals}


# ------------------------------------------------------------------------------ workers
def worker_sb3(seed: int, max_steps: int, device: str) -> dict:
    import torch
    torch.set_num_threads(C.TORCH_THREADS)  # what deeprl does for MLPs; SB3 leaves torch's default
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    tracker = Tracker(max_steps)

    class EvalEvery(BaseCallback):
        """Called by SB3 after every env step."""

        def _on_step(self) -> bool:
            return tracker.at_step(self.num_timesteps, lambda: C.sb3_evaluate(self.model, seed))

    model = DQN("MlpPolicy", C.ENV_ID, seed=seed, device=device, verbose=0, **C.SB3_ZOO)
    callback = EvalEvery()
    budget = C.SB3_ZOO_STEPS
    tracker.learn(lambda: model.learn(total_timesteps=budget, callback=callback, progress_bar=False))
    if tracker.should_continue(model.num_timesteps):
        tracker.learn(lambda: model.learn(total_timesteps=max_steps - model.num_timesteps, callback=callback,
                                          reset_num_timesteps=False, progress_bar=False))
    out = tracker.result("sb3", seed, int(model.num_timesteps), int(model._n_updates), budget,
                         lambda: C.sb3_evaluate(model, seed))
    return {**out, "versions": C.versions("sb3"), "settings": {**C.SB3_ZOO, "n_timesteps": budget}}


def worker_deeprl(seed: int, max_steps: int, device: str) -> dict:
    import dataclasses

    from deeprl import DQN

    tracker = Tracker(max_steps)
    # the shipped CartPole-v1 preset; log_interval makes the callback fire every EVAL_EVERY steps.
    # eval_freq / checkpoint_freq are inert without a run_dir; set to 0 to say so.
    agent = DQN(C.ENV_ID, seed=seed, device=device, log_interval=EVAL_EVERY, eval_freq=0, checkpoint_freq=0)
    budget = agent.config.total_steps

    def callback(a: Any) -> bool | None:
        keep_going = tracker.at_step(a.num_timesteps, lambda: a.evaluate(C.EVAL_EPISODES))
        return None if keep_going else False

    tracker.learn(lambda: agent.learn(callback=callback, progress=False))
    if tracker.should_continue(agent.num_timesteps):
        tracker.learn(lambda: agent.learn(max_steps - agent.num_timesteps, callback=callback, progress=False))
    out = tracker.result("deeprl", seed, int(agent.num_timesteps), int(agent.updates), budget,
                         lambda: agent.evaluate(C.EVAL_EPISODES))
    return {**out, "versions": C.versions("deeprl"), "eval_seeding_matches": C.deeprl_eval_seeding_matches(),
            "settings": dataclasses.asdict(agent.config)}


# ------------------------------------------------------------------------------ parent
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds to run (default: 0 1 2)")
    p.add_argument("--max-steps", type=int, default=100_000,
                   help=f"stop unsolved runs here, both libraries (default: 100000; a multiple of {EVAL_EVERY})")
    p.add_argument("--device", default="cpu", help="torch device for both libraries (default: cpu)")
    p.add_argument("--json", metavar="PATH", help="also write every result to this JSON file")
    p.add_argument("--worker", choices=["sb3", "deeprl"], help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.max_steps < EVAL_EVERY or args.max_steps % EVAL_EVERY:
        p.error(f"--max-steps must be a positive multiple of {EVAL_EVERY} (the evaluation interval)")

    if args.worker:
        work = worker_sb3 if args.worker == "sb3" else worker_deeprl
        C.emit(work(args.seed, args.max_steps, args.device))
        return

    C.log(f"dqn_time_to_solve: {C.ENV_ID}, seeds {args.seeds}, max steps {args.max_steps}, device {args.device}")
    runs = []
    for i, seed in enumerate(args.seeds):
        for library in C.run_order(i):
            runs.append(C.run_worker(__file__, library, ["--seed", str(seed), "--max-steps", str(args.max_steps),
                                                         "--device", args.device]))
    report(args, runs)


def report(args: argparse.Namespace, runs: list[dict]) -> None:
    by = {(r["library"], r["seed"]): r for r in runs}
    name = {"sb3": "SB3", "deeprl": "deeprl"}
    rows = []
    for seed in args.seeds:
        for lib in ("sb3", "deeprl"):
            r = by[(lib, seed)]
            f = r["final_eval"]
            rows.append([str(seed), name[lib],
                         str(r["steps_to_solve"]) if r["solved"] else "not solved",
                         f"{r['train_s_to_solve']:.2f}" if r["solved"] else "not solved",
                         f"{r['train_s']:.2f}", f"{r['eval_s']:.2f}", str(len(r["evals"])), str(r["env_steps"]),
                         f"{C.pm(f['mean_return'], f['std_return'])} @ {f['step']}"])
    both = [s for s in args.seeds if by[("sb3", s)]["solved"] and by[("deeprl", s)]["solved"]]
    ratios = [by[("sb3", s)]["train_s_to_solve"] / by[("deeprl", s)]["train_s_to_solve"] for s in both]
    threads = {r["library"]: r["versions"]["torch_threads"] for r in runs}
    sb3_v, drl_v = by[("sb3", args.seeds[0])]["versions"], by[("deeprl", args.seeds[0])]["versions"]

    print(f"DQN {C.ENV_ID}, time to solve (20-episode deterministic eval mean >= {SOLVED_AT:g}, "
          f"checked every {EVAL_EVERY} env steps), each library's own preset, max {args.max_steps} steps, "
          f"device {args.device}")
    print(f"stable-baselines3 {sb3_v['stable_baselines3']} (rl-zoo preset) vs deeprl {drl_v['deeprl']} "
          f"(shipped CartPole-v1 preset), torch {sb3_v['torch']}, torch threads: SB3 {threads['sb3']}, "
          f"deeprl {threads['deeprl']}")
    print(f"machine: {C.machine()['processor']}, {C.machine()['cpu_count']} CPUs, {C.machine()['platform']}")
    print("train s = learn() wall time minus evaluation time; eval s = time in the evaluations during learn()\n")
    print(C.table(["seed", "library", "steps to solve", "train s to solve", "train s total", "eval s",
                   "evals", "env steps", "final eval mean ± std @ step"], rows))
    print()
    for lib in ("sb3", "deeprl"):
        solved = [by[(lib, s)] for s in args.seeds if by[(lib, s)]["solved"]]
        if solved:
            print(f"{name[lib]}: solved {len(solved)}/{len(args.seeds)}; median "
                  f"{statistics.median(r['steps_to_solve'] for r in solved):.0f} steps, "
                  f"{statistics.median(r['train_s_to_solve'] for r in solved):.2f} s training")
        else:
            print(f"{name[lib]}: solved 0/{len(args.seeds)}")
    median_ratio = statistics.median(ratios) if ratios else None
    if ratios:
        print(f"\nmedian time-to-solve ratio SB3 / deeprl: {median_ratio:.2f}x  "
              f"(over the {len(both)} seed(s) both solved; per seed: "
              + ", ".join(f"{s}: {x:.2f}" for s, x in zip(both, ratios)) + ")")
    else:
        print("\nmedian time-to-solve ratio SB3 / deeprl: n/a (no seed was solved by both libraries)")
    if not all(r.get("eval_seeding_matches", True) for r in runs):
        print("WARNING: deeprl's evaluation seeding changed; update benchmarks/_common.py to match it")

    C.write_json(args.json, {"benchmark": "dqn_time_to_solve", "env": C.ENV_ID, "seeds": args.seeds,
                             "max_steps": args.max_steps, "eval_every": EVAL_EVERY, "solved_at": SOLVED_AT,
                             "device": args.device, "machine": C.machine(),
                             "median_ratio_sb3_over_deeprl": median_ratio,
                             "ratio_per_seed": dict(zip(map(str, both), ratios)), "runs": runs})


if __name__ == "__main__":
    sys.exit(main())
