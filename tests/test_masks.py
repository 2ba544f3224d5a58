"""Invalid-action masks: from the env (Taxi's info, a Dict observation's entry) through the vector
env, replay and rollouts to DQN's and the policy gradients' actions, targets and losses."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
import torch

from gymnasium.envs.registration import EnvSpec
from gymnasium.utils.env_checker import check_env

from deeprl import A2C, DQN, PPO, REINFORCE
from deeprl.agents.dqn import masked_q, uniform_allowed
from deeprl.buffers import PrioritizedReplayBuffer, ReplayBuffer, ReplaySamples
from deeprl.envs import make_env, make_vec_env
from deeprl.envs.make import has_wrapper
from deeprl.envs.masks import ActionMaskToInfo
from deeprl.errors import ConfigError, EnvError
from deeprl.nets import Categorical
from tests.resume import crash_and_resume

FAST = dict(preset=None, eval_freq=0, checkpoint_freq=0, log_interval=500, eval_episodes=4)


class GuardInvalidActions(gym.Wrapper):
    """Fails the test at the first action the env's own mask forbids; counts the actions it checked."""

    checked = 0

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._mask = info["action_mask"]
        return obs, info

    def step(self, action):
        assert self._mask[int(action)], f"masked action {action} taken (mask {self._mask})"
        GuardInvalidActions.checked += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._mask = info["action_mask"]
        return obs, reward, terminated, truncated, info


class PickValidEnv(gym.Env):
    """Dict observation ``{"observation": one-hot target, "action_mask": valid actions}``: a random
    half of 4 actions is valid, the target among them; reward 1 for the target, -1 (and a count in
    ``invalid``) for a masked action."""

    invalid = 0

    def __init__(self, extra_key: bool = False):
        entries = {"observation": gym.spaces.Box(0.0, 1.0, (4,), np.float32),
                   "action_mask": gym.spaces.MultiBinary(4)}
        if extra_key:
            entries["step"] = gym.spaces.Discrete(10)
        self.observation_space = gym.spaces.Dict(entries)
        self.action_space = gym.spaces.Discrete(4)

    def _obs(self):
        valid = self.np_random.permutation(4)[:2]
        self.mask = np.zeros(4, np.int8)
        self.mask[valid] = 1
        self.target = int(valid[0])
        obs = {"observation": np.eye(4, dtype=np.float32)[self.target], "action_mask": self.mask.copy()}
        if "step" in self.observation_space.spaces:
            obs["step"] = self.t
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        PickValidEnv.invalid += int(not self.mask[int(action)])
        reward = float(int(action) == self.target) - float(not self.mask[int(action)])
        self.t += 1
        return self._obs(), reward, False, self.t >= 9, {}


gym.register("DeeprlTest/GuardedTaxi-v0", entry_point=lambda **kw: GuardInvalidActions(gym.make("Taxi-v4", **kw)),
             max_episode_steps=200)
gym.register("DeeprlTest/PickValid-v0", entry_point=f"{__name__}:PickValidEnv")
TAXI = "tests.test_masks:DeeprlTest/GuardedTaxi-v0"
PICK = "tests.test_masks:DeeprlTest/PickValid-v0"


# ------------------------------------------------------------------------------------ envs
def test_a_dict_observations_mask_moves_into_info():
    env = make_env(PICK)
    assert has_wrapper(env, ActionMaskToInfo)
    assert env.observation_space == gym.spaces.Box(0.0, 1.0, (4,), np.float32)  # the one entry left
    obs, info = env.reset(seed=0)
    assert obs.shape == (4,) and info["action_mask"].sum() == 2 and info["action_mask"][obs.argmax()] == 1
    obs, _, _, _, info = env.step(int(np.flatnonzero(info["action_mask"])[0]))
    assert obs.shape == (4,) and info["action_mask"][obs.argmax()] == 1

    two = ActionMaskToInfo(PickValidEnv(extra_key=True))  # two entries left: a Dict without the mask
    assert set(two.observation_space.spaces) == {"observation", "step"}
    obs, info = two.reset(seed=0)
    assert set(obs) == {"observation", "step"} and two.observation_space.contains(obs)
    assert info["action_mask"].shape == (4,)
    with pytest.raises(EnvError, match="action_mask"):
        ActionMaskToInfo(gym.make("CartPole-v1"))


@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped version")  # wrapped on purpose
def test_the_mask_wrapper_passes_gymnasiums_checker_and_its_spec_rebuilds_it():
    env = make_env(PICK)
    check_env(env)
    remade = gym.make(EnvSpec.from_json(env.spec.to_json()))
    assert remade.spec == env.spec and remade.observation_space == env.observation_space
    for e in (env, remade):
        obs, info = e.reset(seed=3)
        trace = [obs]
        for _ in range(12):
            obs, _, _, _, info = e.step(int(np.flatnonzero(info["action_mask"])[-1]))
            trace.append(obs)
        e.trace = np.stack(trace)
    np.testing.assert_array_equal(env.trace, remade.trace)


def test_the_vector_env_carries_the_masks_of_obs_and_next_obs_through_autoresets():
    envs = make_vec_env("Taxi-v4", 3, seed=0)
    taxi = gym.make("Taxi-v4").unwrapped
    rng = np.random.default_rng(0)
    obs = envs.reset()
    assert np.array_equal(envs.action_mask, [taxi.action_mask(s) for s in obs])
    ended = 0
    for _ in range(450):
        actions = uniform_allowed(envs.action_mask, rng.random(3))
        step = envs.step(actions)
        assert step.action_mask.dtype == bool and step.action_mask is envs.action_mask
        assert np.array_equal(step.action_mask, [taxi.action_mask(s) for s in step.obs])  # after autoreset: the reset's
        assert np.array_equal(step.next_action_mask, [taxi.action_mask(s) for s in step.next_obs])  # s', final ones too
        ended += int((step.terminated | step.truncated).sum())
    assert ended >= 3
    state = envs.state()
    restored = make_vec_env("Taxi-v4", 3, seed=0)
    assert np.array_equal(restored.restore(state), step.obs)
    assert np.array_equal(restored.action_mask, step.action_mask)  # re-derived by the replay
    envs.close(), restored.close()
    workers = make_vec_env("Taxi-v4", 3, seed=0, vectorization="async")  # the same, from worker processes
    try:
        np.testing.assert_array_equal(workers.restore(state), step.obs)
        np.testing.assert_array_equal(workers.action_mask, step.action_mask)
        after = workers.step(uniform_allowed(workers.action_mask, rng.random(3)))
        assert np.array_equal(after.action_mask, [taxi.action_mask(s) for s in after.obs])
    finally:
        workers.close()
    plain = make_vec_env("CartPole-v1", 2, seed=0)
    plain.reset()
    step = plain.step(np.zeros(2, np.int64))
    assert plain.action_mask is None and step.action_mask is None and step.next_action_mask is None


# ------------------------------------------------------------------------------------ math
def test_the_masked_target_by_hand():
    """next Q (target net) [1, 5, 3] with action 1 masked: max 3, not 5; double Q picks argmax of the
    online net [0, 9, 2] over the valid actions (2), scored by the target net (3).  A state that
    allows nothing (an episode's end, discount 0) gives r, not NaN."""
    agent = DQN("Taxi-v4", **FAST)
    target_q = torch.tensor([[1.0, 5.0, 3.0], [2.0, 2.0, 2.0]])
    online_q = torch.tensor([[0.0, 9.0, 2.0], [1.0, 1.0, 1.0]])
    agent.q_target, agent.q = (lambda obs: target_q), (lambda obs: online_q)
    batch = ReplaySamples(obs=torch.zeros(2), actions=torch.zeros(2), returns=torch.tensor([1.0, 0.5]),
                          discounts=torch.tensor([0.9, 0.0]), next_obs=torch.zeros(2), weights=torch.ones(2),
                          indices=np.arange(2), next_action_mask=torch.tensor([[True, False, True], [False] * 3]))
    for double in (False, True):
        agent.config = dataclasses.replace(agent.config, double_q=double)
        torch.testing.assert_close(agent.td_target(batch), torch.tensor([1.0 + 0.9 * 3.0, 0.5]))
    batch.next_action_mask = None  # unmasked: max 5 (double: online argmax 1, scored 5)
    torch.testing.assert_close(agent.td_target(batch), torch.tensor([1.0 + 0.9 * 5.0, 0.5]))
    assert masked_q(target_q, torch.tensor([[False, True, False], [True, True, True]]))[0].tolist() == \
        [-float("inf"), 5.0, -float("inf")]


def test_the_masked_random_action_is_uniform_over_the_valid_ones():
    rng = np.random.default_rng(0)
    mask = np.array([[True, False, True, False, True]] * 30_000)
    counts = np.bincount(uniform_allowed(mask, rng.random(len(mask))), minlength=5) / len(mask)
    np.testing.assert_allclose(counts, [1 / 3, 0, 1 / 3, 0, 1 / 3], atol=0.01)
    u = rng.random(1000)  # all valid: exactly the unmasked draw
    assert np.array_equal(uniform_allowed(np.ones((1000, 5), bool), u), (u * 5).astype(np.int64))


def test_a_masked_categorical_has_zero_probability_finite_entropy_and_gradients():
    logits = torch.randn(64, 6, requires_grad=True)
    mask = torch.rand(64, 6) < 0.5
    mask[:, 0] = True
    dist = Categorical(logits, mask)
    assert (dist.logits.exp()[~mask] == 0).all() and torch.isfinite(dist.logits).all()
    assert mask[torch.arange(64), dist.sample()].all() and mask[torch.arange(64), dist.mode()].all()
    (dist.entropy().mean() + dist.log_prob(torch.zeros(64)).mean()).backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad[~mask] == 0).all()


# ------------------------------------------------------------------------------------ acting
def _agents():
    return [DQN("Taxi-v4", **FAST, eval_eps=0.5), PPO("Taxi-v4", **FAST), A2C(PICK, **FAST)]


def test_predict_never_returns_a_masked_action():
    rng = np.random.default_rng(0)
    for agent in _agents():
        n = agent.action_space.n
        obs = np.stack([agent.observation_space.sample() for _ in range(300)])
        mask = rng.random((300, n)) < 0.3
        mask[np.arange(300), rng.integers(0, n, 300)] = True
        for deterministic in (True, False):
            actions = agent.predict(obs, deterministic=deterministic, action_mask=mask)
            assert mask[np.arange(300), actions].all(), agent.algo
        one = np.zeros(n, np.int8)
        one[n - 1] = 1
        assert agent.predict(obs[0], action_mask=one) == n - 1
        with pytest.raises(ConfigError, match="shape"):
            agent.predict(obs[:2], action_mask=one)
        with pytest.raises(ConfigError, match="allows no action"):
            agent.predict(obs[0], action_mask=np.zeros(n))


def test_an_agent_that_cannot_mask_refuses_masks():
    continuous = PPO("Pendulum-v1", **FAST)
    with pytest.raises(ConfigError, match="cannot act under invalid-action masks.*dqn, ppo"):
        continuous.predict(np.zeros(3, np.float32), action_mask=[1])
    from deeprl import WorldModel
    agent = WorldModel(PICK, preset=None, eval_freq=0, checkpoint_freq=0, log_interval=200, prefill_steps=50,
                       collect_steps=50, total_steps=100)
    with pytest.raises(ConfigError, match="worldmodel cannot act under invalid-action masks"):
        agent.learn()  # refused before its first step: no masked action taken
    assert agent.num_timesteps == 0


@pytest.mark.parametrize("make", [
    lambda: DQN(TAXI, **FAST, total_steps=1500, learning_starts=200, eps_fraction=0.5),
    lambda: DQN(TAXI, **FAST, total_steps=600, replay=False, target_update_interval=0, double_q=False),
    lambda: PPO(TAXI, **FAST, total_steps=1024, n_steps=64, num_envs=4, minibatch_size=64, n_epochs=2),
    lambda: A2C(TAXI, **FAST, total_steps=1000, num_envs=4),
    lambda: REINFORCE(TAXI, **FAST, total_steps=400, batch_episodes=1),
], ids=["dqn", "dqn-online", "ppo", "a2c", "reinforce"])
def test_no_masked_action_is_ever_taken_on_taxi_in_training_and_evaluation(make):
    """The env itself asserts each action against its mask (GuardInvalidActions)."""
    before = GuardInvalidActions.checked
    agent = make().learn(progress=False)
    assert GuardInvalidActions.checked - before == agent.num_timesteps
    result = agent.evaluate(4)
    assert result["episodes"] == 4 and GuardInvalidActions.checked - before > agent.num_timesteps + 4


def test_dqn_learns_a_dict_observation_task_with_masks():
    """PickValid: half the actions are masked, the target among the rest; random valid play earns 1/2."""
    before = PickValidEnv.invalid
    agent = DQN(PICK, **FAST, total_steps=2000, learning_starts=200, train_freq=1, eps_fraction=0.3,
                target_update_interval=100, lr=1e-3).learn(progress=False)
    assert agent.evaluate(20)["mean_return"] >= 8.0  # of 9 steps an episode
    assert PickValidEnv.invalid == before


# ------------------------------------------------------------------------------------ replay and resume
def _fill(buffer, rng, steps=23, n=5):
    """Adds random steps with episode ends; returns the masks it gave (s and s', per step)."""
    E = buffer.num_envs
    given = []
    for t in range(steps):
        mask = rng.random((E, n)) < 0.5
        next_mask = rng.random((E, n)) < 0.5
        done = rng.random(E) < 0.2
        if not done.any():
            next_mask = mask  # no episode ended: s' of this step is the next step's s
        buffer.add(rng.random((E, 2)).astype(np.float32), rng.random((E, 2)).astype(np.float32),
                   rng.integers(0, n, E), rng.random(E).astype(np.float32), done, np.zeros(E, bool), mask, next_mask)
        given.append((mask, next_mask, done))
    return given


@pytest.mark.parametrize("cls", [ReplayBuffer, PrioritizedReplayBuffer])
def test_replay_stores_the_masks_of_s_prime_and_checkpoints_them(cls):
    rng = np.random.default_rng(0)
    buffer = cls(20, 2, (2,), np.float32)  # 10 rows of 2 envs: overwritten twice
    given = _fill(buffer, rng)
    idx = np.arange(len(buffer))
    row, env = idx // 2, idx % 2
    expected = []
    for r, e in zip(row, env):  # the step written to row r last is step t = r + 20 (or r + 10 for the newest rows)
        t = r + 20 if r + 20 < len(given) else r + 10
        mask, next_mask, done = given[t]
        later = given[t + 1][0] if t + 1 < len(given) else None
        expected.append(next_mask[e] if done[e] or later is None else later[e])
    np.testing.assert_array_equal(buffer.next_masks(idx), expected)
    batch = buffer.sample(64, np.random.default_rng(1))
    np.testing.assert_array_equal(batch.next_action_mask.numpy(), buffer.next_masks(batch.indices))

    copy = cls(20, 2, (2,), np.float32)
    copy.load_state({k: v.copy() for k, v in buffer.state_arrays().items()}, buffer.state_meta())
    np.testing.assert_array_equal(copy.next_masks(idx), expected)
    a, b = buffer.sample(64, np.random.default_rng(2)), copy.sample(64, np.random.default_rng(2))
    assert torch.equal(a.next_action_mask, b.next_action_mask) and torch.equal(a.next_obs, b.next_obs)

    plain = cls(20, 2, (2,), np.float32)  # an env without masks: none stored, none in the checkpoint
    zeros = np.zeros((2, 2), np.float32)
    plain.add(zeros, zeros, np.zeros(2, np.int64), np.zeros(2, np.float32), np.zeros(2, bool), np.zeros(2, bool))
    assert plain.masks is None and not {"action_mask", "head_next_mask", "final_mask"} & set(plain.state_arrays())
    assert plain.sample(4, rng).next_action_mask is None
    with pytest.raises(ValueError, match="arrays are"):
        plain.load_state({k: v for k, v in buffer.state_arrays().items() if k != "final_mask"}, buffer.state_meta())


@pytest.mark.parametrize("make", [
    lambda: DQN(TAXI, preset=None, total_steps=1500, learning_starts=200, checkpoint_freq=500, eval_freq=0,
                log_interval=250, num_envs=2),
    lambda: PPO(TAXI, preset=None, total_steps=1024, n_steps=64, num_envs=2, minibatch_size=64, n_epochs=2,
                checkpoint_freq=512, eval_freq=0, log_interval=256),
], ids=["dqn", "ppo"])
def test_a_resumed_masked_run_equals_an_uninterrupted_one(make, tmp_path):
    whole, resumed = crash_and_resume(make, tmp_path, crash_at=750)
    if isinstance(whole, DQN):
        assert whole.buffer.masks is not None
        np.testing.assert_array_equal(whole.buffer.masks, resumed.buffer.masks)
