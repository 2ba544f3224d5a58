"""deeprl's VecEnv or Gymnasium's SyncVectorEnv, both over EpisodeLog: what does each cost end to end?

    nice -n 19 .venv/bin/python benchmarks/vector_env_choice.py --reps 5 \
        --json benchmarks/results_vector_env_choice.json
    .venv/bin/python benchmarks/vector_env_choice.py --reps 1 --dqn-steps 2000 --a2c-steps 5000   # quick check

Since exact resume lives in a per-env wrapper (``deeprl.envs.episode_log.EpisodeLog``), any
vector env can step deeprl's envs.  Two candidates, behind the interface agents use
(``VecStep``, ``reset / step / state / restore / close``):

- ``deeprl``: deeprl's in-process ``VecEnv`` over the wrapped envs;
- ``gymnasium``: ``gymnasium.vector.SyncVectorEnv(..., autoreset_mode=SAME_STEP)`` over the same
  wrapped envs, its outputs turned into a ``VecStep`` (:class:`GymnasiumVecEnv` below: the final
  observations from ``info["final_obs"]``, the episodes from ``info["final_info"]["episode"]``).

Both give the same numbers (checked here before timing: same observations, rewards, episodes and
states); the issue keeps Gymnasium's when it costs under 5% of steps/s.

Timed: end-to-end training steps/s on CartPole-v1 (``learn()`` wall clock, envs made inside it,
no evaluation, no run directory) of DQN and A2C with their CartPole presets, each run in a
fresh worker process with torch on one thread; repetitions interleaved (which backend goes
first alternates); reported: the medians, and the median of the per-repetition costs.  Also
timed, to explain the difference: the env stepping alone (random actions) with 1 env (DQN's
preset) and 8 envs (A2C's).  Results and the decision: benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MARKER, REPO, emit, log, machine, table, worker_process_env, write_json  # noqa: E402

BACKENDS = ("deeprl", "gymnasium")
ENV_ID = "CartPole-v1"


class GymnasiumVecEnv:
    """Gymnasium's ``SyncVectorEnv`` (same-step autoreset) over ``EpisodeLog`` envs, behind
    deeprl's vector-env interface."""

    def __init__(self, env_fns: list, seed: int):
        import gymnasium as gym

        from deeprl.envs.episode_log import EpisodeLog

        fns = [lambda fn=fn, i=i: EpisodeLog(fn(), seed=seed, index=i) for i, fn in enumerate(env_fns)]
        self.vec = gym.vector.SyncVectorEnv(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
        self.num_envs = self.vec.num_envs
        self.single_observation_space = self.vec.single_observation_space
        self.single_action_space = self.vec.single_action_space

    def reset(self):
        return self.vec.reset()[0]

    def step(self, actions):
        import numpy as np

        from deeprl.envs.vector import VecStep

        obs, reward, terminated, truncated, info = self.vec.step(actions)
        next_obs, episodes = obs, []
        done = terminated | truncated
        if done.any():
            next_obs = obs.copy()
            for i in np.flatnonzero(done):
                next_obs[i] = info["final_obs"][i]
            final = info["final_info"]
            if "episode" in final:
                for i in np.flatnonzero(final["_episode"]):
                    episodes.append((int(i), float(final["episode"]["r"][i]), int(final["episode"]["l"][i])))
        return VecStep(obs=obs, next_obs=next_obs, reward=reward.astype(np.float32), terminated=terminated,
                       truncated=truncated, episodes=episodes)

    def state(self):
        return [env.state() for env in self.vec.envs]

    def restore(self, state):
        import numpy as np

        return np.stack([env.restore(s) for env, s in zip(self.vec.envs, state)])

    def close(self):
        self.vec.close()


def make_vec(backend: str, num_envs: int, seed: int):
    """``num_envs`` CartPoles stepped by ``backend``, as ``make_vec_env`` makes them."""
    from deeprl.envs.vector import _EnvFactory, make_vec_env

    if backend == "deeprl":
        return make_vec_env(ENV_ID, num_envs, seed)
    return GymnasiumVecEnv([_EnvFactory(ENV_ID, {"check": False}) for _ in range(num_envs)], seed)


def use_backend(backend: str) -> None:
    """Make the agents' ``make_vec_env`` build ``backend`` (agents call it once, in ``_open_envs``)."""
    if backend == "deeprl":
        return
    import deeprl.agents.base as base
    from deeprl.envs.make import make_env

    def make(env_id: str, num_envs: int, seed: int, *, vectorization: str = "sync", **kwargs: Any):
        from deeprl.envs.vector import _EnvFactory

        make_env(env_id, **kwargs).close()
        return GymnasiumVecEnv([_EnvFactory(env_id, {**kwargs, "check": False}) for _ in range(num_envs)], seed)
    base.make_vec_env = make


def check_same_numbers(num_envs: int, steps: int = 2000) -> None:
    """Both backends give identical steps, episodes and states (and restore each other's)."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = make_vec("deeprl", num_envs, 3), make_vec("gymnasium", num_envs, 3)
    assert np.array_equal(a.reset(), b.reset())
    for act in rng.integers(0, 2, size=(steps, num_envs)):
        s, t = a.step(act), b.step(act)
        for field in ("obs", "next_obs", "reward", "terminated", "truncated"):
            assert np.array_equal(getattr(s, field), getattr(t, field)), field
        assert s.episodes == t.episodes
    assert a.state() == b.state()
    c, d = make_vec("gymnasium", num_envs, 3), make_vec("deeprl", num_envs, 3)
    assert np.array_equal(c.restore(a.state()), s.obs) and np.array_equal(d.restore(b.state()), s.obs)
    for act in rng.integers(0, 2, size=(200, num_envs)):
        assert np.array_equal(a.step(act).obs, c.step(act).obs) and np.array_equal(b.step(act).obs, d.step(act).obs)
    for x in (a, b, c, d):
        x.close()


# ------------------------------------------------------------------------------ workers
def worker_train(algo: str, backend: str, steps: int, seed: int) -> None:
    import deeprl

    use_backend(backend)
    cls = {"dqn": deeprl.DQN, "a2c": deeprl.A2C}[algo]
    agent = cls(ENV_ID, total_steps=steps, eval_freq=0, checkpoint_freq=0, seed=seed)
    start = time.perf_counter()
    agent.learn(progress=False)
    seconds = time.perf_counter() - start
    assert type(agent.envs).__name__ == {"deeprl": "VecEnv", "gymnasium": "GymnasiumVecEnv"}[backend]
    emit({"algo": algo, "backend": backend, "steps": agent.num_timesteps, "seconds": seconds,
          "steps_per_s": agent.num_timesteps / seconds, "num_envs": agent.config.num_envs, "episodes": agent.episodes,
          "recent_return": agent._recent_return()})


def worker_envs(backend: str, num_envs: int, seconds: float) -> None:
    import numpy as np

    check_same_numbers(num_envs)
    envs = make_vec(backend, num_envs, 0)
    envs.reset()
    actions = np.random.default_rng(0).integers(0, 2, size=(4096, num_envs))
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for a in actions[:256]:
            envs.step(a)
        n += 256
    elapsed = time.perf_counter() - start
    envs.close()
    emit({"backend": backend, "num_envs": num_envs, "agent_steps_per_s": n * num_envs / elapsed,
          "us_per_vector_step": elapsed / n * 1e6})


# ------------------------------------------------------------------------------ parent
def summarize(out: dict) -> dict:
    """Per algorithm (and env-stepping case): the median steps/s of each backend, Gymnasium's cost
    from those medians, and the median of the per-repetition costs (each repetition ran the two
    back to back, so it is the figure least moved by other work on the machine)."""
    summary = {}
    cases = [("train", "steps_per_s", algo, {"algo": algo}) for algo in ("dqn", "a2c")]
    cases += [("envs", "agent_steps_per_s", f"envs_x{n}", {"num_envs": n}) for n in (1, 8)]
    for part, key, name, match in cases:
        rows = [r for r in out[part] if all(r[k] == v for k, v in match.items())]
        by = {(r["rep"], r["backend"]): r[key] for r in rows}
        d, g = (statistics.median(r[key] for r in rows if r["backend"] == b) for b in BACKENDS)
        reps = sorted({rep for rep, _ in by})
        paired = statistics.median(1 - by[(rep, "gymnasium")] / by[(rep, "deeprl")] for rep in reps)
        summary[name] = {"deeprl": d, "gymnasium": g, "gymnasium_cost": 1 - g / d, "gymnasium_cost_paired": paired,
                         "reps": len(reps)}
    return summary


def report(out: dict, reps: int) -> str:
    s = out["summary"]
    names = {"dqn": "DQN, end to end", "a2c": "A2C, end to end", "envs_x1": "env stepping only, 1 env",
             "envs_x8": "env stepping only, 8 envs"}
    rows = [[names[k], f"{v['deeprl']:,.0f}", f"{v['gymnasium']:,.0f}", f"{v['gymnasium_cost'] * 100:+.1f}%",
             f"{v['gymnasium_cost_paired'] * 100:+.1f}%"] for k, v in s.items()]
    keep = all(max(s[a]["gymnasium_cost"], s[a]["gymnasium_cost_paired"]) < 0.05 for a in ("dqn", "a2c"))
    return "\n".join([
        table([f"{ENV_ID}, {reps} reps", "VecEnv steps/s", "SyncVectorEnv steps/s", "cost (medians)",
               "cost (paired)"], rows),
        "decision: " + ("keep Gymnasium's SyncVectorEnv (it costs < 5%)" if keep
                        else "keep VecEnv as the thin stepper (Gymnasium's costs >= 5%)")])


def run(args: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--worker", *args]
    proc = subprocess.run(cmd, cwd=REPO, env=worker_process_env(), capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    raise SystemExit(f"worker {' '.join(args)} failed:\n{proc.stderr[-3000:]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=5, help="repetitions of every (algorithm, backend) run")
    p.add_argument("--dqn-steps", type=int, default=20_000)
    p.add_argument("--a2c-steps", type=int, default=200_000)
    p.add_argument("--env-seconds", type=float, default=5.0, help="seconds per env-stepping measurement")
    p.add_argument("--json")
    p.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "train":
            return worker_train(rest[0], rest[1], int(rest[2]), int(rest[3]))
        return worker_envs(rest[0], int(rest[1]), float(rest[2]))

    out: dict[str, Any] = {"machine": machine(), "command": " ".join(sys.argv), "train": [], "envs": []}
    steps = {"dqn": args.dqn_steps, "a2c": args.a2c_steps}
    for rep in range(args.reps):
        order = BACKENDS if rep % 2 == 0 else BACKENDS[::-1]
        for num_envs in (1, 8):
            for backend in order:
                r = run(["envs", backend, str(num_envs), str(args.env_seconds)])
                log(f"rep {rep}: envs x{num_envs} {backend}: {r['agent_steps_per_s']:,.0f} steps/s")
                out["envs"].append({"rep": rep, **r})
        for algo in ("dqn", "a2c"):
            for backend in order:
                r = run(["train", algo, backend, str(steps[algo]), str(rep)])
                log(f"rep {rep}: {algo} {backend}: {r['steps_per_s']:,.0f} steps/s ({r['seconds']:.1f} s)")
                out["train"].append({"rep": rep, **r})

    out["summary"] = summarize(out)
    print(report(out, args.reps))
    write_json(args.json, out)


if __name__ == "__main__":
    main()
