"""deeprl sweep: search spaces, searches, the ranked report, resuming; Ray in tests/test_sweep_ray.py."""

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

from deeprl.config import build_config
from deeprl.errors import ConfigError
from deeprl.search import RandomSearch
from deeprl.sweep import make_search, parse_space, resume_sweep, sweep

TINY = dict(num_envs=2, minibatch_size=32, n_epochs=1, eval_freq=0, checkpoint_freq=128)


def test_space_forms():
    params = {p.name: p for p in parse_space(["lr=loguniform:1e-4:3e-3", "n_steps=choice:128,256,512",
                                              "gamma=uniform:0.9:0.999", "batch_size=int:32:64",
                                              "net_arch=choice:[64,64],[256,256]", "double_q=choice:true,false"])}
    assert params["lr"].kind == "loguniform" and (params["lr"].low, params["lr"].high) == (1e-4, 3e-3)
    assert params["n_steps"].choices == (128, 256, 512)
    assert params["net_arch"].choices == ([64, 64], [256, 256])  # commas inside brackets belong to a value
    assert params["double_q"].choices == (True, False)
    assert parse_space(["lr=choice:1e-4,3e-3,0.01"])[0].choices == (1e-4, 3e-3, 0.01)  # YAML 1.1 reads '1e-4' as text
    rng = np.random.default_rng(0)
    draws = [params["lr"].sample(rng) for _ in range(2000)]
    assert 1e-4 <= min(draws) and max(draws) <= 3e-3
    assert np.median(np.log(draws)) == pytest.approx(np.log(np.sqrt(1e-4 * 3e-3)), abs=0.1)  # uniform in log
    assert {params["batch_size"].sample(rng) for _ in range(500)} == set(range(32, 65))


@pytest.mark.parametrize("spec, message", [
    ("lr", "cannot read"), ("lr=normal:0:1", "cannot read"), ("lr=uniform:1", "two numbers"),
    ("lr=uniform:2:1", "below high"), ("lr=loguniform:0:1", "low > 0"), ("n=int:1.5:3", "whole numbers"),
    ("n=choice:", "no choices"),
])
def test_malformed_spaces_say_how_to_write_them(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_space([spec])


def test_searches_are_reproducible_and_grid_is_the_product():
    params = parse_space(["lr=loguniform:1e-4:1e-2", "n_steps=choice:16,32"])
    a, b = make_search("random", params, 3), make_search("random", params, 3)
    assert [a.ask(i) for i in range(5)] == [b.ask(i) for i in range(5)]
    grid = make_search("grid", parse_space(["n_steps=choice:16,32", "n_epochs=int:1:3"]), 0)
    assert len(grid) == 6 and [grid.ask(i) for i in range(6)][:3] == [
        {"n_steps": 16, "n_epochs": 1}, {"n_steps": 16, "n_epochs": 2}, {"n_steps": 16, "n_epochs": 3}]
    with pytest.raises(ConfigError, match="grid search needs a finite set"):
        make_search("grid", params, 0)


def test_random_search_does_not_draw_a_point_of_a_finite_space_twice():
    space = parse_space(["n_steps=choice:16,32", "n_epochs=int:1:3"])  # 6 points
    for seed in range(20):
        search = make_search("random", space, seed)
        drawn = [search.ask(i) for i in range(6)]
        assert sorted(map(str, drawn)) == sorted(map(str, [{"n_steps": n, "n_epochs": e} for n in (16, 32)
                                                           for e in (1, 2, 3)]))  # each point once
        # a sweep resumed redraws the same candidates, repeats of a sweep from before this rule included
        again = make_search("random", space, seed)
        assert [again.ask(i, search_point) for i, search_point in enumerate(drawn)] == drawn
    old = make_search("random", space, 0)  # an older sweep.json that holds a repeat: its first draws as recorded
    rng = np.random.default_rng([0, 0x5EE9])
    plain = [{p.name: p.sample(rng) for p in space} for _ in range(8)]
    assert len({str(p) for p in plain}) < len(plain)  # 8 draws of 6 points: it holds repeats
    assert [old.ask(i, point) for i, point in enumerate(plain)] == plain


@pytest.mark.parametrize("space", [["n_steps=choice:16,32"], ["n_steps=int:1:40"]])
def test_random_search_past_the_size_of_its_space_resumes_the_same(space, monkeypatch):
    params = parse_space(space)
    size = len(params[0].grid())
    if size == 40:  # a nearly full space where redraws find nothing new: the pick among the unseen points
        monkeypatch.setattr(RandomSearch, "REDRAWS", 2)
    whole = make_search("random", params, 0)
    drawn = [whole.ask(i) for i in range(size + 5)]
    assert sorted(map(str, drawn[:size])) == sorted(map(str, ({"n_steps": v} for v in params[0].grid())))
    for cut in (1, size - 1, size, size + 2):  # stopped after `cut` candidates, resumed, drawing on
        resumed = make_search("random", params, 0)
        assert [resumed.ask(i, point) for i, point in enumerate(drawn[:cut])] == drawn[:cut]
        assert [resumed.ask(i) for i in range(cut, size + 5)] == drawn[cut:]


@pytest.mark.parametrize("space, settings, message", [
    (["lrr=uniform:0.1:0.2"], {}, "unknown setting 'lrr'.*lr"),
    (["lr=uniform:-1:1"], {}, "--space lr"),
    (["n_steps=choice:16,abc"], {}, "--space n_steps"),
    (["lr=uniform:0.1:0.2"], {"lr": "0.1"}, "both searched"),
])
def test_bad_settings_are_refused_before_training(tmp_path, space, settings, message):
    with pytest.raises(ConfigError, match=message):
        sweep("ppo", "CartPole-v1", space, tmp_path / "s", settings=settings, backend="processes")
    assert not (tmp_path / "s").exists()


# what a sweep that ought to be refused would run if it were not: little
SMALL = dict(trials=1, seeds=1, steps=64, settings=TINY, eval_episodes=1, workers=1, backend="processes", quiet=True)


def _tiny_sweep(out, **kw):
    return sweep("ppo", "CartPole-v1", ["lr=loguniform:1e-4:3e-3", "n_steps=choice:16,32"], out,
                 **{"trials": 3, "seeds": 2, "steps": 256, "settings": TINY, "eval_episodes": 2, "workers": 1,
                    "backend": "processes", "quiet": True, **kw})


@pytest.mark.parametrize("search", ["random", "optuna"])
def test_sweep_ranks_candidates_by_their_mean_final_over_seeds(tmp_path, search):
    report = _tiny_sweep(tmp_path / "s", search=search)
    ranked = report["ranked"]
    assert len(ranked) == 3 and [c["status"] for c in ranked] == ["done"] * 3
    objectives = [c["objective"] for c in ranked]
    assert objectives == sorted(objectives, reverse=True)
    for c in ranked:
        finals = [json.loads((tmp_path / "s" / f"trial_{c['index']:04d}" / f"seed_{s}" / "final.json").read_text())
                  ["final"] for s in (0, 1)]
        assert c["finals"] == finals and c["objective"] == pytest.approx(np.mean(finals))
        seconds = [json.loads((tmp_path / "s" / f"trial_{c['index']:04d}" / f"seed_{s}" / "final.json").read_text())
                   ["wall_time"] for s in (0, 1)]
        assert c["seconds"] == pytest.approx(np.mean(seconds)) and c["seconds"] > 0  # what the candidate cost
        assert (tmp_path / "s" / f"trial_{c['index']:04d}" / "seed_0" / "model.safetensors").exists()  # a real run
    assert json.loads((tmp_path / "s" / "results.json").read_text())["best"]["index"] == ranked[0]["index"]
    assert "| rank | candidate | lr | n_steps |" in (tmp_path / "s" / "report.md").read_text()
    assert (tmp_path / "s" / "objective.png").stat().st_size > 1000
    block = yaml.safe_load((tmp_path / "s" / "best_preset.yaml").read_text())["CartPole-v1"]
    assert block["lr"] == ranked[0]["params"]["lr"] and block["total_steps"] == 256 and block["num_envs"] == 2
    from deeprl.agents.ppo import PPOConfig
    build_config(PPOConfig, {k: v for k, v in block.items() if k not in ("description", "results")})


def test_a_stopped_sweep_resumes_without_redoing_finished_runs(tmp_path):
    out = tmp_path / "s"
    first = _tiny_sweep(out, search="optuna")
    state = json.loads((out / "sweep.json").read_text())
    # as if killed while candidate 1 ran and before candidate 2 was drawn: its seed-1 run unfinished
    state["candidates"] = state["candidates"][:2]
    state["candidates"][1]["status"] = "running"
    (out / "sweep.json").write_text(json.dumps(state))
    (out / "trial_0001" / "seed_1" / "final.json").unlink()
    import shutil
    shutil.rmtree(out / "trial_0002")
    kept = (out / "trial_0000" / "seed_0" / "model.safetensors").stat().st_mtime_ns
    again = resume_sweep(out, workers=1, backend="processes", quiet=True)
    assert (out / "trial_0000" / "seed_0" / "model.safetensors").stat().st_mtime_ns == kept  # not retrained
    assert [(c["index"], c["params"], c["finals"]) for c in again["ranked"]] == \
        [(c["index"], c["params"], c["finals"]) for c in first["ranked"]]  # the same candidates and results


def test_cli_errors_are_one_line(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "deeprl", "sweep", *args], capture_output=True, text=True,
                              timeout=120)
    for args, message in [((), "needs ALGO"), (("ppo", "--out", str(tmp_path / "x"), "--space", "lr=u:1:2"),
                                                 "cannot read the search space"),
                          (("--resume", str(tmp_path / "none")), "is missing"),
                          (("ppo", "--out", str(tmp_path / "y"), "--space", "lr=uniform:1e-4:1e-3", "--eta", "2"),
                           "add --scheduler asha"),
                          (("ppo", "--out", str(tmp_path / "z"), "--space", "lr=uniform:1e-4:1e-3", "--scheduler",
                            "asha", "--search", "optuna"), "random or grid")]:
        proc = run(*args)
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) <= 2


def test_training_never_imports_ray(tmp_path):
    code = ("import sys, deeprl.cli; deeprl.cli.main(['train', 'reinforce', '--steps', '200', '--out', sys.argv[1], "
            "'--set', 'eval_freq=0']); assert 'ray' not in sys.modules and 'optuna' not in sys.modules")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "run")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_rungs():
    from deeprl.sweep import rungs
    assert rungs(100_000, None, 3) == [11_111, 33_333, 100_000]
    assert rungs(90_000, 10_000, 3) == [10_000, 30_000, 90_000]
    assert rungs(100_000, 10_000, 3) == [10_000, 30_000, 100_000]  # not 90,000: almost the whole run
    assert rungs(1000, 400, 2) == [400, 1000]


ASHA = dict(TINY, log_interval=64, n_steps=16)


def _asha_sweep(out, **kw):
    return sweep("ppo", "CartPole-v1", ["lr=choice:1e-4,3e-3,3e-2"], out,
                 **{"trials": 3, "seeds": 2, "steps": 768, "settings": ASHA, "eval_episodes": 2, "workers": 1,
                    "backend": "processes", "quiet": True, "search": "grid", **kw})


def test_asha_stops_the_weak_and_its_survivor_has_a_plain_sweeps_finals(tmp_path):
    plain = {c["index"]: c for c in _asha_sweep(tmp_path / "plain")["ranked"]}
    report = _asha_sweep(tmp_path / "asha", scheduler="asha", min_steps=256)
    ranked = report["ranked"]
    # rungs [256, 768]: 3 candidates judged at 256 steps, the best third (one) trained on
    assert [c["status"] for c in ranked] == ["done", "stopped", "stopped"]
    best, stopped = ranked[0], ranked[1:]
    at_first = {c["index"]: c["rungs"]["0"]["objective"] for c in ranked}
    assert at_first[best["index"]] == max(at_first.values())
    assert best["finals"] == plain[best["index"]]["finals"]  # pausing at the rung changed nothing
    assert report["best"]["index"] == best["index"]
    for c in stopped:
        assert c["reached"] == 256 and c["objective"] == at_first[c["index"]]
        run = tmp_path / "asha" / f"trial_{c['index']:04d}" / "seed_0"
        assert (run / "rung_256.json").exists() and not (run / "model.safetensors").exists()
    assert "| steps |" in (tmp_path / "asha" / "report.md").read_text()
    assert "| s per run |" in (tmp_path / "asha" / "report.md").read_text()
    # each candidate costs what its runs recorded up to the step it was judged at: the survivor's from its final.json
    # (the time before its pause included), a stopped one's from its rung file
    for c, name in [(best, "final.json"), *((c, "rung_256.json") for c in stopped)]:
        recorded = [json.loads((tmp_path / "asha" / f"trial_{c['index']:04d}" / f"seed_{s}" / name).read_text())
                    ["wall_time"] for s in (0, 1)]
        assert c["seconds"] == pytest.approx(np.mean(recorded)) and c["seconds"] > 0
    assert "(stopped)" in (tmp_path / "asha" / "report.md").read_text()


def test_an_asha_sweep_resumes_its_bookkeeping(tmp_path):
    out = tmp_path / "s"
    first = _asha_sweep(out, scheduler="asha", min_steps=256)
    state = json.loads((out / "sweep.json").read_text())
    # as if killed while the survivor trained past its rung
    best = next(c for c in state["candidates"] if c["status"] == "done")
    best["status"] = "running"
    del best["rungs"]["1"]
    for c in state["candidates"]:
        if c["status"] == "stopped":
            c["status"] = "paused"
    (out / "sweep.json").write_text(json.dumps(state))
    for seed in (0, 1):
        (out / f"trial_{best['index']:04d}" / f"seed_{seed}" / "final.json").unlink()
    again = resume_sweep(out, workers=1, backend="processes", quiet=True)
    assert [(c["index"], c["status"], c["finals"]) for c in again["ranked"]] == \
        [(c["index"], c["status"], c["finals"]) for c in first["ranked"]]


@pytest.mark.parametrize("kw, message", [
    (dict(scheduler="asha", search="optuna"), "works with --search random or grid"),
    (dict(scheduler="asha", eta=1), "--eta"),
    (dict(scheduler="asha", min_steps=768), "--min-steps"),
])
def test_asha_settings_are_checked(tmp_path, kw, message):
    with pytest.raises(ConfigError, match=message):
        _asha_sweep(tmp_path / "s", **kw)


class _ScoredPool:
    """A stand-in for the runner's TrialPool that 'trains' instantly: a run's score is a known
    function of its learning rate and seed, so the scheduler's choices can be checked exactly."""

    def __init__(self, *, workers=0, backend="processes", address=None):
        self.workers, self.queue, self.log = workers or 1, [], []

    @property
    def pending(self):
        return len(self.queue)

    def submit(self, trial, key=None):
        self.queue.append((key, trial))
        self.log.append((trial.settings["lr"], trial.seed, trial.pause_at))

    def next_result(self):
        key, trial = self.queue.pop(0)
        score = 1000 * trial.settings["lr"] + trial.seed + (trial.pause_at or 0) / 1000
        return key, {"trial": {"out": trial.out, "seed": trial.seed}, "final": score}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def test_asha_promotes_the_best_third_of_each_rung(tmp_path, monkeypatch):
    import deeprl.sweep
    pools = []
    monkeypatch.setattr(deeprl.sweep, "TrialPool", lambda **kw: pools.append(_ScoredPool(**kw)) or pools[-1])
    lrs = ",".join(f"{k}e-3" for k in range(9, 0, -1))  # drawn best first, so no later one overtakes
    report = sweep("ppo", "CartPole-v1", [f"lr=choice:{lrs}"], tmp_path / "s", trials=9, seeds=2, search="grid",
                   steps=9000, settings={"log_interval": 1000}, scheduler="asha", workers=2, quiet=True,
                   backend="processes")
    by_rung = {r: sorted(c["index"] for c in report["ranked"] if str(r) in c["rungs"]) for r in range(3)}
    assert by_rung == {0: list(range(9)), 1: [0, 1, 2], 2: [0]}  # rungs of 1,000 / 3,000 / 9,000 steps
    assert report["best"]["index"] == 0 and report["best"]["reached"] == 9000
    assert [c["status"] for c in report["ranked"]] == ["done"] + ["stopped"] * 8
    assert [p for _, _, p in pools[0].log].count(None) == 2  # only the winner's two seeds ran whole
    # asynchronous: candidate 0 went on once it led three finished candidates, long before the last was drawn
    log = [(lr, p) for lr, _, p in pools[0].log]
    assert log.index((9e-3, 3000)) < log.index((1e-3, 1000))


def test_asha_finishes_one_candidate_even_when_too_few_are_drawn(tmp_path, monkeypatch):
    import deeprl.sweep
    monkeypatch.setattr(deeprl.sweep, "TrialPool", _ScoredPool)
    report = sweep("ppo", "CartPole-v1", ["lr=choice:1e-3,2e-3"], tmp_path / "s", trials=2, seeds=1, search="grid",
                   steps=9000, settings={"log_interval": 1000}, scheduler="asha", quiet=True, backend="processes")
    assert report["best"]["index"] == 1 and report["best"]["reached"] == 9000  # 2 < eta: none would pass a rung


# --------------------------------------------------------------------------------------------
# specs that cannot work are refused before anything trains


@pytest.mark.parametrize("space, message", [
    (["n_steps=uniform:16:64"], r"n_steps is an integer setting.*write n_steps=int:16:64$"),
    (["n_steps=loguniform:16:1024"], r"write n_steps=logint:16:1024$"),
    (["normalize_advantage=uniform:0:1"], r"write normalize_advantage=choice:true,false"),
    (["activation=uniform:0:1"], r"write activation=choice:relu,tanh"),
    (["net_arch=int:1:3"], r"write net_arch=choice:\[64,64\]"),
    (["n_steps=choice:16,24.5"], r"--space n_steps: the choice '24.5'"),
    (["seed=int:0:3"], r"--space seed: a sweep's seeds come from --seeds and --first-seed"),
    (["env=choice:CartPole-v1,Acrobot-v1"], r"--space env"),
])
def test_every_entry_must_fit_its_settings_type(tmp_path, space, message):
    with pytest.raises(ConfigError, match=message):
        sweep("ppo", "CartPole-v1", space, tmp_path / "s", **SMALL)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("settings", [{"seed": "7"}, {"seed": 7}])
def test_a_fixed_seed_is_refused_by_sweep_and_bench(tmp_path, settings):
    from deeprl.bench import bench
    with pytest.raises(ConfigError, match=r"--set seed: a sweep's seeds come from --seeds and --first-seed"):
        sweep("ppo", "CartPole-v1", ["lr=uniform:1e-4:1e-3"], tmp_path / "s", **{**SMALL, "settings": settings})
    with pytest.raises(ConfigError, match=r"--set seed: a bench's seeds come from --seeds and --first-seed"):
        bench(["ppo"], ["CartPole-v1"], [0, 1], tmp_path / "b", settings=settings, steps=64, eval_episodes=1,
              workers=1, quiet=True)
    assert not (tmp_path / "s").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("spec, message", [
    ("net_arch=choice:[64,64", "cannot read the choices of 'net_arch=choice:\\[64,64': a bracket left open"),
    ("net_arch=choice:[64,64]],[8]", "a closing bracket without its opening one"),
    ("lr=choice:!!python/object:os.system", "cannot read the choice '!!python/object:os.system' of 'lr=choice:"),
    ("n=logint:0:8", "logint needs low >= 1"), ("n=logint:2:8.5", "whole numbers"),
])
def test_malformed_values_are_one_error_naming_the_entry(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_space([spec])


def test_cli_refusals_are_one_line(tmp_path, capsys):
    from deeprl.cli import main
    small = ["--steps", "64", "--seeds", "1", "--episodes", "1", "--workers", "1"]
    for args, message in [
        (["sweep", "ppo", "--out", str(tmp_path / "a"), "--space", "net_arch=choice:[64,64"], "net_arch=choice:[64,64"),
        (["sweep", "ppo", "--out", str(tmp_path / "b"), "--space", "n_steps=uniform:16:64"], "n_steps=int:16:64"),
        (["sweep", "ppo", "--out", str(tmp_path / "c"), "--space", "lr=uniform:1e-4:1e-3", "--set", "seed=7"],
         "--seeds and --first-seed"),
        (["bench", "--out", str(tmp_path / "d"), "--set", "seed=7"], "--seeds and --first-seed"),
        (["sweep", "ppo", "--out", str(tmp_path / "e"), "--space", "n_steps=choice:16,32,64", "--search", "grid",
          "--trials", "2"], "give --trials 3"),
    ]:
        assert main(args + small + (["--backend", "processes"] if args[0] == "sweep" else [])) == 2
        err = capsys.readouterr().err
        assert message in err and err.startswith("deeprl: error: ") and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / args[args.index("--out") + 1]).exists()


def test_choices_are_typed_and_logint_draws_whole_numbers(tmp_path, monkeypatch):
    import deeprl.sweep
    seen = []
    monkeypatch.setattr(deeprl.sweep, "TrialPool", _instant(seen))
    report = sweep("ppo", "CartPole-v1", ["n_steps=choice:16.0,32", "batch_episodes=logint:2:64",
                                          "atari_wrappers=choice:on,off", "normalize_obs=choice:1,0"],
                   tmp_path / "s", trials=12, seeds=1, settings={"lr": "1e-3"}, quiet=True, backend="processes")
    for trial in seen:
        assert type(trial.settings["n_steps"]) is int and trial.settings["n_steps"] in (16, 32)
        assert type(trial.settings["batch_episodes"]) is int and 2 <= trial.settings["batch_episodes"] <= 64
        assert trial.settings["atari_wrappers"] in ("on", "off")  # words, as the setting takes them (not YAML's booleans)
        assert trial.settings["normalize_obs"] in (True, False)
    state = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert {type(c["params"]["n_steps"]) for c in state["candidates"]} == {int}
    assert report["best"] is not None
    rng, (param,) = np.random.default_rng(1), parse_space(["n=logint:16:1024"])
    draws = [param.sample(rng) for _ in range(3000)]
    assert all(type(d) is int for d in draws) and min(draws) == 16 and max(draws) <= 1024
    assert np.median(draws) == pytest.approx(np.sqrt(16 * 1025), rel=0.1)  # uniform in log
    optuna = make_search("optuna", [param], 0)
    assert type(optuna.ask(0)["n"]) is int
    assert optuna.study.trials[0].distributions["n"].log and optuna.study.trials[0].distributions["n"].step == 1


def test_a_grid_is_run_whole_and_one_larger_than_trials_is_refused(tmp_path, monkeypatch, capsys):
    import deeprl.sweep
    seen = []
    monkeypatch.setattr(deeprl.sweep, "TrialPool", _instant(seen))
    space = ["lr=choice:1e-3,2e-3,3e-3", "n_steps=choice:16,32"]
    with pytest.raises(ConfigError, match=r"the grid holds 6 points, more than --trials 5.*give --trials 6"):
        sweep("ppo", "CartPole-v1", space, tmp_path / "cut", trials=5, seeds=1, search="grid", backend="processes",
              quiet=True)
    assert not (tmp_path / "cut").exists()
    report = sweep("ppo", "CartPole-v1", space, tmp_path / "s", seeds=1, search="grid", backend="processes")
    assert len(report["ranked"]) == 6 and len(seen) == 6  # --trials (16) is an upper bound: the grid runs whole
    assert "grid search, all 6 points (a grid is run whole, never cut to --trials)" in capsys.readouterr().err


def _instant(seen, stop_after=None):
    """A stand-in for the runner's TrialPool that 'trains' instantly: a run's final is a known
    function of its settings and seed.  With ``stop_after``, the result after that many raises
    KeyboardInterrupt."""
    calls = []

    class Pool(_ScoredPool):
        def __init__(self, *, workers=0, backend="processes", address=None):
            super().__init__(workers=workers)
            calls.append(workers)

        def next_result(self):
            key, t = self.queue.pop(0)
            if stop_after is not None and len(seen) >= stop_after:
                raise KeyboardInterrupt
            seen.append(t)
            final = -abs(np.log(t.settings["lr"] / 1e-3)) - abs(np.log(t.settings.get("n_steps", 32) / 32)) + t.seed
            return key, {"trial": {"out": t.out, "seed": t.seed}, "final": final}
    Pool.calls = calls
    return Pool


def _study(out):
    import optuna
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "optuna.journal")))
    return optuna.load_study(study_name="deeprl-sweep", storage=storage)


def test_an_optuna_sweep_resumes_from_its_study_with_other_workers(tmp_path, monkeypatch):
    import deeprl.sweep
    out, space = tmp_path / "s", ["lr=loguniform:1e-4:1e-2", "n_steps=int:8:128", "net_arch=choice:[8],[16,16]"]
    first = []
    monkeypatch.setattr(deeprl.sweep, "TrialPool", _instant(first, stop_after=3))
    with pytest.raises(KeyboardInterrupt):  # killed while its 4th candidate trained (one at a time: --workers 1)
        sweep("ppo", "CartPole-v1", space, out, trials=8, seeds=1, search="optuna", workers=1, quiet=True,
              backend="processes")
    state = json.loads((out / "sweep.json").read_text())
    assert [c["status"] for c in state["candidates"]] == ["done"] * 3 + ["running"]
    drawn = [c["params"] for c in state["candidates"]]
    again = []
    resumed = _instant(again)
    monkeypatch.setattr(deeprl.sweep, "TrialPool", resumed)
    report = resume_sweep(out, workers=2, quiet=True, backend="processes")  # another --workers: not refused
    assert set(resumed.calls) == {2}
    by_index = sorted(report["ranked"], key=lambda c: c["index"])
    assert [c["status"] for c in by_index] == ["done"] * 8
    assert [c["params"] for c in by_index[:4]] == drawn  # the recorded candidates, the unfinished one again
    assert [t.settings["lr"] for t in again][0] == drawn[3]["lr"]  # only candidate 3 and the new ones trained
    assert len(again) == 5
    new = [c["params"] for c in by_index[4:]]
    assert all(c not in drawn for c in new)  # the search went on: no candidate of the first session again
    study = _study(out)  # the study as a fresh process reads it from the sweep folder
    trials = sorted(study.trials, key=lambda t: t.user_attrs["candidate"])
    assert [t.user_attrs["candidate"] for t in trials] == list(range(8))
    assert all(t.state.name == "COMPLETE" for t in trials)
    assert [t.value for t in trials] == [c["objective"] for c in by_index]
    assert [{**t.params, "net_arch": [[8], [16, 16]][t.params["net_arch"]]} for t in trials[:4]] == drawn
    # a sweep whose journal is gone (or one started before sweeps kept it) rebuilds the study from sweep.json
    (out / "optuna.journal").unlink()
    resume_sweep(out, workers=1, quiet=True, backend="processes")
    assert len(again) == 5  # nothing trained again
    assert sorted((t.user_attrs["candidate"], t.value) for t in _study(out).trials) == \
        [(c["index"], c["objective"]) for c in by_index]


def test_a_plain_sweep_is_the_drivers_one_rung_case_and_keeps_its_state_form(tmp_path, monkeypatch):
    import deeprl.sweep
    seen = []
    monkeypatch.setattr(deeprl.sweep, "TrialPool", _instant(seen))
    out = tmp_path / "s"
    sweep("ppo", "CartPole-v1", ["lr=loguniform:1e-4:1e-2"], out, trials=3, seeds=2, quiet=True, backend="processes")
    assert len(seen) == 6 and all(t.pause_at is None for t in seen)  # one rung, the whole run: nothing pauses
    state = json.loads((out / "sweep.json").read_text())
    assert [sorted(c) for c in state["candidates"]] == \
        [["errors", "finals", "index", "objective", "params", "seconds", "seeds", "status"]] * 3  # as sweeps held
    # them, and the runs' mean training time since 2026-12-05 (a sweep.json without it resumes, its cost unknown: "-")
    state["candidates"][1]["status"] = "halfway"
    (out / "sweep.json").write_text(json.dumps(state))
    with pytest.raises(ConfigError, match=r"sweep.json' is damaged \(its candidate 1\); start a new sweep"):
        resume_sweep(out, quiet=True, backend="processes")


def test_optuna_proposes_as_many_candidates_as_run_at_once(tmp_path, monkeypatch):
    import deeprl.sweep
    monkeypatch.setattr(deeprl.sweep, "TrialPool", _instant([]))
    sweep("ppo", "CartPole-v1", ["lr=loguniform:1e-4:1e-2"], tmp_path / "s", trials=6, seeds=2, workers=4,
          search="optuna", quiet=True, backend="processes")
    trials = sorted(_study(tmp_path / "s").trials, key=lambda t: t.user_attrs["candidate"])
    for first in (2, 4):  # 4 workers / 2 seeds: two candidates at a time, each pair asked once the last is judged
        assert min(t.datetime_start for t in trials[first:first + 2]) >= \
            max(t.datetime_complete for t in trials[first - 2:first])


def test_a_second_process_on_the_same_sweep_is_refused(tmp_path, monkeypatch):
    import fcntl

    import deeprl.sweep
    seen = []
    monkeypatch.setattr(deeprl.sweep, "TrialPool", _instant(seen))
    out = tmp_path / "s"
    sweep("ppo", "CartPole-v1", ["lr=loguniform:1e-4:1e-2"], out, trials=2, seeds=1, quiet=True, backend="processes")
    with open(out / "sweep.lock") as held:  # as a sweep process running it holds it
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ConfigError, match="is being run by another process"):
            resume_sweep(out, quiet=True, backend="processes")
        proc = subprocess.run([sys.executable, "-m", "deeprl", "sweep", "--resume", str(out), "--backend",
                               "processes"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines()[-1] == \
            f"deeprl: error: sweep {str(out)!r} is being run by another process; wait for it to finish or stop it first"
        assert "Traceback" not in proc.stderr
    assert len(seen) == 2
    resume_sweep(out, quiet=True, backend="processes")  # free again


def test_a_run_held_by_another_process_is_not_a_failure(tmp_path, capsys):
    import fcntl
    import shutil

    from deeprl.runner import Trial, run_trial
    out = tmp_path / "s"
    first = _tiny_sweep(out, search="optuna", settings=dict(TINY, log_interval=64))
    finals = {c["index"]: c["finals"] for c in first["ranked"]}
    state = json.loads((out / "sweep.json").read_text())
    state["candidates"][1]["status"] = "running"  # as if stopped while its runs trained
    (out / "sweep.json").write_text(json.dumps(state))
    run = out / "trial_0001" / "seed_1"
    shutil.rmtree(run)  # as if stopped halfway: the run must be resumed, under its lock
    settings = {**TINY, "log_interval": 64, "total_steps": 256, **state["candidates"][1]["params"]}
    run_trial(Trial("ppo", "CartPole-v1", 1, str(run), settings=settings, eval_episodes=2, pause_at=128))
    assert not (run / "model.safetensors").exists()
    with open(run / ".lock") as held:  # another process (deeprl train --resume) trains the run
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        report = resume_sweep(out, workers=1, backend="processes")
    candidate = next(c for c in report["ranked"] if c["index"] == 1)
    assert candidate["status"] == "busy" and report["busy"] == [1] and "errors" not in candidate
    assert json.loads((out / "sweep.json").read_text())["candidates"][1]["status"] == "busy"
    assert "being resumed by another process" in (out / "report.md").read_text()
    err = capsys.readouterr()
    assert "seed 1: being resumed by another process" in err.out
    assert f"candidate 1 not judged: its runs are being resumed by another process; run 'deeprl sweep --resume {out}'" \
        in err.err
    again = resume_sweep(out, workers=1, backend="processes", quiet=True)  # the run is free now: judged
    assert {c["index"]: c["finals"] for c in again["ranked"]} == finals
    assert all(c["status"] == "done" for c in again["ranked"]) and again["busy"] == []
    assert {t.user_attrs["candidate"]: t.state.name for t in _study(out).trials} == {0: "COMPLETE", 1: "COMPLETE",
                                                                                     2: "COMPLETE"}


def test_asha_leaves_a_busy_candidate_for_the_next_resume(tmp_path, monkeypatch):
    import deeprl.sweep

    class BusyOnce(_ScoredPool):
        busy = [True]

        def next_result(self):
            key, result = super().next_result()
            if key[0] == 1 and self.busy[0]:
                self.busy[0] = False
                result = {**result, "final": None, "error": "run is being trained by another process", "busy": True}
            return key, result

    monkeypatch.setattr(deeprl.sweep, "TrialPool", BusyOnce)
    kw = dict(trials=3, seeds=1, search="grid", steps=9000, settings={"log_interval": 1000}, scheduler="asha",
              min_steps=3000, quiet=True, backend="processes")
    report = sweep("ppo", "CartPole-v1", ["lr=choice:3e-3,2e-3,1e-3"], tmp_path / "s", **kw)
    status = {c["index"]: c["status"] for c in report["ranked"]}
    assert status[1] == "busy" and report["busy"] == [1] and "errors" not in report["ranked"][-1]
    again = resume_sweep(tmp_path / "s", quiet=True, backend="processes")
    resumed = next(c for c in again["ranked"] if c["index"] == 1)
    assert again["busy"] == [] and resumed["rungs"]["0"]["objective"] == pytest.approx(2.0 + 3000 / 1000)
    assert resumed["status"] in ("done", "stopped") and "errors" not in resumed
