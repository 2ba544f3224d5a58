"""``deeprl train | eval | dream | plot | variance | presets | bench | sweep | export``: a thin layer over the API.

Every user error (bad env id, bad setting, bad checkpoint) ends as one line on stderr and exit
status 2; argparse's own usage errors exit 2 as well.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

DEFAULT_ALGO = "dqn"
DEFAULT_ENV = "CartPole-v1"


def _positive_int(text: str, most: int | None = None) -> int:
    """A count (--steps, --episodes, ...): an integer from 1 to ``most`` (a step count's 2**62 - 1),
    read exactly, never through float ("9007199254740993" stays itself; "1_000_000" and "1e6" are a million)."""
    from deeprl.config import MAX_STEPS, parse_int

    try:
        value = parse_int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= (most or MAX_STEPS):
        raise argparse.ArgumentTypeError(f"expected a positive integer of at most {most or '2**62 - 1'}, "
                                         f"got {text!r}")
    return value


def _seed_count(text: str) -> int:
    """--seeds: how many seeds a bench or a sweep runs (each a run of its own)."""
    return _positive_int(text, 10_000)


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a seed (an integer >= 0), got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a seed (an integer >= 0), got {text!r}")
    return value


def _local_modules(env_ids: Sequence[str]) -> None:
    """A ``module:Env-v0`` id typed on the command line may name a module in the current folder, as
    with ``python -m deeprl`` (never one named only by a file: resumes and models need --allow-import)."""
    if any(":" in e for e in env_ids) and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())


def _env_kwargs(items: Sequence[str]) -> dict:
    """``--env-kwargs is_slippery=false map_name=8x8`` -> ``{"is_slippery": False, "map_name": "8x8"}``."""
    import yaml

    from deeprl.config import parse_assignments
    from deeprl.errors import ConfigError

    out = {}
    for key, text in parse_assignments(items).items():
        try:
            out[key] = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            raise ConfigError(f"--env-kwargs {key}={text!r} is not a value (use numbers, true/false, text)") from None
    return out


def _parser() -> argparse.ArgumentParser:
    from deeprl.agents import ALGORITHMS
    from deeprl.version import __version__

    p = argparse.ArgumentParser(prog="deeprl", description="Deep reinforcement learning from the command line.")
    p.add_argument("--version", action="version", version=f"deeprl {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="train an agent (bare 'deeprl train': DQN on CartPole-v1)")
    t.add_argument("algo", nargs="?", default=None,
                   help=f"algorithm: {', '.join(ALGORITHMS)} (default {DEFAULT_ALGO})")
    t.add_argument("--env", help=f"Gymnasium id (default {DEFAULT_ENV})")
    t.add_argument("--seed", type=_seed)
    t.add_argument("--steps", type=_positive_int, help="environment steps to train for")
    t.add_argument("--out", help="run directory (default runs/ALGO-ENV-TIME)")
    t.add_argument("--preset", help="named preset (default: the one tuned for --env, if any)")
    t.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="override settings")
    t.add_argument("--env-kwargs", nargs="+", default=[], metavar="KEY=VALUE",
                   help="keyword arguments of gymnasium.make, e.g. is_slippery=false map_name=8x8 (saved with the "
                        "run: eval, --resume and load rebuild the same env)"),
    t.add_argument("--wrappers", nargs="+", default=[], metavar="PATH",
                   help="Gymnasium wrappers for every env made (training, evaluation, videos), in order, by import "
                        "path: gymnasium.wrappers.FlattenObservation, mymodule.MyWrapper or module:Name; each is "
                        "called with the env alone, no keyword arguments (subclass one to set them); saved with the run")
    t.add_argument("--resume", metavar="RUN", help="continue a stopped or killed run from its last checkpoint")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--allow-import", nargs="+", default=[], metavar="MODULE",
                   help="with --resume: let the run's 'module:Env-v0' id or wrappers import MODULE (never done unasked)")
    t.add_argument("--help-config", action="store_true", help="list every setting of ALGO and exit")

    e = sub.add_parser("eval", help="evaluate a trained agent")
    e.add_argument("run", help="run directory or saved .safetensors model")
    e.add_argument("--episodes", type=_positive_int, default=10)
    e.add_argument("--seed", type=_seed)
    e.add_argument("--best", action="store_true", help="the run's best evaluated model instead of its final one")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--video", nargs="?", const="", metavar="FILE",
                   help="write an MP4 of one episode (default RUN/videos/eval.mp4)")
    e.add_argument("--allow-import", nargs="+", default=[], metavar="MODULE",
                   help="let the model's 'module:Env-v0' id or wrappers import MODULE (never done unasked)")

    d = sub.add_parser("dream", help="video of a world model's dream beside the real episode (worldmodel, dreamer)")
    d.add_argument("run", help="run directory or saved .safetensors model of a world-model agent")
    d.add_argument("--out", help="MP4 path (default RUN/videos/dream.mp4)")
    d.add_argument("--steps", type=_positive_int, default=200, help="longest dream, in steps")
    d.add_argument("--seed", type=_seed, default=0, help="seed of the real episode's start state")
    d.add_argument("--policy", action="store_true",
                   help="let the agent act in its dream instead of replaying the real episode's actions")
    d.add_argument("--allow-import", nargs="+", default=[], metavar="MODULE",
                   help="let the model's 'module:Env-v0' id or wrappers import MODULE (never done unasked)")

    pl = sub.add_parser("plot", help="learning curves of runs as a PNG")
    pl.add_argument("runs", nargs="+")
    pl.add_argument("--out", default="plot.png")
    pl.add_argument("--metric", default="charts/episode_return")

    v = sub.add_parser("variance", help="gradient variance of REINFORCE, baseline, actor-critic, advantage (PNG)")
    v.add_argument("--env", default=DEFAULT_ENV)
    v.add_argument("--out", default="variance.png", help="figure path (default ./variance.png)")
    v.add_argument("--steps", type=_positive_int, default=20_000, help="training steps before measuring")
    v.add_argument("--batches", type=_positive_int, default=64, help="independent episodes per estimator")
    v.add_argument("--seed", type=_seed, default=0)
    v.add_argument("--run", help="measure at a trained policy-gradient run's parameters instead of training")

    b = sub.add_parser("bench", help="train presets over several seeds; IQM [95%% CI] of the final models")
    b.add_argument("--algos", nargs="+", default=[DEFAULT_ALGO], metavar="ALGO")
    b.add_argument("--ladder", nargs="+", metavar=("NAME", "RUNG"), help="a ladder's rungs (dqn, pg) in place of "
                   "--algos, all or the RUNGs named: each rung's IQM curve in one figure (presets/ladders.yaml)")
    b.add_argument("--envs", nargs="+", default=[DEFAULT_ENV], metavar="ENV")
    b.add_argument("--seeds", type=_seed_count, default=5, help="how many seeds (default 5)")
    b.add_argument("--first-seed", type=_seed, default=1000,
                   help="seeds run from here (default 1000: no preset was tuned on those)")
    b.add_argument("--steps", type=_positive_int, help="environment steps per run (default: each preset's)")
    b.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="override settings of every run")
    b.add_argument("--preset", help="a named preset for every run (deeprl presets) in place of each env's own")
    b.add_argument("--episodes", type=_positive_int, default=20, help="final evaluation episodes per run")
    b.add_argument("--workers", type=int, default=0, help="runs at once (default: one per CPU core)")
    b.add_argument("--backend", choices=["auto", "ray", "processes"], default="auto",
                   help="'auto': worker processes, or Ray with --address; 'ray' starts a local Ray cluster")
    b.add_argument("--address", help="join an existing Ray cluster ('auto' or ray://host:port)")
    b.add_argument("--out", required=True, help="folder for the run directories and the report; run again with "
                                                "the same settings, a bench continues the runs there")
    b.add_argument("--retrain", action="store_true",
                   help="delete the runs in --out trained with other settings and train them again (without it, "
                        "such a bench is refused)")

    sw = sub.add_parser("sweep", help="search settings over several seeds each, on Ray (local or a cluster)")
    sw.add_argument("algo", nargs="?", help="algorithm (not with --resume)")
    sw.add_argument("--env", default=DEFAULT_ENV)
    sw.add_argument("--space", nargs="+", default=[], metavar="NAME=KIND:ARGS",
                    help="searched settings: lr=loguniform:1e-4:3e-3 n_steps=choice:128,256 gamma=uniform:0.9:0.999 "
                         "batch_size=int:32:256")
    sw.add_argument("--trials", type=_positive_int, default=16, help="candidates to try (default 16)")
    sw.add_argument("--seeds", type=_seed_count, default=3, help="seeds per candidate (default 3)")
    sw.add_argument("--first-seed", type=_seed, default=0, help="seeds run from here (default 0)")
    sw.add_argument("--search", choices=["random", "grid", "optuna"], default="random")
    sw.add_argument("--search-seed", type=_seed, default=0, help="seed of the search itself")
    sw.add_argument("--steps", type=_positive_int, help="environment steps per run (default: the preset's)")
    sw.add_argument("--scheduler", choices=["none", "asha"], default="none",
                    help="'asha': judge candidates at rungs along the run and train only the best 1/eta on")
    sw.add_argument("--min-steps", type=_positive_int,
                    help="ASHA's first rung in env steps (default: the run's length / eta^2)")
    sw.add_argument("--eta", type=int, default=3, help="ASHA's reduction factor (default 3)")
    sw.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="fixed settings of every run")
    sw.add_argument("--episodes", type=_positive_int, default=20, help="final evaluation episodes per run")
    sw.add_argument("--workers", type=int, default=0, help="runs at once, one CPU each (default: every core)")
    sw.add_argument("--backend", choices=["ray", "processes"], default="ray",
                    help="'ray' (default): a local Ray cluster, or the one at --address; 'processes': no Ray")
    sw.add_argument("--address", help="join an existing Ray cluster ('auto' or ray://host:port); --out must be "
                                      "on storage every node sees")
    sw.add_argument("--out", help="folder for the sweep's state, run directories and report")
    sw.add_argument("--resume", metavar="DIR", help="continue the sweep in DIR")

    pr = sub.add_parser("presets", help="list the tuned presets")
    pr.add_argument("algo", nargs="?")

    x = sub.add_parser("export", help="the deterministic policy as an ONNX file (observations in, actions out), "
                                      "checked against predict")
    x.add_argument("run", help="run directory or saved .safetensors model")
    x.add_argument("--format", default="onnx", help="file format: onnx (the default)")
    x.add_argument("--out", metavar="FILE", help="default RUN/policy.onnx, or MODEL.onnx beside a model file")
    x.add_argument("--best", action="store_true", help="the run's best evaluated model instead of its final one")
    x.add_argument("--allow-import", nargs="+", default=[], metavar="MODULE",
                   help="let the model's 'module:Env-v0' id import MODULE (never done unasked)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from deeprl.errors import DeepRLError, Interrupted

    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if getattr(args, "allow_import", None):  # modules the user names here may sit in the current folder
        _local_modules([f"{module}:" for module in args.allow_import])
    try:
        commands = {"train": _train, "eval": _eval, "dream": _dream, "plot": _plot, "presets": _presets,
                    "variance": _variance, "export": _export, "bench": lambda a: _bench(a, argv),
                    "sweep": lambda a: _sweep(a, argv)}  # bench and sweep record the command line
        return commands[args.command](args)
    except DeepRLError as e:
        print(f"deeprl: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into a command that stopped reading (| head): not an error
        sys.stdout = open(os.devnull, "w")
        return 0
    except OSError as e:  # the machine's side: a full disk, a read-only folder, a missing path
        where = f" ({e.filename})" if e.filename else ""
        print(f"deeprl: error: {e.strerror or e}{where}; check the path, its permissions and free disk space",
              file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"deeprl: {e}", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("deeprl: interrupted", file=sys.stderr)
        return 130
    return 0


def _train(args: argparse.Namespace) -> int:
    from deeprl.agents import algorithm
    from deeprl.config import describe, parse_assignments, resolve_config
    from deeprl.errors import ConfigError
    from deeprl.run import RunDir, default_run_dir

    if args.resume:
        conflicting = [f"--{k}" for k in ("env", "seed", "preset", "out") if getattr(args, k)] + \
            (["--env-kwargs"] if args.env_kwargs else []) + (["--wrappers"] if args.wrappers else [])
        if conflicting or args.algo:
            raise ConfigError(f"--resume continues a run with its own settings; drop {', '.join(conflicting or ['ALGO'])}"
                              " (only --steps and --set may change)")
        algo_name, _ = RunDir(args.resume).read_config()
        cls = algorithm(algo_name)
        agent = cls.resume(args.resume, total_steps=args.steps, allow_import=args.allow_import,
                           settings=parse_assignments(args.set))
        print(f"resuming {args.resume} at step {agent.num_timesteps:,} of {agent.planned_steps:,}", file=sys.stderr)
        return _run(agent, Path(args.resume), args, resume=True)

    algo_name = args.algo or DEFAULT_ALGO
    cls = algorithm(algo_name)
    if args.help_config:
        print(f"settings of {algo_name} (use --set KEY=VALUE):\n{describe(cls.config_cls)}")
        return 0
    if args.allow_import:
        raise ConfigError("--allow-import is for --resume; a new run imports the module its --env names")
    env = DEFAULT_ENV if args.env is None else args.env
    _local_modules([env])
    cli: dict = {"env": env}
    if args.env_kwargs:
        cli["env_kwargs"] = _env_kwargs(args.env_kwargs)
    if args.wrappers:  # typed here: a wrapper's module may sit in the current folder, as an env's may
        _local_modules([f"{path}:" for path in args.wrappers])
        cli["wrappers"] = args.wrappers
    if args.seed is not None:
        cli["seed"] = args.seed
    if args.steps is not None:
        cli["total_steps"] = args.steps
    overrides = parse_assignments(args.set)
    clash = {"env", "seed", "total_steps", "env_kwargs", "wrappers"} & overrides.keys() & cli.keys()
    if clash:
        raise ConfigError(f"{', '.join(sorted(clash))} given both as a flag and in --set; give it once")
    config = resolve_config(cls.config_cls, algo_name, env, preset=args.preset or "auto", overrides=[overrides, cli])
    out = Path(args.out) if args.out else default_run_dir(algo_name, config.env)
    RunDir(out).check_target()
    if RunDir(out).exists():
        raise ConfigError(f"run directory {str(out)!r} already holds a run; resume it with "
                          f"'deeprl train --resume {out}' or choose another --out")
    agent = cls.from_config(config)
    print(f"training {algo_name} on {config.env} for {config.total_steps:,} steps -> {out}", file=sys.stderr)
    return _run(agent, out, args, resume=False)


def _run(agent, out: Path, args: argparse.Namespace, resume: bool) -> int:
    progress = False if args.no_progress else None
    try:
        if resume:
            agent.learn(progress=progress)
        else:
            agent.learn(run_dir=out, progress=progress)
    finally:
        agent.close()
    ev = agent.last_eval
    print(f"done: {agent.num_timesteps:,} steps in {agent._elapsed:.1f}s; evaluation over {ev['episodes']} "
          f"episodes: mean return {ev['mean_return']:.2f} ± {ev['std_return']:.2f}; model {out / 'model.safetensors'}")
    for message in agent.warnings.values():
        print(f"warning: {message}")
    if (out / "best_model.safetensors").exists():
        print(f"best periodic evaluation: mean return {agent.best_eval_return:.2f}; model {out / 'best_model.safetensors'}")
    return 0


def _load_for_eval(path: str, best: bool = False, allow_import: Sequence[str] = ()):
    import deeprl
    from deeprl.errors import CheckpointError

    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{path!r} does not exist; pass a run directory or a saved .safetensors model")
    if best:
        if not (p.is_dir() and (p / "best_model.safetensors").exists()):
            raise CheckpointError(f"{path!r} has no best_model.safetensors (written when eval_freq > 0 and a "
                                  "run directory is used); drop --best to evaluate the final model")
        return deeprl.load(p / "best_model.safetensors", device="auto", allow_import=allow_import)
    if p.is_dir() and not (p / "model.safetensors").exists():
        raise CheckpointError(f"run {path!r} has no final model yet (it has not finished); "
                              f"finish it with 'deeprl train --resume {path}'")
    return deeprl.load(p, device="auto", allow_import=allow_import)


def _eval(args: argparse.Namespace) -> int:
    from deeprl.checkpoint import json_safe

    agent = _load_for_eval(args.run, best=args.best, allow_import=args.allow_import)
    try:
        result = agent.evaluate(args.episodes, seed=args.seed)
        summary = {k: result[k] for k in ("mean_return", "std_return", "episodes", "mean_length")}
        if args.video is not None:
            run = Path(args.run)
            video = Path(args.video) if args.video else (run if run.is_dir() else run.parent) / "videos" / "eval.mp4"
            info = agent.record_video(video, seed=args.seed)
            summary["video"] = info["path"]
        if args.json:
            print(json.dumps(json_safe(summary), allow_nan=False))
        else:
            print(f"{summary['episodes']} episodes: mean return {summary['mean_return']:.2f} ± "
                  f"{summary['std_return']:.2f} (mean length {summary['mean_length']:.1f})")
            if "video" in summary:
                print(f"video: {summary['video']}")
    finally:
        agent.close()
    return 0


def _dream(args: argparse.Namespace) -> int:
    from deeprl.errors import ConfigError
    from deeprl.worldmodel.pictures import dream_video

    agent = _load_for_eval(args.run, allow_import=args.allow_import)
    try:
        if not hasattr(agent, "decode_dream"):
            raise ConfigError(f"{args.run!r} holds a {agent.algo} agent, which has no world model to dream with; "
                              "train one with 'deeprl train worldmodel' or 'deeprl train dreamer'")
        run = Path(args.run)
        out = Path(args.out) if args.out else (run if run.is_dir() else run.parent) / "videos" / "dream.mp4"
        info = dream_video(agent, out, steps=args.steps, seed=args.seed, use_real_actions=not args.policy)
    finally:
        agent.close()
    print(f"wrote {info['path']}: {info['frames']} frames, real episode (left) and dream (right, "
          f"{info['actions']} actions); dreamed return {info['dream_return']:.2f}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    from deeprl.plotting import plot_runs

    out = plot_runs(args.runs, args.out, metric=args.metric)
    print(f"wrote {out}")
    return 0


def _variance(args: argparse.Namespace) -> int:
    from deeprl.variance import LABELS, run_variance

    print(f"training an actor-critic on {args.env} for {args.steps:,} steps, then measuring {args.batches} "
          "episodes per estimator", file=sys.stderr)
    report = run_variance(args.env, out=args.out, train_steps=args.steps, batches=args.batches, seed=args.seed,
                          run=args.run)
    print(f"critic fitted to the frozen policy: it leaves {report['critic_unexplained_variance']:.0%} of the "
          "reward-to-go variance unexplained")
    for name, r in report["results"].items():
        print(f"{LABELS[name]:<34} variance {r['variance']:.4g}   |mean| {r['mean_norm']:.4g}   "
              f"variance/|mean|^2 {r['relative_variance']:.4g}")
    print(f"wrote {report['figure']}")
    return 0


def _bench(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    import shlex

    from deeprl.bench import bench, markdown
    from deeprl.config import parse_assignments
    from deeprl.errors import ConfigError

    if args.workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {args.workers}")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    _local_modules(args.envs)
    command = "deeprl " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    common = {"settings": parse_assignments(args.set), "workers": args.workers, "eval_episodes": args.episodes,
              "backend": args.backend, "address": args.address, "command": command, "retrain": args.retrain}
    if args.ladder:  # the ladder's rungs in place of --algos (deeprl/ladder.py)
        if args.preset:
            raise ConfigError("--preset with --ladder: each rung names its own settings; drop --preset")
        from deeprl.ladder import bench_ladder_cli
        return bench_ladder_cli(args.ladder[0], args.envs, seeds, args.out, args.ladder[1:], args.steps, **common)
    report = bench(args.algos, args.envs, seeds, args.out, steps=args.steps, preset=args.preset or "auto", **common)
    print(markdown(report))
    print(f"wrote {Path(args.out) / 'results.json'}, report.md and curves.png")
    return 0


def _sweep(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    import shlex

    from deeprl.config import parse_assignments
    from deeprl.errors import ConfigError
    from deeprl.sweep import markdown, resume_sweep, sweep

    if args.workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {args.workers}")
    run = dict(workers=args.workers, backend=args.backend, address=args.address)
    if args.resume:
        if args.algo or args.space:
            raise ConfigError("--resume continues a sweep as it was started; give only --resume DIR (and "
                              "--workers/--backend/--address)")
        out = Path(args.resume)
        print(f"sweep: resuming {out}", file=sys.stderr)
        report = resume_sweep(out, **run)
    else:
        if not args.algo or not args.out:
            raise ConfigError("deeprl sweep needs ALGO, --space and --out (or --resume DIR); example: deeprl sweep "
                              "ppo --env CartPole-v1 --space lr=loguniform:1e-4:3e-3 --trials 8 --out sweeps/cp")
        if args.scheduler != "asha" and (args.min_steps is not None or args.eta != 3):
            raise ConfigError("--min-steps and --eta set ASHA's rungs; add --scheduler asha or drop them")
        _local_modules([args.env])
        out = Path(args.out)
        command = "deeprl " + shlex.join(sys.argv[1:] if argv is None else list(argv))
        report = sweep(args.algo, args.env, args.space, out, trials=args.trials, seeds=args.seeds,
                       first_seed=args.first_seed, search=args.search, steps=args.steps,
                       settings=parse_assignments(args.set), eval_episodes=args.episodes,
                       search_seed=args.search_seed, command=command, scheduler=args.scheduler,
                       min_steps=args.min_steps, eta=args.eta, **run)
    print(markdown(report))
    best = " and best_preset.yaml" if report["best"] else ""
    print(f"wrote {out / 'results.json'}, report.md, objective.png{best}")
    return 0


def _presets(args: argparse.Namespace) -> int:
    from deeprl import ALGORITHMS
    from deeprl.agents import algorithm
    from deeprl.config import list_presets
    from deeprl.preset_files import PREFIX, all_rungs

    presets = list_presets(ALGORITHMS)
    if args.algo:
        algorithm(args.algo)
        presets = {args.algo: presets.get(args.algo, {})}
    for algo, named in presets.items():
        for name, settings in named.items():
            desc = settings.get("description", "") if isinstance(settings, dict) else ""
            print(f"{algo:<6} {name:<22} {desc}")
    for rung in all_rungs():  # every ladder rung is a preset too: ladder/<rung>
        if rung.algo in presets:
            print(f"{rung.algo:<6} {PREFIX + rung.name:<22} {rung.ladder} ladder: {rung.adds}")
    return 0


def _export(args: argparse.Namespace) -> int:
    agent = _load_for_eval(args.run, best=args.best, allow_import=args.allow_import)
    try:
        run = Path(args.run)
        name = f"{'best_' if args.best else ''}policy.{args.format}"
        out = Path(args.out) if args.out else run / name if run.is_dir() else run.with_suffix(f".{args.format}")
        info = agent.export(out, args.format)
    finally:
        agent.close()
    inputs = ", ".join(f"{name} ({', '.join(map(str, shape))}) {dtype}"
                       for name, (shape, dtype) in info["inputs"].items())
    print(f"wrote {info['path']}: the {info['algo']} policy, {inputs} -> {', '.join(info['outputs'])}")
    ties = f"; {info['ties']} ties decided by rounding" if info["ties"] else ""
    if "state_difference" in info:
        ties = f"; recurrent state within {info['state_difference']:.3g} over episodes{ties}"
    notes = f" ({info['notes']})" if info["notes"] else ""
    print(f"onnxruntime against predict on {info['observations']:,} sampled observations: max difference "
          f"{info['max_difference']:.3g}{ties}{notes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
