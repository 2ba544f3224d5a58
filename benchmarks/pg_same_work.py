"""A2C and PPO on CartPole-v1, identical work in Stable-Baselines3 and deeprl: which steps faster?

Both libraries train the same agent (same settings, same ReLU 64-64 separate actor and critic, same
optimizer) for the same number of env steps and gradient steps, both in torch with autograd and
``torch.optim``.  The script times ``learn()`` alone
(no construction, no evaluation), reports env steps per second, evaluates each final policy for 20
deterministic episodes on the same start states, and prints the ratio deeprl steps/s / SB3 steps/s.
It also measures the bare environment: 8 ``gymnasium.make`` CartPoles stepped one by one in plain
Python with random actions, the ceiling for any library that steps Gymnasium envs one at a time.

    .venv/bin/python benchmarks/pg_same_work.py                       # A2C 500k + PPO 100k, seed 0
    .venv/bin/python benchmarks/pg_same_work.py --algo ppo --seeds 0 1 2 --json results/pg.json

Each training runs in its own fresh Python process (this script with ``--worker``), one after the
other, so neither library's imports, threads or allocator state touch the other's run.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from typing import Any

import _common as C

NUM_ENVS = 8
NET_ARCH = [64, 64]  # per network: the actor and the critic each get their own 64-64 ReLU MLP

# Per algorithm: SB3's settings (its own names) and deeprl's (its names), the same values.  SB3 gets
# policy_kwargs=dict(net_arch=dict(pi=[64, 64], vf=[64, 64]), activation_fn=torch.nn.ReLU) on top:
# SB3 2.9.2's default for MLP policies is the same separate 64-64 networks but with Tanh
# (ActorCriticPolicy: activation_fn=nn.Tanh, net_arch=dict(pi=[64, 64], vf=[64, 64])), and deeprl's
# default is ReLU (``activation="relu"``).  Both initialise orthogonally with the same gains (sqrt 2 hidden, 0.01 policy head,
# 1 value head) and zero biases.
ALGOS: dict[str, dict[str, Any]] = {
    # SB3's A2C defaults, with 8 envs: RMSprop(alpha 0.99, eps 1e-5), one gradient step per 8x5 rollout
    "a2c": dict(
        title="A2C, SB3's defaults (8 envs x 5 steps, RMSprop)",
        default_steps=500_000,
        n_steps=5, epochs=1, minibatch=NUM_ENVS * 5,
        sb3=dict(n_steps=5, learning_rate=7e-4, use_rms_prop=True, rms_prop_eps=1e-5, gamma=0.99,
                 gae_lambda=1.0, ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5, normalize_advantage=False),
        deeprl=dict(num_envs=NUM_ENVS, n_steps=5, lr=7e-4, optimizer="rmsprop", optim_eps=1e-5, gamma=0.99,
                    estimator="gae", gae_lambda=1.0, ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5,
                    normalize_advantage=False),
    ),
    # rl-baselines3-zoo's PPO CartPole-v1 settings, but a constant lr and clip range (the zoo anneals
    # both linearly; deeprl has no schedules).  8x32 = 256 steps per rollout = one minibatch, 20 epochs.
    "ppo": dict(
        title="PPO, rl-zoo settings with constant lr and clip (8 envs x 32 steps, 20 epochs, Adam)",
        default_steps=100_000,
        n_steps=32, epochs=20, minibatch=256,
        sb3=dict(n_steps=32, batch_size=256, n_epochs=20, learning_rate=1e-3, clip_range=0.2, gamma=0.98,
                 gae_lambda=0.8, ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5, normalize_advantage=True),
        deeprl=dict(num_envs=NUM_ENVS, n_steps=32, minibatch_size=256, n_epochs=20, lr=1e-3, optimizer="adam",
                    optim_eps=1e-5, clip_range=0.2, gamma=0.98, estimator="gae", gae_lambda=0.8, ent_coef=0.0,
                    vf_coef=0.5, max_grad_norm=0.5, normalize_advantage=True),
    ),
}
DEEPRL_COMMON = dict(net_arch=NET_ARCH, shared_torso=False, eval_freq=0, checkpoint_freq=0, log_interval=50_000)
SB3_POLICY = dict(net_arch=dict(pi=NET_ARCH, vf=NET_ARCH), activation_fn="torch.nn.ReLU")  # JSON-safe form


def expected_gradient_steps(algo: str, env_steps: int) -> int:
    a = ALGOS[algo]
    rollout = NUM_ENVS * a["n_steps"]
    return (env_steps // rollout) * a["epochs"] * math.ceil(rollout / a["minibatch"])


# ------------------------------------------------------------------------------ worker helpers
def optimizer_info(opt: Any) -> dict[str, Any]:
    """Class, hyperparameters and the number of steps it took (from its per-parameter state)."""
    group = opt.param_groups[0]
    steps = [int(s["step"]) for s in opt.state.values() if "step" in s]
    return {"class": type(opt).__name__, "lr": group["lr"], "eps": group["eps"], "alpha": group.get("alpha"),
            "betas": list(group["betas"]) if "betas" in group else None, "momentum": group.get("momentum"),
            "centered": group.get("centered"), "weight_decay": group.get("weight_decay"),
            "steps": max(steps) if steps else 0}


def n_params(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def gymnasium_version() -> str:
    import gymnasium
    return gymnasium.__version__


# ------------------------------------------------------------------------------ workers
def worker_sb3(algo: str, seed: int, steps: int, device: str) -> dict:
    import torch
    torch.set_num_threads(C.TORCH_THREADS)  # what deeprl does for MLPs; SB3 leaves torch's default
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv

    settings = ALGOS[algo]["sb3"]
    policy_kwargs = dict(net_arch=dict(pi=list(NET_ARCH), vf=list(NET_ARCH)), activation_fn=torch.nn.ReLU)
    env = make_vec_env(C.ENV_ID, n_envs=NUM_ENVS, seed=seed, vec_env_cls=DummyVecEnv)
    cls = A2C if algo == "a2c" else PPO
    model = cls("MlpPolicy", env, seed=seed, device=device, verbose=0, policy_kwargs=policy_kwargs, **settings)
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps, progress_bar=False)
    wall = time.perf_counter() - t0
    evaluation = C.sb3_evaluate(model, seed)
    opt = optimizer_info(model.policy.optimizer)
    env.close()
    return {"library": "sb3", "algo": algo, "seed": seed, "env_steps": int(model.num_timesteps),
            "gradient_steps": opt["steps"], "learn_s": wall, "eval": evaluation, "optimizer": opt,
            "n_params": n_params(model.policy), "activation": model.policy.activation_fn.__name__,
            "versions": {**C.versions("sb3"), "gymnasium": gymnasium_version()},
            "settings": {**settings, "n_envs": NUM_ENVS, "policy_kwargs": SB3_POLICY, "device": device}}


def worker_deeprl(algo: str, seed: int, steps: int, device: str) -> dict:
    import deeprl

    cls = deeprl.A2C if algo == "a2c" else deeprl.PPO
    agent = cls(C.ENV_ID, preset=None, seed=seed, total_steps=steps, device=device,
                **ALGOS[algo]["deeprl"], **DEEPRL_COMMON)
    t0 = time.perf_counter()
    agent.learn(steps, progress=False)
    wall = time.perf_counter() - t0
    evaluation = C.deeprl_eval_summary(agent.evaluate(C.EVAL_EPISODES))
    opt = optimizer_info(agent.optimizer)
    agent.close()
    return {"library": "deeprl", "algo": algo, "seed": seed, "env_steps": int(agent.num_timesteps),
            "gradient_steps": opt["steps"], "learn_s": wall, "eval": evaluation, "optimizer": opt,
            "n_params": n_params(agent.net), "activation": "ReLU",
            "versions": {**C.versions("deeprl"), "gymnasium": gymnasium_version()},
            "eval_seeding_matches": C.deeprl_eval_seeding_matches(),
            "settings": dataclasses.asdict(agent.config)}


def worker_env(seed: int, steps: int) -> dict:
    """The bare environment: NUM_ENVS ``gymnasium.make`` CartPoles, random actions, a plain loop."""
    import gymnasium as gym
    import numpy as np

    envs = [gym.make(C.ENV_ID) for _ in range(NUM_ENVS)]
    for i, e in enumerate(envs):
        e.reset(seed=seed + i)
    rounds = max(1, steps // NUM_ENVS)
    actions = np.random.default_rng(seed).integers(0, 2, size=(rounds, NUM_ENVS)).tolist()  # drawn untimed
    episodes = 0
    t0 = time.perf_counter()
    for row in actions:
        for e, a in zip(envs, row):
            _, _, terminated, truncated, _ = e.step(a)
            if terminated or truncated:
                e.reset()
                episodes += 1
    wall = time.perf_counter() - t0
    for e in envs:
        e.close()
    import platform
    return {"library": "env", "env_steps": rounds * NUM_ENVS, "num_envs": NUM_ENVS, "wall_s": wall,
            "steps_per_s": rounds * NUM_ENVS / wall, "episodes": episodes,
            "versions": {"python": platform.python_version(), "gymnasium": gym.__version__, "numpy": np.__version__}}


# ------------------------------------------------------------------------------ parent
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algo", choices=["a2c", "ppo", "both"], default="both", help="which algorithm (default: both)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds to run (default: 0)")
    p.add_argument("--steps", type=int, help="env steps per run, for every algorithm run "
                                             "(default: 500000 for A2C, 100000 for PPO)")
    p.add_argument("--env-steps", type=int, default=100_000,
                   help="steps of the bare-environment loop (default: 100000; 0 skips it)")
    p.add_argument("--device", default="cpu", help="torch device for both libraries (default: cpu)")
    p.add_argument("--json", metavar="PATH", help="also write every result to this JSON file")
    p.add_argument("--worker", choices=["sb3", "deeprl", "env"], help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker == "env":
        C.emit(worker_env(args.seed, args.steps))
        return
    if args.worker:
        work = worker_sb3 if args.worker == "sb3" else worker_deeprl
        C.emit(work(args.algo, args.seed, args.steps, args.device))
        return

    algos = ["a2c", "ppo"] if args.algo == "both" else [args.algo]
    budgets = {a: args.steps or ALGOS[a]["default_steps"] for a in algos}
    C.log(f"pg_same_work: {C.ENV_ID}, {', '.join(f'{a} {budgets[a]} steps' for a in algos)}, "
          f"seeds {args.seeds}, device {args.device}")
    bare = None
    if args.env_steps > 0:
        bare = C.run_worker(__file__, "env", ["--seed", str(args.seeds[0]), "--steps", str(args.env_steps)])
    results: dict[str, list[dict]] = {}
    for algo in algos:
        runs = results[algo] = []
        for i, seed in enumerate(args.seeds):
            for library in C.run_order(i):
                runs.append(C.run_worker(__file__, library, ["--algo", algo, "--seed", str(seed), "--steps",
                                                             str(budgets[algo]), "--device", args.device]))
    report(args, algos, budgets, bare, results)


def sps(r: dict) -> float:
    return r["env_steps"] / r["learn_s"]


def report(args: argparse.Namespace, algos: list[str], budgets: dict[str, int], bare: dict | None,
           results: dict[str, list[dict]]) -> None:
    name = {"sb3": "SB3", "deeprl": "deeprl"}
    first = results[algos[0]]
    sb3_v = next(r["versions"] for r in first if r["library"] == "sb3")
    drl_v = next(r["versions"] for r in first if r["library"] == "deeprl")
    m = C.machine()
    print(f"A2C and PPO on {C.ENV_ID}, identical work, {NUM_ENVS} envs, device {args.device}")
    print(f"stable-baselines3 {sb3_v['stable_baselines3']} vs deeprl {drl_v['deeprl']}, torch {sb3_v['torch']}, "
          f"gymnasium {sb3_v['gymnasium']}")
    print(f"machine: {m['processor']}, {m['cpu_count']} CPUs, {m['platform']}")
    print("both: ReLU 64-64 actor and 64-64 critic, separate; wall time = learn() only; "
          "final return = 20 deterministic episodes, same start states for both")
    if bare is not None:
        print(f"\nbare env: {bare['num_envs']} gymnasium.make({C.ENV_ID!r}) stepped one by one with random actions "
              f"in plain Python: {bare['steps_per_s']:,.0f} env steps/s ({bare['env_steps']} steps, "
              f"{bare['wall_s']:.2f} s)")

    summary: dict[str, Any] = {}
    warnings: list[str] = []
    for algo in algos:
        runs = results[algo]
        by = {(r["library"], r["seed"]): r for r in runs}
        print(f"\n== {ALGOS[algo]['title']}, {budgets[algo]} env steps")
        rows = []
        for seed in args.seeds:
            for lib in ("sb3", "deeprl"):
                r = by[(lib, seed)]
                row = [str(seed), name[lib], f"{r['learn_s']:.2f}", f"{sps(r):,.0f}"]
                if bare is not None:
                    row.append(f"{100 * sps(r) / bare['steps_per_s']:.1f}%")
                row += [str(r["env_steps"]), str(r["gradient_steps"]), str(r["versions"]["torch_threads"]),
                        C.pm(r["eval"]["mean_return"], r["eval"]["std_return"])]
                rows.append(row)
        header = ["seed", "library", "wall time s", "env steps/s", *(["of bare env"] if bare else []),
                  "env steps", "grad steps", "threads", "final return mean ± std"]
        print(C.table(header, rows))
        if len(args.seeds) > 1:
            srows = []
            for lib in ("sb3", "deeprl"):
                rs = [by[(lib, s)] for s in args.seeds]
                walls = [r["learn_s"] for r in rs]
                srows.append([name[lib], f"{statistics.fmean(walls):.2f} ± {statistics.pstdev(walls):.2f}",
                              f"{sum(r['env_steps'] for r in rs) / sum(walls):,.0f}",
                              C.pm(statistics.fmean(r["eval"]["mean_return"] for r in rs),
                                   statistics.pstdev([r["eval"]["mean_return"] for r in rs]))])
            print()
            print(C.table(["library", "wall time s (mean ± std over seeds)", "env steps/s",
                           "final return (mean ± std of seed means)"], srows))
        total = {lib: sum(by[(lib, s)]["env_steps"] for s in args.seeds) / sum(by[(lib, s)]["learn_s"]
                                                                              for s in args.seeds)
                 for lib in ("sb3", "deeprl")}
        ratio = total["deeprl"] / total["sb3"]
        per_seed = [sps(by[("deeprl", s)]) / sps(by[("sb3", s)]) for s in args.seeds]
        print(f"\n{algo.upper()} throughput, deeprl steps/s / SB3 steps/s: {ratio:.2f}x"
              + (f"  (per seed: {', '.join(f'{x:.2f}' for x in per_seed)}; median {statistics.median(per_seed):.2f})"
                 if len(per_seed) > 1 else ""))
        summary[algo] = {"steps": budgets[algo], "ratio_deeprl_over_sb3_sps": ratio, "ratio_per_seed": per_seed,
                         "sps": total, "runs": runs}

        for seed in args.seeds:
            s, d = by[("sb3", seed)], by[("deeprl", seed)]
            expected = expected_gradient_steps(algo, s["env_steps"])
            if (s["env_steps"], s["gradient_steps"]) != (d["env_steps"], d["gradient_steps"]) \
                    or s["gradient_steps"] != expected:
                warnings.append(f"{algo} seed {seed}: env or gradient steps differ (SB3 {s['env_steps']}/"
                                f"{s['gradient_steps']}, deeprl {d['env_steps']}/{d['gradient_steps']}, "
                                f"expected {expected} gradient steps)")
            if s["n_params"] != d["n_params"]:
                warnings.append(f"{algo} seed {seed}: network sizes differ (SB3 {s['n_params']} parameters, "
                                f"deeprl {d['n_params']})")
            keys = ("class", "lr", "eps", "alpha", "betas", "momentum", "centered", "weight_decay")
            diff = [k for k in keys if s["optimizer"][k] != d["optimizer"][k]]
            if diff:
                warnings.append(f"{algo} seed {seed}: optimizers differ in {diff}: "
                                f"SB3 {s['optimizer']}, deeprl {d['optimizer']}")
            if s["activation"] != d["activation"]:
                warnings.append(f"{algo} seed {seed}: activations differ ({s['activation']} vs {d['activation']})")
        if not all(r.get("eval_seeding_matches", True) for r in runs):
            warnings.append("deeprl's evaluation seeding changed; update benchmarks/_common.py to match it")
        bad_threads = {r["library"] for r in runs if r["versions"]["torch_threads"] != C.TORCH_THREADS}
        if bad_threads:
            warnings.append(f"{algo}: torch threads other than {C.TORCH_THREADS} in {sorted(bad_threads)}")
    for w in dict.fromkeys(warnings):
        print(f"WARNING: {w}")

    C.write_json(args.json, {"benchmark": "pg_same_work", "env": C.ENV_ID, "num_envs": NUM_ENVS,
                             "seeds": args.seeds, "device": args.device, "machine": m, "bare_env": bare,
                             "algos": summary, "warnings": list(dict.fromkeys(warnings))})


if __name__ == "__main__":
    sys.exit(main())
