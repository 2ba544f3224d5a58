"""Train any deeprl algorithm for a fixed wall-clock budget and report its throughput.

For the questions a step budget cannot answer: how many environment steps and gradient steps per
second an algorithm sustains on this machine (a GPU, say) at a fixed model size and replay ratio,
and where a task stands after the minutes you can give it::

    python benchmarks/timed_run.py --algo dreamer --env ALE/Pong-v5 --preset M --seconds 150 \\
        --set replay_ratio=0.25 --json dreamer_pong.json
    python benchmarks/timed_run.py --algo a2c --env ALE/Pong-v5 --seconds 120

Each log interval adds a row (wall seconds, env steps, gradient steps, recent training return).
Throughput is measured from the first row after warm-up (Dreamer's prefill, whose steps take no
gradient steps) to the last, so start-up costs and the random prefill do not flatter it.  For
Dreamer, ``--grad-steps K`` then times K bare ``train_step()`` calls (sampling, world model,
imagination, actor and critic, synchronized on a GPU): the gradient-step rate with no
environment in the loop.  A final deterministic evaluation reports the policy's return.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as C  # noqa: E402  (benchmarks/, the script's own folder)


def synchronize(device: Any) -> None:
    import torch
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(rows: list[dict[str, Any]], key: str) -> float | None:
    """Per-second rate of ``key`` between the first row after warm-up and the last row."""
    warm = [r for r in rows if r["gradient_steps"] > 0] or rows
    first, last = warm[0], rows[-1]
    seconds = last["seconds"] - first["seconds"]
    return (last[key] - first[key]) / seconds if seconds > 0 else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algo", required=True)
    p.add_argument("--env", required=True)
    p.add_argument("--preset", default="auto")
    p.add_argument("--seconds", type=float, default=120.0, help="wall-clock training budget")
    p.add_argument("--grad-steps", type=int, default=20, help="bare train_step() calls to time (Dreamer)")
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", help="write the rows and figures here")
    args = p.parse_args()

    import torch

    from deeprl import ALGORITHMS
    from deeprl.config import parse_assignments
    if args.algo not in ALGORITHMS:
        raise SystemExit(f"unknown algorithm {args.algo!r}; choose one of {', '.join(ALGORITHMS)}")
    settings = {"total_steps": 10**9, "eval_freq": 0, "checkpoint_freq": 0, **parse_assignments(args.set)}
    agent = ALGORITHMS[args.algo](args.env, preset=args.preset, **settings)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    def on_interval(a: Any) -> bool:
        synchronize(a.device)
        rows.append({"seconds": round(time.perf_counter() - t0, 3), "env_steps": a.num_timesteps,
                     "gradient_steps": int(getattr(a, "updates", 0)),
                     "episodes": a.episodes, "recent_return": a._recent_return()})
        print(json.dumps(rows[-1]), flush=True)
        return rows[-1]["seconds"] < args.seconds

    agent.learn(callback=on_interval, progress=False)
    result: dict[str, Any] = {
        "algo": args.algo, "env": args.env, "preset": args.preset, "settings": settings,
        "device": str(agent.device), "gpu": torch.cuda.get_device_name(agent.device) if agent.device.type == "cuda" else None,
        "versions": C.versions("deeprl"), "machine": C.machine(),
        "parameters": sum(p.numel() for m in agent._modules_by_name().values() for p in m.parameters())
        if hasattr(agent, "_modules_by_name") else None,
        "rows": rows, "env_steps_per_s": rate(rows, "env_steps"),
        "gradient_steps_per_s_in_loop": rate(rows, "gradient_steps") if hasattr(agent, "updates") else None,
    }
    if hasattr(agent, "train_step") and args.grad_steps > 0:
        agent.train_step()  # one untimed step: kernels chosen, caches warm
        synchronize(agent.device)
        start = time.perf_counter()
        for _ in range(args.grad_steps):
            agent.train_step()
        synchronize(agent.device)
        result["bare_gradient_steps_per_s"] = args.grad_steps / (time.perf_counter() - start)
    evaluation = agent.evaluate(args.eval_episodes)
    result["eval"] = {k: evaluation[k] for k in ("mean_return", "std_return", "episodes")}
    agent.close()
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
