"""Sample efficiency: the world-model agent against model-free agents at equal environment steps.

The lecture's promise for world models is fewer interactions with the environment.  This script
trains each agent with its own deeprl preset on the same task for the same number of env steps,
evaluates every ``--eval-every`` steps (10 deterministic episodes; evaluation time is not counted
as training time), and reports return against env steps, multi-seed, with the training seconds
of each run.  It writes a PNG of the curves (against env steps, and below against training
seconds) and, with ``--json``, every number.

    .venv/bin/python benchmarks/worldmodel_sample_efficiency.py --tasks cartpole pendulum --seeds 0 1
    nice -n 19 .venv/bin/python benchmarks/worldmodel_sample_efficiency.py --tasks pendulum --agents dreamer worldmodel ppo --steps 10000 --seeds 0  # issue 27
    .venv/bin/python benchmarks/worldmodel_sample_efficiency.py --tasks pixel-cartpole --seeds 0
    .venv/bin/python benchmarks/worldmodel_sample_efficiency.py --tasks minatar-breakout --seeds 0 1
    .venv/bin/python benchmarks/worldmodel_sample_efficiency.py --report a.json b.json --json ab.json  # merge
    .venv/bin/python benchmarks/worldmodel_sample_efficiency.py --tasks cartpole --steps 2000 --eval-every 1000  # check

Every training runs in its own fresh Python process, one after the other.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import _common as C

# task -> env id, extra settings every agent gets, default budget, and which agents run
TASKS: dict[str, dict[str, Any]] = {
    "cartpole": dict(env="CartPole-v1", settings={}, steps=20_000,
                     agents=["worldmodel", "dreamer", "ppo", "dqn", "a2c"]),
    "pendulum": dict(env="Pendulum-v1", settings={}, steps=20_000, agents=["worldmodel", "dreamer", "ppo", "a2c"]),
    # one 64x64 grey frame holds no velocity: two stacked frames do
    "pixel-cartpole": dict(env="CartPole-v1", settings=dict(pixels=64, grayscale=True, frame_stack=2),
                           steps=20_000, agents=["worldmodel", "dreamer", "ppo", "dqn"]),
    # MinAtar: 10x10 binary grids, the small image task a 2-core CPU can afford for every agent
    "minatar-breakout": dict(env="MinAtar/Breakout-v1", settings={}, steps=10_000,
                             agents=["worldmodel", "dreamer", "ppo", "dqn"]),
}
EVAL_EPISODES = 10
EVALS_PER_RUN = 20  # with --steps preset: each run's evaluation grid, spread over its own budget
# return at which a task counts as solved, for "time to stay solved" (Gymnasium's, or the field's)
THRESHOLDS = {"CartPole-v1": 475.0, "Pendulum-v1": -200.0}


def worker(task: str, agent_name: str, seed: int, steps: int, eval_every: int, extra: dict[str, str]) -> dict[str, Any]:
    import deeprl
    from deeprl.config import resolve_config

    spec = TASKS[task]
    cls = deeprl.ALGORITHMS[agent_name]
    if steps == 0:  # --steps preset: the agent's own budget (its preset for the env, or its default)
        steps = resolve_config(cls.config_cls, agent_name, spec["env"], overrides=[spec["settings"], extra]).total_steps
        eval_every = max(eval_every, steps // EVALS_PER_RUN)
    agent = cls(spec["env"], seed=seed, total_steps=steps, eval_freq=0, checkpoint_freq=0, log_interval=eval_every,
                **spec["settings"], **extra)
    curve: list[dict[str, Any]] = []
    eval_s = eval_cpu = 0.0
    t0, cpu0 = time.perf_counter(), time.process_time()

    def evaluate(a: Any) -> None:
        nonlocal eval_s, eval_cpu
        if curve and curve[-1]["step"] == a.num_timesteps:
            return
        e0, c0 = time.perf_counter(), time.process_time()
        result = a.evaluate(EVAL_EPISODES)
        eval_s += time.perf_counter() - e0
        eval_cpu += time.process_time() - c0
        curve.append({"step": a.num_timesteps, "mean_return": result["mean_return"],
                      "std_return": result["std_return"], "train_s": round(time.perf_counter() - t0 - eval_s, 2),
                      # CPU seconds of this process, evaluation included: on a shared machine the
                      # wall clock also counts the time other processes took
                      "cpu_s": round(time.process_time() - cpu0, 2),
                      # ... and without the evaluations: the training's own CPU time
                      "train_cpu_s": round(time.process_time() - cpu0 - eval_cpu, 2)})

    agent.learn(steps, progress=False, callback=evaluate)
    evaluate(agent)
    agent.close()
    return {"task": task, "agent": agent_name, "seed": seed, "env": spec["env"], "settings": spec["settings"],
            "env_steps": int(agent.num_timesteps), "train_s": curve[-1]["train_s"], "eval_s": round(eval_s, 2),
            "curve": curve, "config": deeprl.config.config_to_dict(agent.config),
            "versions": C.versions("deeprl")}


def report(runs: list[dict[str, Any]], eval_every: int) -> str:
    out = []
    for task in dict.fromkeys(r["task"] for r in runs):
        task_runs = [r for r in runs if r["task"] == task]
        agents = list(dict.fromkeys(r["agent"] for r in task_runs))
        # agents that collect whole rollouts evaluate a little past each multiple: bucket by the multiple
        grid = lambda step: step // eval_every * eval_every  # noqa: E731
        steps = sorted({grid(p["step"]) for r in task_runs for p in r["curve"]})
        header = ["env steps", *agents]
        rows = []
        for s in steps:
            row = [f"{s:,}"]
            for a in agents:
                vals = [p["mean_return"] for r in task_runs if r["agent"] == a for p in r["curve"]
                        if grid(p["step"]) == s]
                row.append(f"{statistics.mean(vals):.1f}" + (f" [{min(vals):.0f}, {max(vals):.0f}]" if len(vals) > 1 else "")
                           if vals else "")
            rows.append(row)
        seeds = sorted({r["seed"] for r in task_runs})
        out.append(f"\n== {task} ({task_runs[0]['env']}{', ' + str(task_runs[0]['settings']) if task_runs[0]['settings'] else ''}), "
                   f"seeds {seeds}: mean evaluation return (10 episodes) [min, max over seeds]")
        out.append(C.table(header, rows))
        out.append("training seconds (evaluation excluded), mean over seeds: " + ", ".join(
            f"{a} {statistics.mean(r['train_s'] for r in task_runs if r['agent'] == a):.0f} s" for a in agents))
        threshold = THRESHOLDS.get(task_runs[0]["env"])
        if threshold is not None:
            out.append(f"time to stay solved (every later evaluation and the final one >= {threshold:g}), "
                       "median over the seeds that got there:")
            rows = []
            for a in agents:
                stays = [stays_solved(r["curve"], threshold) for r in task_runs if r["agent"] == a]
                got = [x for x in stays if x is not None]
                med = (lambda k: f"{statistics.median(x[k] for x in got):,.0f}" if got else "-")  # noqa: E731
                rows.append([a, f"{len(got)} of {len(stays)}", med("step"), med("train_s"), med("train_cpu_s")])
            out.append(C.table(["agent", "seeds solved", "env steps", "wall s", "CPU s"], rows))
    return "\n".join(out)


def stays_solved(curve: list[dict[str, Any]], threshold: float) -> dict[str, Any] | None:
    """The first evaluation from which this one and every later one is at or above ``threshold``."""
    first = None
    for point in curve:
        if point["mean_return"] < threshold:
            first = None
        elif first is None:
            first = point
    if first is None:
        return None
    return {"step": first["step"], "train_s": first["train_s"],
            "train_cpu_s": first.get("train_cpu_s", first.get("cpu_s", float("nan")))}


def plot(runs: list[dict[str, Any]], path: str, clock: str = "wall") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(r["task"] for r in runs))
    colors = {a: f"C{i}" for i, a in enumerate(dict.fromkeys(r["agent"] for r in runs))}  # one per agent, every panel
    # top row: return against env steps; bottom row: the same runs against training seconds
    fig, axes = plt.subplots(2, len(tasks), figsize=(5.2 * len(tasks), 7.2), squeeze=False)
    for ax, task in zip(axes[1], tasks):
        for agent in dict.fromkeys(r["agent"] for r in runs if r["task"] == task):
            curves = [r["curve"] for r in runs if r["task"] == task and r["agent"] == agent]
            n = min(len(c) for c in curves)  # the same evaluations of every seed, averaged
            key = "train_s" if clock == "wall" else "train_cpu_s"
            ax.plot([statistics.mean(c[i].get(key, c[i]["train_s"]) for c in curves) for i in range(n)],
                    [statistics.mean(c[i]["mean_return"] for c in curves) for i in range(n)], marker="o", ms=3,
                    color=colors[agent], label=agent)
        ax.set_xscale("log")
        ax.set_xlabel("training seconds, log scale (" + ("wall clock" if clock == "wall" else "CPU time")
                      + ", evaluations excluded)")
        ax.set_ylabel("evaluation return")
        ax.legend(fontsize=8)
    for ax, task in zip(axes[0], tasks):
        task_runs = [r for r in runs if r["task"] == task]
        for agent in dict.fromkeys(r["agent"] for r in task_runs):
            curves = [r["curve"] for r in task_runs if r["agent"] == agent]
            steps = sorted({p["step"] for c in curves for p in c})
            by_step = [[p["mean_return"] for c in curves for p in c if p["step"] == s] for s in steps]
            mean = [statistics.mean(v) for v in by_step]
            key = "train_s" if clock == "wall" else "train_cpu_s"
            secs = statistics.mean(r["curve"][-1].get(key, r["train_s"]) for r in task_runs if r["agent"] == agent)
            line, = ax.plot(steps, mean, marker="o", ms=3, color=colors[agent],
                            label=f"{agent} ({secs:.0f} s{'' if clock == 'wall' else ' CPU'} per run)")
            if len(curves) > 1:
                ax.fill_between(steps, [min(v) for v in by_step], [max(v) for v in by_step], alpha=0.15,
                                color=line.get_color())
        ax.set_title(f"{task}: {task_runs[0]['env']}", fontsize=10)
        budgets = [r["env_steps"] for r in task_runs]
        if max(budgets) > 10 * min(budgets):  # agents on their own budgets: 10k and 400k steps side by side
            ax.set_xscale("log")
        ax.set_xlabel("environment steps" + (", log scale" if ax.get_xscale() == "log" else ""))
        ax.set_ylabel("evaluation return")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    C.log(f"wrote {path}")


def results(runs: list[dict[str, Any]], eval_every: int) -> dict[str, Any]:
    """What ``--json`` writes: the machine and every run."""
    return {"machine": C.machine(), "eval_every": eval_every, "runs": runs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=["cartpole", "pendulum"], choices=list(TASKS))
    p.add_argument("--agents", nargs="+", help="only these agents (default: each task's list)")
    p.add_argument("--set", nargs="+", default=[], metavar="AGENT:KEY=VALUE",
                   help="extra settings for one agent, e.g. dreamer:replay_ratio=0.1")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--steps", type=lambda v: 0 if v == "preset" else int(v),
                   help="env steps per run (default: the task's budget); 'preset': each agent its own preset's "
                        f"budget, evaluated {EVALS_PER_RUN} times over it (at least every --eval-every steps)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="the lower plots' time axis: wall clock, or each run's CPU time (fairer on a shared machine)")
    p.add_argument("--eval-every", type=int, default=2_000)
    p.add_argument("--plot", default="sample_efficiency.png")
    p.add_argument("--json")
    p.add_argument("--report", nargs="+", metavar="JSON",
                   help="train nothing: report and plot the runs of these --json files together (with --json, "
                        "write them as one file)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--task", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    extra: dict[str, dict[str, str]] = {}
    for item in args.set:
        agent, _, assignment = item.partition(":")
        key, _, value = assignment.partition("=")
        extra.setdefault(agent, {})[key] = value
    if args.worker:
        C.emit(worker(args.task, args.worker, args.seed, args.steps, args.eval_every, extra.get(args.worker, {})))
        return
    if args.report:
        runs = [r for path in args.report for r in json.loads(Path(path).read_text())["runs"]]
        runs.sort(key=lambda r: (list(TASKS).index(r["task"]), r["seed"]))
        C.write_json(args.json, results(runs, args.eval_every))
        print(report(runs, args.eval_every))
        plot(runs, args.plot, args.clock)
        return
    runs = []
    for task in args.tasks:
        spec = TASKS[task]
        steps = spec["steps"] if args.steps is None else args.steps
        for seed in args.seeds:
            for agent in args.agents or spec["agents"]:
                if agent not in spec["agents"]:
                    continue
                sets = [f"{agent}:{k}={v}" for k, v in extra.get(agent, {}).items()]
                runs.append(C.run_worker(__file__, agent, ["--task", task, "--seed", str(seed), "--steps",
                                                           str(steps), "--eval-every", str(args.eval_every),
                                                           *(["--set", *sets] if sets else [])]))
                C.log(f"    {task} {agent} seed {seed}: final {runs[-1]['curve'][-1]['mean_return']:.1f} "
                      f"in {runs[-1]['train_s']:.0f} s")
                # after every run, so a long benchmark that is stopped keeps what it finished
                C.write_json(args.json, results(runs, args.eval_every))
    print(f"World model vs model-free agents at equal env steps; machine {C.machine()['processor']}, "
          f"{C.machine()['cpu_count']} CPUs; each agent with its deeprl preset for the env")
    print(report(runs, args.eval_every))
    plot(runs, args.plot, args.clock)


if __name__ == "__main__":
    sys.exit(main())
