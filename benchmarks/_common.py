"""What both benchmark scripts share: the SB3 preset, a matched evaluation, worker processes, tables.

The parent process of a benchmark imports neither torch nor either library: every training run
happens in a fresh worker subprocess (``python benchmarks/<script>.py --worker sb3|deeprl ...``),
which prints one result line, ``MARKER + json``, on stdout.  The parent collects those lines.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ENV_ID = "CartPole-v1"
REPO = Path(__file__).resolve().parent.parent
MARKER = "@@BENCH_RESULT@@ "
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
TORCH_THREADS = 1  # deeprl's default for MLP policies (torch_threads=0 picks 1); SB3 gets the same

# rl-baselines3-zoo's tuned DQN hyperparameters for CartPole-v1 (hyperparams/dqn.yml), i.e. SB3's
# CartPole preset.  Everything not named here keeps SB3's DQN default: tau=1 (hard target copy),
# max_grad_norm=10, Huber (smooth L1) loss, no double Q, Adam, exploration_initial_eps=1.
SB3_ZOO_STEPS = 50_000
SB3_ZOO = dict(
    learning_rate=2.3e-3,
    batch_size=64,
    buffer_size=100_000,
    learning_starts=1_000,
    gamma=0.99,
    target_update_interval=10,
    train_freq=256,
    gradient_steps=128,
    exploration_fraction=0.16,
    exploration_final_eps=0.04,
    policy_kwargs=dict(net_arch=[256, 256]),
)

# Evaluation: 20 deterministic episodes, the way deeprl's Algorithm.evaluate does it, reproduced for
# SB3 so both libraries play exactly the same 20 start states (deeprl/evaluation.py,
# deeprl/envs/vector.py).  The deeprl worker checks that these still match deeprl's own code and
# the parent warns when they do not.
EVAL_EPISODES = 20
EVAL_MAX_ENVS = 8                # deeprl.evaluation.evaluate: num_envs = min(episodes, 8)
EVAL_SEED_OFFSET = 1_000_003     # deeprl.evaluation.EVAL_SEED_OFFSET


def episode_seed(seed: int, env_index: int, episode: int) -> int:
    """Reset seed of episode ``episode`` of sub-env ``env_index`` (deeprl reseeds every episode)."""
    import numpy as np
    return int(np.random.SeedSequence([seed, env_index, episode]).generate_state(1)[0])


def deeprl_eval_seeding_matches() -> bool:
    """In the deeprl worker: do the constants above still describe deeprl's evaluation?"""
    import inspect

    import deeprl.evaluation as ev
    from deeprl.envs import vector
    try:
        same_seed = vector.episode_seed(7, 3, 11) == episode_seed(7, 3, 11)
        src = inspect.getsource(ev.evaluate)
    except (AttributeError, OSError, TypeError):
        return False
    return (getattr(ev, "EVAL_SEED_OFFSET", None) == EVAL_SEED_OFFSET and same_seed
            and f"min(episodes, {EVAL_MAX_ENVS})" in src)


def sb3_evaluate(model: Any, seed: int, episodes: int = EVAL_EPISODES) -> dict[str, Any]:
    """``evaluate_policy(model, ..., deterministic=True)`` on the start states deeprl evaluates on.

    deeprl evaluates on ``min(episodes, 8)`` envs; sub-env ``i`` resets with seed
    ``episode_seed(seed + EVAL_SEED_OFFSET, i, k)`` before its ``k``-th episode and owes
    ``episodes // n + (i < episodes % n)`` episodes.  SB3's evaluate_policy gives sub-env ``j``
    a quota of ``(episodes + j) // n`` episodes, so sub-env ``j`` here plays deeprl's sub-env
    ``n - 1 - j``: every seeded start state is played by both, and no other.
    """
    import gymnasium as gym
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv

    class SeededResets(gym.Wrapper):
        def __init__(self, env: gym.Env, base_seed: int, index: int):
            super().__init__(env)
            self.base_seed, self.index, self.episode = base_seed, index, 0

        def reset(self, *, seed: int | None = None, options: dict | None = None):
            s = episode_seed(self.base_seed, self.index, self.episode)
            self.episode += 1
            return self.env.reset(seed=s, options=options)

    n = min(episodes, EVAL_MAX_ENVS)
    base = seed + EVAL_SEED_OFFSET

    def maker(index: int):
        return lambda: Monitor(SeededResets(gym.make(ENV_ID), base, index))

    venv = DummyVecEnv([maker(n - 1 - j) for j in range(n)])
    try:
        returns, lengths = evaluate_policy(model, venv, n_eval_episodes=episodes, deterministic=True,
                                           return_episode_rewards=True)
    finally:
        venv.close()
    return eval_summary([float(r) for r in returns], [int(n) for n in lengths])


def eval_summary(returns: list[float], lengths: list[int]) -> dict[str, Any]:
    return {"mean_return": statistics.fmean(returns), "std_return": statistics.pstdev(returns),
            "episodes": len(returns), "mean_length": statistics.fmean(lengths), "returns": returns}


def deeprl_eval_summary(result: dict[str, Any]) -> dict[str, Any]:
    """deeprl's evaluate() dict reduced to the keys eval_summary gives."""
    return {k: result[k] for k in ("mean_return", "std_return", "episodes", "mean_length", "returns")}


def versions(library: str) -> dict[str, Any]:
    import torch
    out = {"python": platform.python_version(), "torch": torch.__version__,
           "torch_threads": torch.get_num_threads()}
    if library == "sb3":
        import stable_baselines3
        out["stable_baselines3"] = stable_baselines3.__version__
    else:
        import deeprl
        out["deeprl"] = deeprl.__version__
        out["deeprl_path"] = str(Path(deeprl.__file__).parent)
    return out


# ------------------------------------------------------------------------------ worker processes
def emit(result: dict[str, Any]) -> None:
    """The worker's answer: one marked JSON line on stdout."""
    sys.stdout.write(MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()


def worker_thread_env() -> dict[str, str]:
    """One thread in every native pool (OpenMP, MKL, OpenBLAS) unless the caller set otherwise:
    idle OpenMP workers spin, and workers that run side by side would starve each other."""
    return {k: os.environ.get(k, "1") for k in THREAD_ENV_VARS}


def worker_process_env() -> dict[str, str]:
    """A worker's environment: this one, with the checkout's deeprl first on the path (benchmark
    the deeprl of this checkout, whatever else is installed) and one thread per native pool."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.update(worker_thread_env())
    return env


def run_worker(script: str, library: str, args: list[str]) -> dict[str, Any]:
    """Run one training in a fresh interpreter and return its result dict."""
    cmd = [sys.executable, str(Path(script).resolve()), "--worker", library, *args]
    env = worker_process_env()
    log(f"  running {library} {' '.join(args)} ...")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-6000:])
        raise SystemExit(f"worker failed (exit {proc.returncode}): {' '.join(cmd)}")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER):
            result = json.loads(line[len(MARKER):])
            result["process_s"] = round(time.perf_counter() - t0, 2)
            return result
    sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-6000:])
    raise SystemExit(f"worker printed no result: {' '.join(cmd)}")


def run_order(seed_index: int) -> list[str]:
    """Alternate which library goes first, so slow drift of the machine favours neither."""
    return ["sb3", "deeprl"] if seed_index % 2 == 0 else ["deeprl", "sb3"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ reporting
def machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "executable": sys.executable,
            "thread_env": worker_thread_env()}


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda row: "  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def pm(mean: float, std: float) -> str:
    return f"{mean:.1f} ± {std:.1f}"


def write_json(path: str | None, data: dict[str, Any]) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, indent=2) + "\n")
        log(f"wrote {path}")
