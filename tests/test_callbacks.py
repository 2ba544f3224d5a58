"""Callbacks: hook points, their order and counts, stopping, refusals at the call, and the stock ones."""

from __future__ import annotations

import shutil

import pytest
import torch

import deeprl
from deeprl import A2C, DQN, Callback, CheckpointCallback, EvalCallback, StopOnRewardThreshold
from deeprl.callbacks import CallbackList
from deeprl.errors import ConfigError
from deeprl.evaluation import evaluate

# a tiny DQN: one env, so one iteration is one env step
QUICK = dict(preset=None, eval_freq=0, checkpoint_freq=0, log_interval=100, learning_starts=50, batch_size=8,
             train_freq=4, net_arch=[8], eval_episodes=2)


class Recorder(Callback):
    """Every hook, as (hook, step)."""

    def __init__(self):
        self.calls: list[tuple[str, int]] = []

    def on_training_start(self, agent):
        self.calls.append(("start", agent.num_timesteps))

    def on_step(self, agent):
        self.calls.append(("step", agent.num_timesteps))

    def on_update(self, agent):
        self.calls.append(("update", agent.num_timesteps))

    def on_log(self, agent, metrics):
        assert metrics["charts/episodes"] == agent.episodes
        self.calls.append(("log", agent.num_timesteps))

    def on_evaluation(self, agent, result):
        assert result["episodes"] == 2
        self.calls.append(("evaluation", agent.num_timesteps))

    def on_training_end(self, agent):
        self.calls.append(("end", agent.num_timesteps))

    def count(self, hook):
        return sum(h == hook for h, _ in self.calls)


def weights(agent):
    return {k: v.clone() for k, v in agent._model_tensors().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_hooks_run_in_order_with_their_counts():
    hooks = Recorder()
    DQN("CartPole-v1", **{**QUICK, "eval_freq": 200}, total_steps=400).learn(progress=False, callback=hooks)
    assert hooks.calls[0] == ("start", 0) and hooks.calls[-1] == ("end", 400)
    assert [hooks.count(h) for h in ("step", "update", "log", "evaluation")] == [400, 400, 4, 2]
    # each step, then (at a log step) its evaluation and row, then the update's hook
    assert hooks.calls[1:4] == [("step", 1), ("update", 1), ("step", 2)]
    i = hooks.calls.index(("step", 200))
    assert hooks.calls[i:i + 4] == [("step", 200), ("evaluation", 200), ("log", 200), ("update", 200)]


def test_a_policy_gradient_steps_its_envs_many_times_per_update():
    hooks = Recorder()
    A2C("CartPole-v1", preset=None, eval_freq=0, checkpoint_freq=0, log_interval=64, num_envs=2, n_steps=8,
        total_steps=128).learn(progress=False, callback=hooks)
    steps = [s for h, s in hooks.calls if h == "step"]
    updates = [s for h, s in hooks.calls if h == "update"]
    assert steps == list(range(2, 129, 2))   # one call per step of both envs
    assert updates == list(range(16, 129, 16))  # one per rollout of 8 steps x 2 envs and its update


def test_on_step_is_dispatched_only_when_a_callback_has_it(monkeypatch):
    class Updates(Callback):
        def on_update(self, agent):
            pass

    dispatched = []
    monkeypatch.setattr(CallbackList, "on_step", lambda self, agent: dispatched.append(agent.num_timesteps))
    agent = DQN("CartPole-v1", **QUICK, total_steps=100)
    agent.learn(progress=False, callback=[Updates(), lambda a: None])
    assert dispatched == []
    agent.learn(10, progress=False, callback=[Updates(), Recorder()])
    assert dispatched == list(range(101, 111))
    agent.close()


def test_a_hook_returning_false_stops_the_run_cleanly(tmp_path):
    class StopAt(Callback):
        def on_step(self, agent):
            return agent.num_timesteps < 150

    agent = DQN("CartPole-v1", **QUICK, total_steps=1000)
    agent.learn(run_dir=tmp_path / "run", progress=False, callback=StopAt())
    assert agent.num_timesteps == 150 and not agent.paused
    # finished as a complete run is: the model, a checkpoint of that step, the final evaluation
    assert (tmp_path / "run" / "model.safetensors").exists() and (tmp_path / "run" / "eval.json").exists()
    assert agent.run.checkpoints.latest().name == f"step_{150:012d}"
    assert deeprl.load(tmp_path / "run" / "model.safetensors").num_timesteps == 150
    agent.close()

    stopped = DQN("CartPole-v1", **QUICK, total_steps=1000)

    class StopAtStart(Callback):
        def on_training_start(self, agent):
            return False

    stopped.learn(progress=False, callback=StopAtStart())
    assert stopped.num_timesteps == 0
    stopped.close()


def test_a_list_mixes_callables_and_callback_objects_and_every_one_runs():
    hooks, seen = Recorder(), []
    agent = DQN("CartPole-v1", **QUICK, total_steps=300)
    agent.learn(progress=False, callback=[lambda a: seen.append(("f", a.num_timesteps)), hooks,
                                          lambda a: seen.append(("g", a.num_timesteps))])
    assert seen == [(k, s) for s in (100, 200, 300) for k in "fg"]  # plain callables: after each log row
    assert hooks.count("log") == 3 and hooks.count("step") == 300
    # one returning False stops training; the others still run at that row
    agent.learn(1000, progress=False, callback=(hooks, lambda a: False, lambda a: seen.append(("h", 0))))
    assert agent.num_timesteps == 400 and seen[-1] == ("h", 0) and hooks.calls[-1] == ("end", 400)
    agent.close()


@pytest.mark.parametrize("bad, named", [
    (42, "42 (int)"), ("checkpoint", "'checkpoint' (str)"), ([print, 3.5], "3.5 (float)"), ({print}, "(set)"),
    (CheckpointCallback, "the class CheckpointCallback"),
])
def test_a_bad_callback_is_refused_at_the_call(bad, named):
    agent = DQN("CartPole-v1", **QUICK, total_steps=100)
    with pytest.raises(ConfigError) as info:
        agent.learn(progress=False, callback=bad)
    message = str(info.value)
    assert named in message and "\n" not in message and agent.num_timesteps == 0
    agent.close()


def test_a_misspelt_hook_and_bad_stock_settings_are_refused():
    class Misspelt(Callback):
        def on_rollout_end(self, agent):  # Stable-Baselines3's name; deeprl's is on_update
            return False

    agent = DQN("CartPole-v1", **QUICK, total_steps=100)
    with pytest.raises(ConfigError, match="on_rollout_end, which is not a hook; the hooks are on_training_start"):
        agent.learn(progress=False, callback=Misspelt())
    for make, match in [(lambda: CheckpointCallback(0), "every_steps"), (lambda: EvalCallback("CartPole-v1", 100,
                        episodes=0), "episodes"), (lambda: StopOnRewardThreshold("high"), "threshold"),
                        (lambda: StopOnRewardThreshold(1, eval_callback=print), "eval_callback")]:
        with pytest.raises(ConfigError, match=match):
            make()
    with pytest.raises(ConfigError, match="run directory .* or save_path"):
        agent.learn(progress=False, callback=CheckpointCallback(50))
    with pytest.raises(ConfigError, match="'Acrobot-v1' has spaces .* evaluate on an env of the same spaces"):
        agent.learn(progress=False, callback=EvalCallback("Acrobot-v1", 50))
    assert agent.num_timesteps == 0
    agent.close()


def test_checkpoint_callback_checkpoints_every_n_steps_and_training_resumes_exactly(tmp_path):
    every = CheckpointCallback(150, keep=10)
    agent = DQN("CartPole-v1", **QUICK, total_steps=500)
    agent.learn(run_dir=tmp_path / "run", progress=False, callback=every)
    assert every.steps == [150, 300, 450]
    folders = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step_*"))
    assert folders == [f"step_{n:012d}" for n in (150, 300, 450, 500)]  # and the run's own, at its end
    final = weights(agent)
    agent.close()

    # a checkpoint taken between log rows: training from it goes on exactly as the run did
    for n in (300, 450, 500):
        shutil.rmtree(tmp_path / "run" / "checkpoints" / f"step_{n:012d}")
    resumed = DQN.resume(tmp_path / "run")
    assert resumed.num_timesteps == 150
    resumed.learn(progress=False)
    assert resumed.num_timesteps == 500 and same_weights(weights(resumed), final)
    resumed.close()


def test_checkpoint_callback_saves_models_without_a_run_directory(tmp_path):
    every = CheckpointCallback(100, save_path=tmp_path / "models")
    agent = DQN("CartPole-v1", **QUICK, total_steps=250)
    agent.learn(progress=False, callback=every)
    assert every.steps == [100, 200]
    saved = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert saved == [f"step_{n:012d}.safetensors" for n in (100, 200)]
    assert deeprl.load(tmp_path / "models" / saved[-1]).num_timesteps == 200
    agent.close()


@pytest.mark.filterwarnings("ignore:.*CartPole-v0 is out of date")  # a separate env id of the same spaces
def test_eval_callback_evaluates_on_its_own_env_and_leaves_training_as_it_was(tmp_path):
    plain = DQN("CartPole-v1", **QUICK, total_steps=300, seed=4)
    plain.learn(progress=False)
    evaluations = EvalCallback("CartPole-v0", 100, episodes=3, seed=7, best_model_path=tmp_path / "best")
    agent = DQN("CartPole-v1", **QUICK, total_steps=300, seed=4)
    agent.learn(progress=False, callback=evaluations)
    assert [step for step, _, _ in evaluations.results] == [100, 200, 300]
    assert same_weights(weights(agent), weights(plain))  # its evaluations drew from no training stream
    # the last result is the agent's greedy policy on CartPole-v0, episodes seeded from 7
    expected = evaluate(agent._eval_policy(), "CartPole-v0", 3, 7)
    assert evaluations.results[-1][1:] == (expected["mean_return"], expected["std_return"])
    assert evaluations.best_mean_return == max(mean for _, mean, _ in evaluations.results)
    assert deeprl.load(tmp_path / "best.safetensors").num_timesteps in (100, 200, 300)
    plain.close()
    agent.close()


def test_eval_callback_stops_training_when_evaluation_stops_improving():
    # no update ever happens (learning starts after the run), so every evaluation scores the same
    evaluations = EvalCallback("CartPole-v1", 100, episodes=2, stop_after_no_improvement=2)
    agent = DQN("CartPole-v1", **{**QUICK, "learning_starts": 10_000}, total_steps=1000)
    agent.learn(progress=False, callback=evaluations)
    assert agent.num_timesteps == 300 and len(evaluations.results) == 3
    assert len({mean for _, mean, _ in evaluations.results}) == 1
    agent.close()


def test_stop_on_reward_threshold_stops_at_the_training_return():
    # a random CartPole policy returns about 20 per episode
    reached = StopOnRewardThreshold(5)
    agent = DQN("CartPole-v1", **QUICK, total_steps=1000)
    agent.learn(progress=False, callback=reached)
    assert reached.reached_at == agent.num_timesteps == 100
    never = StopOnRewardThreshold(1e9)
    agent.learn(200, progress=False, callback=never)
    assert never.reached_at is None and agent.num_timesteps == 300
    agent.close()


def test_stop_on_reward_threshold_stops_at_an_eval_callbacks_result():
    evaluations = EvalCallback("CartPole-v1", 150, episodes=2)
    reached = StopOnRewardThreshold(1, eval_callback=evaluations)
    agent = DQN("CartPole-v1", **QUICK, total_steps=1000)
    agent.learn(progress=False, callback=[evaluations, reached])
    assert reached.reached_at == agent.num_timesteps == 150 and len(evaluations.results) == 1
    agent.close()
