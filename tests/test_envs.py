"""Making envs from ids, and the checkpointable vector env."""

import numpy as np
import pytest

from deeprl.envs import AsyncVecEnv, VecEnv, make_env, make_vec_env
from deeprl.envs.vector import _EnvFactory
from deeprl.errors import EnvError
from tests.envs import COUNTDOWN, IDENTITY


def test_unknown_id_suggests_close_ids():
    with pytest.raises(EnvError, match="unknown environment 'CartPol-v1'.*'CartPole-v1'"):
        make_env("CartPol-v1")
    with pytest.raises(EnvError, match="unknown environment 'CartPole-v9'"):
        make_env("CartPole-v9")


def test_module_ids():
    env = make_env(IDENTITY)
    assert env.action_space.n == 3
    with pytest.raises(EnvError, match="cannot import module 'no_such_module'"):
        make_env("no_such_module:Thing-v0")


def test_atari_id_gets_the_standard_preprocessing():
    env = make_env("ALE/Pong-v5")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    raw = make_env("ALE/Pong-v5", atari_wrappers="off")
    assert raw.observation_space.shape == (3, 210, 160)  # channels first


def test_step_separates_final_obs_from_reset_obs():
    envs = make_vec_env(COUNTDOWN, 2, seed=0)
    obs = envs.reset()
    assert obs[:, 0].tolist() == [0, 0]
    for t in range(1, 5):
        step = envs.step(np.zeros(2, np.int64))
        assert step.next_obs[:, 0].tolist() == [t, t] and not step.terminated.any()
    step = envs.step(np.zeros(2, np.int64))   # 5th step terminates (length 5)
    assert step.terminated.all() and not step.truncated.any()
    assert step.next_obs[:, 0].tolist() == [5, 5]   # the true successor, for the buffer
    assert step.obs[:, 0].tolist() == [0, 0]        # already reset, for acting
    assert sorted(step.episodes) == [(0, 15.0, 5), (1, 15.0, 5)]


def test_truncation_is_reported_as_truncation():
    envs = VecEnv([lambda: __import__("gymnasium").wrappers.RecordEpisodeStatistics(
        __import__("tests.envs", fromlist=["CountdownEnv"]).CountdownEnv(length=10, truncate_at=3))], seed=0)
    envs.reset()
    steps = [envs.step(np.zeros(1, np.int64)) for _ in range(3)]
    assert steps[-1].truncated[0] and not steps[-1].terminated[0]


def _rollout(envs, actions):
    out = []
    for a in actions:
        s = envs.step(a)
        out.append((s.obs.copy(), s.reward.copy(), s.terminated.copy(), s.truncated.copy()))
    return out


@pytest.mark.parametrize("env_id", ["CartPole-v1", "ALE/Breakout-v5"])
def test_restore_rebuilds_the_exact_state(env_id):
    rng = np.random.default_rng(0)
    n = 2
    envs = make_vec_env(env_id, n, seed=7)
    envs.reset()
    k = envs.single_action_space.n
    _rollout(envs, rng.integers(0, k, size=(150, n)))
    state = envs.state()
    future = rng.integers(0, k, size=(60, n))
    expected = _rollout(envs, future)
    fresh = make_vec_env(env_id, n, seed=7)
    fresh.restore(state)
    got = _rollout(fresh, future)
    for (o1, r1, te1, tr1), (o2, r2, te2, tr2) in zip(expected, got):
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(te1, te2)
    envs.close()
    fresh.close()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_restore_replays_continuous_actions_in_their_own_dtype(dtype):
    """Pendulum's physics in float32 differ from float64: the replay must not widen the torques
    that JSON stored as plain numbers."""
    rng = np.random.default_rng(1)
    envs = make_vec_env("Pendulum-v1", 2, seed=3)
    envs.reset()
    _rollout(envs, rng.uniform(-2, 2, size=(50, 2, 1)).astype(dtype))
    state = envs.state()
    future = rng.uniform(-2, 2, size=(30, 2, 1)).astype(dtype)
    expected = _rollout(envs, future)
    fresh = make_vec_env("Pendulum-v1", 2, seed=3)
    fresh.restore(state)
    for (o1, r1, *_), (o2, r2, *_) in zip(expected, _rollout(fresh, future)):
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)
    envs.close()
    fresh.close()


def test_async_equals_sync():
    fns = [_EnvFactory("CartPole-v1", {}) for _ in range(3)]
    sync, asyn = VecEnv(fns, seed=1), AsyncVecEnv(fns, seed=1, num_workers=2)
    try:
        np.testing.assert_array_equal(sync.reset(), asyn.reset())
        actions = np.random.default_rng(0).integers(0, 2, size=(40, 3))
        for (o1, r1, _, _), (o2, r2, _, _) in zip(_rollout(sync, actions), _rollout(asyn, actions)):
            np.testing.assert_array_equal(o1, o2)
            np.testing.assert_array_equal(r1, r2)
        assert sync.state() == asyn.state()
    finally:
        asyn.close()


def test_minatar_ids_work_for_every_algorithm():
    from deeprl import DQN, PPO, WorldModel
    from deeprl.envs import make_env

    env = make_env("MinAtar/Breakout-v1", render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 10, 10) and obs.dtype == np.uint8 and set(np.unique(obs)) <= {0, 1}
    frame = env.render()
    assert frame.shape == (160, 160, 3) and frame.dtype == np.uint8
    env.close()
    fast = dict(preset=None, eval_freq=0, checkpoint_freq=0, total_steps=64)
    dqn = DQN("MinAtar/Breakout-v1", learning_starts=32, batch_size=16, **fast).learn()
    assert type(dqn.q.torso).__name__ == "GridCNN"
    PPO("MinAtar/Breakout-v1", n_steps=32, minibatch_size=32, n_epochs=1, **fast).learn()
    wm = WorldModel("MinAtar/Breakout-v1", prefill_steps=32, collect_steps=32, vae_steps=2, model_steps=2,
                    dream_iterations=1, dream_batch=8, batch_size=16, **fast).learn()
    assert wm.vae.likelihood == "bernoulli"


def test_action_repeat_sums_rewards_and_stops_at_the_episode_end():
    # Countdown's reward is the step index: a decision held for 3 steps earns 1 + 2 + 3, the next
    # 4 + 5 + 6, and the third stops after step 7, where the episode terminates
    env = make_env(COUNTDOWN, action_repeat=3, length=7)
    obs, _ = env.reset(seed=0)
    steps = [env.step(0) for _ in range(3)]
    assert [s[1] for s in steps] == [6.0, 15.0, 7.0]
    assert [s[0][0] for s in steps] == [3.0, 6.0, 7.0]
    assert [s[2] for s in steps] == [False, False, True]


def test_action_repeat_keeps_the_time_limit_in_env_steps():
    env = make_env("CartPole-v1", action_repeat=4, max_episode_steps=10)
    env.reset(seed=0)
    truncated, decisions = False, 0
    while not truncated:
        _, _, terminated, truncated, _ = env.step(decisions % 2)  # alternate: CartPole stays up for 10 steps
        assert not terminated
        decisions += 1
    assert decisions == 3  # 4 + 4 + 2 env steps


def test_action_repeat_is_a_setting_of_every_run():
    from deeprl import PPO
    agent = PPO("CartPole-v1", action_repeat=2, total_steps=64, num_envs=1, n_steps=32, minibatch_size=32, seed=0)
    agent.learn(progress=False)
    assert agent.num_timesteps == 64  # decisions
    assert "ActionRepeat" in str(agent.make_env())
    result = agent.evaluate(episodes=2)  # evaluation envs repeat too: each decision earns 2, the last 1 or 2
    assert 2 * result["mean_length"] - 1 <= result["mean_return"] <= 2 * result["mean_length"]


def test_action_repeat_never_repeats_an_action_the_env_has_masked():
    # PickValid re-draws its valid actions every step: a held action must stop where it turns invalid
    from tests.test_masks import PICK, PickValidEnv
    env = make_env(PICK, action_repeat=5)
    _, info = env.reset(seed=0)
    PickValidEnv.invalid = 0
    for _ in range(30):
        action = int(np.flatnonzero(info["action_mask"])[0])
        _, _, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            _, info = env.reset()
    assert PickValidEnv.invalid == 0


def test_evaluation_counts_cut_episodes_in_decisions_under_action_repeat(monkeypatch):
    from deeprl import evaluation
    monkeypatch.setattr(evaluation, "EVAL_EPISODE_CAP", 10)
    # Endless never ends: make_env cuts it at evaluation's limit of 10 env steps, 3 decisions of 4 here
    result = evaluation.evaluate(lambda obs: np.zeros(len(obs), np.int64), "tests.envs:DeeprlTest/Endless-v0",
                                 episodes=2, seed=0, env_kwargs={"action_repeat": 4})
    assert result["episode_cap"] == 3 and result["capped_episodes"] == 2 and result["mean_length"] == 3
