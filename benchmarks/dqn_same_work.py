"""DQN on CartPole-v1, identical work in Stable-Baselines3 and deeprl: which trains faster?

Both libraries train with rl-baselines3-zoo's tuned CartPole hyperparameters for the same number
of env steps and the same number of gradient steps; the script times ``learn()`` alone (no
construction, no evaluation), then evaluates each final policy for 20 deterministic episodes on
the same start states, and prints the ratio SB3 time / deeprl time.

    .venv/bin/python benchmarks/dqn_same_work.py                      # seed 0, 50k steps
    .venv/bin/python benchmarks/dqn_same_work.py --seeds 0 1 2 --json results/same_work.json

Each training runs in its own fresh Python process (this script with ``--worker``), one after the
other, so neither library's imports, threads or allocator state touch the other's run.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time

import _common as C

# The zoo's hyperparameters under deeprl's names (DQNConfig), plus what SB3's DQN does by default.
DEEPRL_SETTINGS = dict(
    lr=2.3e-3,
    batch_size=64,
    buffer_size=100_000,
    learning_starts=1_000,
    gamma=0.99,
    target_update_interval=10,
    train_freq=256,
    gradient_steps=128,
    eps_start=1.0,
    eps_fraction=0.16,
    eps_end=0.04,
    net_arch=[256, 256],
    # SB3's DQN: no double Q, Huber loss, gradient norm clipped at 10, hard target copies
    double_q=False,
    loss="huber",
    max_grad_norm=10.0,
    tau=1.0,
    dueling=False,
    n_step=1,
    prioritized=False,
    # no evaluation or checkpoints inside learn() (without a run_dir deeprl writes nothing anyway)
    eval_freq=0,
    checkpoint_freq=0,
)


# ------------------------------------------------------------------------------ workers
def worker_sb3(seed: int, steps: int, device: str) -> dict:
    import torch
    torch.set_num_threads(C.TORCH_THREADS)  # what deeprl does for MLPs; SB3 leaves torch's default
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    class StopAt(BaseCallback):
        """End learn() at exactly ``steps`` env steps.  SB3 collects train_freq (256) steps per
        rollout, so learn(50_000) alone would run to 50_176 steps and one more training phase;
        stopping mid-rollout skips that phase, leaving the same env and gradient steps as deeprl.
        SB3 calls a callback every env step anyway (a no-op one when none is given)."""

        def _on_step(self) -> bool:
            return self.num_timesteps < steps

    model = DQN("MlpPolicy", C.ENV_ID, seed=seed, device=device, verbose=0, **C.SB3_ZOO)
    callback = StopAt()
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, callback=callback, progress_bar=False)
    wall = time.perf_counter() - t0
    evaluation = C.sb3_evaluate(model, seed)
    return {"library": "sb3", "seed": seed, "env_steps": int(model.num_timesteps),
            "gradient_steps": int(model._n_updates), "learn_s": wall, "eval": evaluation,
            "versions": C.versions("sb3"), "settings": {**C.SB3_ZOO, "device": device}}


def worker_deeprl(seed: int, steps: int, device: str) -> dict:
    from deeprl import DQN

    agent = DQN(C.ENV_ID, preset=None, seed=seed, total_steps=steps, device=device, **DEEPRL_SETTINGS)
    t0 = time.perf_counter()
    agent.learn(steps, progress=False)
    wall = time.perf_counter() - t0
    evaluation = C.deeprl_eval_summary(agent.evaluate(C.EVAL_EPISODES))
    return {"library": "deeprl", "seed": seed, "env_steps": int(agent.num_timesteps),
            "gradient_steps": int(agent.updates), "learn_s": wall, "eval": evaluation,
            "versions": C.versions("deeprl"), "eval_seeding_matches": C.deeprl_eval_seeding_matches(),
            "settings": dataclasses.asdict(agent.config)}


# ------------------------------------------------------------------------------ parent
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds to run (default: 0)")
    p.add_argument("--steps", type=int, default=C.SB3_ZOO_STEPS, help="env steps per run (default: 50000)")
    p.add_argument("--device", default="cpu", help="torch device for both libraries (default: cpu)")
    p.add_argument("--json", metavar="PATH", help="also write every result to this JSON file")
    p.add_argument("--worker", choices=["sb3", "deeprl"], help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        work = worker_sb3 if args.worker == "sb3" else worker_deeprl
        C.emit(work(args.seed, args.steps, args.device))
        return

    C.log(f"dqn_same_work: {C.ENV_ID}, {args.steps} steps, seeds {args.seeds}, device {args.device}")
    runs = []
    for i, seed in enumerate(args.seeds):
        for library in C.run_order(i):
            runs.append(C.run_worker(__file__, library,
                                     ["--seed", str(seed), "--steps", str(args.steps), "--device", args.device]))
    report(args, runs)


def report(args: argparse.Namespace, runs: list[dict]) -> None:
    by = {(r["library"], r["seed"]): r for r in runs}
    name = {"sb3": "SB3", "deeprl": "deeprl"}
    rows = []
    for seed in args.seeds:
        for lib in ("sb3", "deeprl"):
            r = by[(lib, seed)]
            rows.append([str(seed), name[lib], f"{r['learn_s']:.2f}", f"{r['env_steps'] / r['learn_s']:.0f}",
                         str(r["env_steps"]), str(r["gradient_steps"]),
                         C.pm(r["eval"]["mean_return"], r["eval"]["std_return"])])
    ratios = [by[("sb3", s)]["learn_s"] / by[("deeprl", s)]["learn_s"] for s in args.seeds]
    threads = {r["library"]: r["versions"]["torch_threads"] for r in runs}
    sb3_v, drl_v = by[("sb3", args.seeds[0])]["versions"], by[("deeprl", args.seeds[0])]["versions"]

    print(f"DQN {C.ENV_ID}, identical work: rl-zoo hyperparameters, {args.steps} env steps, 1 env, "
          f"device {args.device}")
    print(f"stable-baselines3 {sb3_v['stable_baselines3']} vs deeprl {drl_v['deeprl']}, torch {sb3_v['torch']}, "
          f"torch threads: SB3 {threads['sb3']}, deeprl {threads['deeprl']}")
    print(f"machine: {C.machine()['processor']}, {C.machine()['cpu_count']} CPUs, {C.machine()['platform']}")
    print("wall time = learn() only; final return = 20 deterministic episodes, same start states for both\n")
    print(C.table(["seed", "library", "wall time s", "env steps/s", "env steps", "grad steps",
                   "final return mean ± std"], rows))
    if len(args.seeds) > 1:
        print()
        summary = []
        for lib in ("sb3", "deeprl"):
            rs = [by[(lib, s)] for s in args.seeds]
            walls = [r["learn_s"] for r in rs]
            summary.append([name[lib], f"{statistics.fmean(walls):.2f} ± {statistics.pstdev(walls):.2f}",
                            f"{sum(r['env_steps'] for r in rs) / sum(walls):.0f}",
                            C.pm(statistics.fmean(r["eval"]["mean_return"] for r in rs),
                                 statistics.pstdev([r["eval"]["mean_return"] for r in rs]))])
        print(C.table(["library", "wall time s (mean ± std over seeds)", "env steps/s",
                       "final return (mean ± std of seed means)"], summary))
    total_ratio = sum(by[("sb3", s)]["learn_s"] for s in args.seeds) / sum(by[("deeprl", s)]["learn_s"]
                                                                         for s in args.seeds)
    print(f"\nSB3 time / deeprl time: {total_ratio:.2f}x"
          + (f"  (per seed: {', '.join(f'{x:.2f}' for x in ratios)}; median {statistics.median(ratios):.2f})"
             if len(ratios) > 1 else ""))
    work_differs = [s for s in args.seeds if (by[("sb3", s)]["env_steps"], by[("sb3", s)]["gradient_steps"])
                    != (by[("deeprl", s)]["env_steps"], by[("deeprl", s)]["gradient_steps"])]
    if work_differs:
        print(f"WARNING: env or gradient steps differ between the libraries for seeds {work_differs}")
    if not all(r.get("eval_seeding_matches", True) for r in runs):
        print("WARNING: deeprl's evaluation seeding changed; update benchmarks/_common.py to match it")

    C.write_json(args.json, {"benchmark": "dqn_same_work", "env": C.ENV_ID, "steps": args.steps,
                             "seeds": args.seeds, "device": args.device, "machine": C.machine(),
                             "ratio_sb3_over_deeprl": total_ratio, "ratio_per_seed": ratios, "runs": runs})


if __name__ == "__main__":
    sys.exit(main())
