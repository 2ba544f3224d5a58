"""Two speed levers the field uses, measured on this machine before deeprl adopts them.

    .venv/bin/python benchmarks/speed_levers.py                 # both parts
    .venv/bin/python benchmarks/speed_levers.py --part compile  # torch.compile of the update
    .venv/bin/python benchmarks/speed_levers.py --part envs --seconds 20   # Atari env stepping

``compile``: for the DQN CartPole preset's network and batch, and for A2C on CartPole-v1 and
LunarLander-v3 with their presets, one gradient step runs with the agent's own loss computation
eager and wrapped in ``torch.compile``, on the same batches, in alternating blocks (so a machine
that drifts favours neither).  Printed: the first compiled call (compile time), and milliseconds
per gradient step for both.  The compiled loss is the same code: autograd differentiates it and
``torch.optim`` steps it.

``envs``: agent steps per second of ``ALE/Pong-v5`` with 8 envs and random actions: deeprl's
in-process ``VecEnv``, its subprocess ``AsyncVecEnv``, and EnvPool (``pip install
envpool==1.2.5``; skipped when it is not installed) with the same preprocessing (no-op starts,
frame skip 4 with max-pooling, 84x84 grey, 4 stacked frames, episodic life, clipped rewards,
sticky actions 0.25 as ALE v5).

Each part runs in a fresh subprocess with torch on 1 thread and, unless ``--warm-cache``, an empty
compile cache (so the first call pays what it pays on a new machine); ``--json PATH`` writes the
figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MARKER, REPO, emit, log, machine, table, worker_process_env, write_json  # noqa: E402


def _time_updates(update, inputs: list, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        update(inputs[i % len(inputs)])
    return (time.perf_counter() - start) / n * 1e3


def compile_case(name: str, make_update, inputs: list, n: int, blocks: int) -> dict:
    """``make_update(wrap)`` returns one update whose loss computation is ``wrap``ped: identity
    (eager) or ``torch.compile``.  The optimizer step stays eager (torch cannot compile the
    multi-tensor RMSprop step on a CPU)."""
    import torch

    eager = make_update(lambda f: f)
    compiled = make_update(torch.compile)
    start = time.perf_counter()
    compiled(inputs[0])
    compile_s = time.perf_counter() - start
    eager_ms, compiled_ms = [], []
    for _ in range(blocks):
        eager_ms.append(_time_updates(eager, inputs, n))
        compiled_ms.append(_time_updates(compiled, inputs, n))
    return {"case": name, "compile_s": compile_s, "eager_ms": min(eager_ms), "compiled_ms": min(compiled_ms),
            "updates_per_block": n, "blocks": blocks}


def dqn_update(agent):
    """DQN.update's gradient step with its ``losses`` (forward, target, Huber) wrapped."""
    from deeprl.optim import grad_step

    def make(wrap):
        loss_fn = wrap(lambda batch: agent.losses(batch)[0]["td"])
        return lambda batch: grad_step(agent.optimizer, loss_fn(batch), agent.config.max_grad_norm)
    return make


def pg_update(agent):
    """PolicyGradient.update with the actor's forward and ``losses()`` wrapped (the critic's
    forward and the estimators stay as they are)."""
    from deeprl.optim import grad_step, weighted_loss

    def make(wrap):
        loss_fn = wrap(lambda obs, v, actions, psi, target: weighted_loss(
            agent.losses(agent.net.policy(obs), v, actions, psi, target), agent.loss_scales))

        def update(rollout):
            values, psi, target = agent._begin_update(rollout, grad=True)
            grad_step(agent.optimizer, loss_fn(rollout.obs, values, rollout.actions, psi, target),
                      agent.config.max_grad_norm)
        return update
    return make


def worker_compile(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from deeprl import A2C, DQN

    torch.set_num_threads(1)
    results = []
    dqn = DQN("CartPole-v1", seed=0, total_steps=3_000, learning_starts=500, eval_freq=0)  # the preset's net
    dqn.learn(3_000)
    rng = np.random.default_rng(0)
    batches = [dqn.buffer.sample(dqn.config.batch_size, rng) for _ in range(32)]
    results.append(compile_case("dqn CartPole-v1 (256-256, batch 64)", dqn_update(dqn), batches, args.updates,
                                args.blocks))
    for env in ("CartPole-v1", "LunarLander-v3"):
        a2c = A2C(env, seed=0, eval_freq=0)
        rollouts = [a2c.collect() for _ in range(8)]
        c = a2c.config
        results.append(compile_case(f"a2c {env} ({c.num_envs} envs x {c.n_steps} steps)", pg_update(a2c), rollouts,
                                    args.updates, args.blocks))
    emit({"compile": results, "torch": torch.__version__})


def worker_envs(args: argparse.Namespace) -> None:
    import numpy as np

    from deeprl.envs.vector import make_vec_env

    n_envs, rng = 8, np.random.default_rng(0)
    results = []
    for mode in ("sync", "async"):
        envs = make_vec_env("ALE/Pong-v5", n_envs, 0, vectorization=mode)
        envs.reset()
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            envs.step(rng.integers(0, 6, n_envs))
            steps += n_envs
        results.append({"backend": f"deeprl {mode}", "steps_per_s": steps / (time.perf_counter() - start)})
        envs.close()
    try:
        import envpool
    except ImportError:
        results.append({"backend": "envpool", "steps_per_s": None, "note": "not installed"})
    else:
        env = envpool.make("Pong-v5", env_type="gymnasium", num_envs=n_envs, batch_size=n_envs, num_threads=2,
                           seed=0, episodic_life=True, reward_clip=True, repeat_action_probability=0.25,
                           noop_max=30, frame_skip=4, stack_num=4, img_height=84, img_width=84)
        env.reset()
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            env.step(rng.integers(0, 6, n_envs))
            steps += n_envs
        results.append({"backend": f"envpool {envpool.__version__} (2 threads)",
                        "steps_per_s": steps / (time.perf_counter() - start)})
        env.close()
    emit({"envs": results})


def run(part: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--worker", part, "--updates", str(args.updates), "--blocks", str(args.blocks),
           "--seconds", str(args.seconds)]
    env = worker_process_env()
    if not args.warm_cache:  # the first compiled call pays what a new machine or torch version pays
        env["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="speed_levers_inductor_")
    log(f"running {part} in a fresh process")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER):])
    raise SystemExit(f"the {part} worker failed:\n{proc.stderr[-3000:]}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=["compile", "envs", "both"], default="both")
    p.add_argument("--updates", type=int, default=300, help="updates per timed block")
    p.add_argument("--blocks", type=int, default=3, help="alternating eager/compiled blocks (the best of each)")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds per env backend")
    p.add_argument("--warm-cache", action="store_true",
                   help="keep torch's compile cache (default: an empty one, so compile times are cold)")
    p.add_argument("--json")
    p.add_argument("--worker", choices=["compile", "envs"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker == "compile":
        return worker_compile(args)
    if args.worker == "envs":
        return worker_envs(args)
    out: dict = {"machine": machine()}
    if args.part in ("compile", "both"):
        out.update(run("compile", args))
        print(table(["update", "compile (first call)", "eager ms/update", "compiled ms/update", "eager / compiled"],
                    [[r["case"], f"{r['compile_s']:.1f} s", f"{r['eager_ms']:.2f}", f"{r['compiled_ms']:.2f}",
                      f"{r['eager_ms'] / r['compiled_ms']:.2f}x"] for r in out["compile"]]))
    if args.part in ("envs", "both"):
        out.update(run("envs", args))
        print(table(["ALE/Pong-v5, 8 envs", "agent steps/s"],
                    [[r["backend"], "-" if r["steps_per_s"] is None else f"{r['steps_per_s']:,.0f}"]
                     for r in out["envs"]]))
    write_json(args.json, out)


if __name__ == "__main__":
    main()
