"""Damaged checkpoints and models: every tensor of every file, cut short, grown, retyped, made
NaN, removed, or joined by a stray one, is refused with a CheckpointError that names it, never
used and never allowed to crash the process.

A fuzz round over each checkpoint kind the project writes (DQN with prioritized replay, the
policy-gradient family, the world model, Dreamer) and over saved models."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file as np_load_file
from safetensors.numpy import save_file as np_save_file

import deeprl
from deeprl import ALGORITHMS
from deeprl.checkpoint import CheckpointDir
from deeprl.errors import CheckpointError

ROOT = Path(__file__).resolve().parents[1]
COMMON = dict(preset=None, eval_freq=0, log_interval=100, checkpoint_freq=100, seed=1)
RUNS = {
    "dqn": ("CartPole-v1", 300, dict(learning_starts=50, batch_size=8, buffer_size=512, train_freq=4, net_arch=[8],
                                      prioritized=True)),
    "ppo": ("Pendulum-v1", 200, dict(num_envs=2, n_steps=16, minibatch_size=16, n_epochs=1, net_arch=[8],
                                      normalize_obs=True)),
    "worldmodel": ("CartPole-v1", 200, dict(prefill_steps=60, collect_steps=40, vae_steps=2, model_steps=2,
                                             dream_iterations=1, dream_batch=4, horizon=3, batch_size=8,
                                             latent_dim=4, vae_hidden=[8], model_hidden=[8], net_arch=[8],
                                             buffer_size=256, picture_freq=0)),
    "dreamer": ("Pendulum-v1", 100, dict(prefill_steps=40, buffer_size=512)),
}
MUTATIONS = ("short", "long", "dtype", "nan", "missing")


def _mutate(array: np.ndarray, how: str) -> np.ndarray | None:
    """``array`` damaged as ``how`` says; None where that damage does not apply."""
    if how == "short":
        return array[: len(array) // 4] if array.ndim and len(array) > 1 else (np.zeros(2, array.dtype) if
                                                                             array.ndim == 0 else None)
    if how == "long":
        return np.concatenate([array, array[:1]]) if array.ndim and len(array) else array.reshape(1, *array.shape)
    if how == "dtype":
        return array.astype(np.int32) if array.dtype.kind == "f" else array.astype(np.float32)
    if how == "nan":
        if array.dtype.kind != "f" or array.size == 0:
            return None
        damaged = array.copy()
        damaged.reshape(-1)[0] = np.nan
        return damaged
    raise AssertionError(how)


def _damaged(arrays: dict[str, np.ndarray], key: str, how: str) -> dict[str, np.ndarray] | None:
    """A file's arrays with ``key`` damaged as ``how`` says ("missing", "extra": a stray tensor, or
    one of :data:`MUTATIONS`); None where that damage does not apply to it."""
    damaged = dict(arrays)
    if how == "missing":
        del damaged[key]
    elif how == "extra":
        damaged["stray.tensor"] = np.zeros(3, np.float32)
    else:
        changed = _mutate(arrays[key], how)
        if changed is None:
            return None
        damaged[key] = changed
    return damaged


@pytest.fixture(scope="module", params=list(RUNS))
def trained_run(request, tmp_path_factory):
    algo = request.param
    env, steps, settings = RUNS[algo]
    run = tmp_path_factory.mktemp(algo) / "run"
    if algo == "dreamer":
        agent = ALGORITHMS[algo](env, **{**COMMON, "preset": "debug", **settings})
    else:
        agent = ALGORITHMS[algo](env, **COMMON, **settings)
    agent.learn(steps, run_dir=run, progress=False)
    agent.close()
    return algo, run, steps


def _resume(algo: str, run: Path, steps: int):
    agent = ALGORITHMS[algo].resume(run, total_steps=steps + 100)
    agent.close()


def _cases(files: dict[str, dict[str, np.ndarray]], exhaustive: bool):
    """(file, key, how) for every tensor; every mutation of each where ``exhaustive``, else one
    mutation per tensor, cycling through them (Dreamer has hundreds of tensors)."""
    i = 0
    for stem, arrays in files.items():
        for key in arrays:
            kinds = MUTATIONS if exhaustive else (MUTATIONS[i % len(MUTATIONS)],)
            i += 1
            for how in kinds:
                yield stem, key, how
        yield stem, "__stray__", "extra"


def test_every_damaged_checkpoint_tensor_is_refused(trained_run):
    algo, run, steps = trained_run
    ckpt = CheckpointDir(run / "checkpoints").latest()
    _resume(algo, run, steps)  # the undamaged checkpoint resumes
    files = {p.stem: np_load_file(str(p)) for p in sorted(ckpt.glob("*.safetensors"))}
    assert {"model", "optimizer", "counters", "rng"} <= set(files)
    tried = 0
    for stem, key, how in _cases(files, exhaustive=algo in ("dqn", "ppo")):
        original = files[stem]
        damaged = _damaged(original, key, how)
        if damaged is None:
            continue
        np_save_file(damaged, str(ckpt / f"{stem}.safetensors"))
        try:
            with pytest.raises(CheckpointError) as info:
                _resume(algo, run, steps)
        except BaseException:
            print(f"accepted: {stem}.safetensors {key} ({how})")
            raise
        finally:
            np_save_file(original, str(ckpt / f"{stem}.safetensors"))
        assert "\n" not in str(info.value) and str(ckpt) in str(info.value)
        tried += 1
    assert tried > 20
    _resume(algo, run, steps)  # restored, it resumes again


def test_every_damaged_model_tensor_is_refused(trained_run):
    algo, run, _ = trained_run
    model = run / "model.safetensors"
    from safetensors import safe_open
    with safe_open(str(model), framework="np") as f:
        metadata = f.metadata()
    original = np_load_file(str(model))
    deeprl.load(model)
    copy = run.parent / "damaged.safetensors"
    for stem, key, how in _cases({"model": original}, exhaustive=algo != "dreamer"):
        damaged = _damaged(original, key, how)
        if damaged is None:
            continue
        np_save_file(damaged, str(copy), metadata=metadata)
        with pytest.raises(CheckpointError, match="damaged.safetensors"):
            deeprl.load(copy)


def test_short_adam_moments_are_refused_without_crashing_the_process(tmp_path):
    """The case that crashed the process: fused Adam read past a moment with a quarter of its rows
    (a segmentation fault), so it runs in a subprocess and must exit 2 with one line."""
    run = tmp_path / "run"
    agent = deeprl.DQN("CartPole-v1", total_steps=300, **COMMON, **RUNS["dqn"][2])
    agent.learn(run_dir=run, progress=False)
    agent.close()
    ckpt = CheckpointDir(run / "checkpoints").latest()
    optimizer = np_load_file(str(ckpt / "optimizer.safetensors"))
    for key in [k for k in optimizer if k.endswith(("exp_avg", "exp_avg_sq"))]:
        optimizer[key] = optimizer[key][: max(1, len(optimizer[key]) // 4)]
    np_save_file(optimizer, str(ckpt / "optimizer.safetensors"))
    proc = subprocess.run([sys.executable, "-m", "deeprl", "train", "--resume", str(run), "--steps", "600",
                           "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "optimizer" in proc.stderr and "exp_avg" in proc.stderr, proc.stderr


def test_a_model_with_nan_weights_is_not_evaluated(tmp_path):
    agent = deeprl.DQN("CartPole-v1", **COMMON, **RUNS["dqn"][2])
    path = agent.save(tmp_path / "m.safetensors")
    agent.close()
    from safetensors import safe_open
    with safe_open(str(path), framework="np") as f:
        metadata = f.metadata()
    tensors = np_load_file(str(path))
    first = next(k for k in tensors if tensors[k].dtype.kind == "f")
    tensors[first] = np.full_like(tensors[first], np.nan)
    np_save_file(tensors, str(path), metadata=metadata)
    proc = subprocess.run([sys.executable, "-m", "deeprl", "eval", str(path), "--episodes", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "NaN" in proc.stderr and "mean return" not in proc.stdout, proc.stderr


@pytest.mark.parametrize("algo_value", ['["dqn"]', "7", "null"])
def test_a_config_whose_algo_is_not_a_name_is_one_line(tmp_path, algo_value):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(f'{{"algo": {algo_value}, "config": {{}}}}')
    proc = subprocess.run([sys.executable, "-m", "deeprl", "train", "--resume", str(run)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "config.json" in proc.stderr


@pytest.mark.parametrize("field,value", [("num_timesteps", "1e999"), ("num_timesteps", "-5"),
                                         ("num_timesteps", "2.5"), ("episodes", "1e999"), ("elapsed", "1e999")])
def test_impossible_counts_in_state_json_are_one_line(tmp_path, field, value):
    run = tmp_path / "run"
    agent = deeprl.DQN("CartPole-v1", total_steps=300, **COMMON, **RUNS["dqn"][2])
    agent.learn(run_dir=run, progress=False)
    agent.close()
    state_file = CheckpointDir(run / "checkpoints").latest() / "state.json"
    import json
    state = json.loads(state_file.read_text())
    text = json.dumps({**state, field: 0}).replace(f'"{field}": 0', f'"{field}": {value}')
    state_file.write_text(text)
    with pytest.raises(CheckpointError, match=field):
        deeprl.DQN.resume(run, total_steps=600)


def test_a_replayed_action_outside_the_space_is_one_line(tmp_path):
    run = tmp_path / "run"
    agent = deeprl.DQN("CartPole-v1", total_steps=300, **COMMON, **RUNS["dqn"][2])
    agent.learn(run_dir=run, progress=False)
    agent.close()
    ckpt = CheckpointDir(run / "checkpoints").latest()
    import json
    state = json.loads((ckpt / "state.json").read_text())
    log = state["env_state"][0]["log"]  # the episode's seed, then every action taken since its reset
    assert len(log) > 1, "the env state holds no action to damage"
    log[1] = 7  # CartPole has actions 0 and 1
    (ckpt / "state.json").write_text(json.dumps(state))
    with pytest.raises(CheckpointError):
        deeprl.DQN.resume(run, total_steps=600)


def test_damaged_files_leave_the_undamaged_copy_usable(tmp_path, trained_run):
    """A refused checkpoint changes nothing on disk: the run, copied before, is byte-identical."""
    algo, run, steps = trained_run
    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    ckpt = CheckpointDir(copy / "checkpoints").latest()
    rng = np_load_file(str(ckpt / "rng.safetensors"))
    rng["torch"] = rng["torch"][:100]
    np_save_file(rng, str(ckpt / "rng.safetensors"))
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file() and p.name != ".lock"}
    with pytest.raises(CheckpointError, match="random stream"):
        _resume(algo, copy, steps)
    after = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file() and p.name != ".lock"}
    assert before == after
