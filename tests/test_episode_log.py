"""EpisodeLog: one env's seeded resets and action log, restored exactly without any vector env."""

import json

import gymnasium as gym
import numpy as np
import pytest

from deeprl.envs import EpisodeLog, VecEnv, make_env, make_vec_env
from deeprl.envs.episode_log import episode_seed
from deeprl.envs.vector import _EnvFactory
from tests.envs import COUNTDOWN


def _actions(env: gym.Env, rng: np.random.Generator, n: int, dtype=np.float32) -> list:
    space = env.action_space
    if isinstance(space, gym.spaces.Discrete):
        return [int(a) for a in rng.integers(0, space.n, size=n)]
    return list(rng.uniform(space.low, space.high, size=(n, *space.shape)).astype(dtype))


def _play(env: EpisodeLog, actions: list) -> list:
    """Steps with a reset after every episode end: what each step gave, and the reset observations."""
    out = []
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        episode = info.get("episode")  # (Atari's own statistics also hold a wall time, "t")
        out.append((obs, reward, terminated, truncated, episode and (episode["r"], episode["l"])))
        if terminated or truncated:
            out.append((env.reset()[0],))
    return out


def _assert_same(got: list, expected: list) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g[0], e[0])
        assert g[1:] == e[1:]


# (env id, make_env kwargs, steps before the checkpoint): CartPole (Discrete), Pendulum (Box
# torques in float32 and float64: different physics), MinAtar, Atari with episodic life (whose log
# holds the resets that only continued the game after a lost life)
CASES = {
    "cartpole": ("CartPole-v1", {}, 300, None),
    "pendulum-float32": ("Pendulum-v1", {}, 230, np.float32),
    "pendulum-float64": ("Pendulum-v1", {}, 230, np.float64),
    "minatar": ("MinAtar/Breakout-v1", {}, 300, None),
    "atari-episodic-life": ("ALE/Breakout-v5", {}, 250, None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_wrapper_alone_restores_the_exact_state(case):
    env_id, kwargs, steps, dtype = CASES[case]
    rng = np.random.default_rng(0)
    env = EpisodeLog(make_env(env_id, **kwargs), seed=7, index=3)
    env.reset()
    _play(env, _actions(env, rng, steps, dtype))
    if case == "atari-episodic-life":  # play on until the log holds a lost life's (non-real) reset
        while None not in env.log:
            _play(env, _actions(env, rng, 20))
    state = json.loads(json.dumps(env.state()))  # as a checkpoint holds it
    assert set(state) == {"episode", "log", "action_dtype"}
    future = _actions(env, rng, 150, dtype)
    fresh = EpisodeLog(make_env(env_id, **kwargs), seed=7, index=3)
    fresh.restore(state)
    assert (fresh.episode_return, fresh.episode_length) == (env.episode_return, env.episode_length)
    assert fresh.state() == env.state()
    expected = _play(env, future)
    _assert_same(_play(fresh, future), expected)
    assert fresh.state() == env.state()
    env.close()
    fresh.close()


def test_restore_returns_the_observation_to_act_on():
    rng = np.random.default_rng(1)
    env = EpisodeLog(make_env("CartPole-v1"), seed=0)
    obs, _ = env.reset()
    for a in _actions(env, rng, 40):
        obs, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            obs, _ = env.reset()
    np.testing.assert_array_equal(EpisodeLog(make_env("CartPole-v1"), seed=0).restore(env.state()), obs)


def test_a_state_written_before_the_wrapper_still_restores():
    """Checkpoints hold ``{"episode", "log", "action_dtype"}`` per env, as the vector env's slots
    wrote them: the reset seed, then the actions (JSON numbers), then how many resets were done."""
    seed = episode_seed(7, 0, 4)
    actions = [0, 1, 1, 0, 1, 0, 0, 1]
    state = {"episode": 5, "log": [seed, *actions], "action_dtype": None}
    bare = make_env("CartPole-v1")
    expected, _ = bare.reset(seed=seed)
    for a in actions:
        expected, *_ = bare.step(a)
    env = EpisodeLog(make_env("CartPole-v1"), seed=7, index=0)
    np.testing.assert_array_equal(env.restore(state), expected)
    assert env.episode == 5 and env.episode_length == len(actions) and env.episode_return == len(actions)
    env.reset()
    assert env.log[0] == episode_seed(7, 0, 5)  # the next episode's seed follows on


def test_seeds_follow_the_episode_count_or_the_caller():
    env = EpisodeLog(make_env("CartPole-v1"), seed=11, index=2)
    for k in range(3):
        env.reset()
        assert env.log == [episode_seed(11, 2, k)] and env.episode == k + 1
    env.reset(seed=5)  # the caller's seed, then a stream from it (as Gymnasium's envs do)
    assert env.log == [5] and env.episode == 1
    env.reset()
    assert env.log == [episode_seed(5, 2, 1)]
    state = env.state()
    assert state["seed"] == 5  # not the seed the wrapper was made with: the state says so
    copy = EpisodeLog(make_env("CartPole-v1"), seed=11, index=2)
    copy.restore(state)
    copy.reset()
    assert copy.log == [episode_seed(5, 2, 2)]
    anonymous = EpisodeLog(make_env("CartPole-v1"))  # seed=None: fresh seeds, still logged and replayable
    anonymous.reset()
    for a in (0, 1, 1):
        obs = anonymous.step(a)[0]
    copy = EpisodeLog(make_env("CartPole-v1"))
    np.testing.assert_array_equal(copy.restore(anonymous.state()), obs)
    with pytest.raises(ValueError, match="options"):
        env.reset(options={"low": 0.0})


def test_episode_statistics_are_reported_at_the_end():
    env = EpisodeLog(make_env(COUNTDOWN))
    env.reset()
    infos = [env.step(0)[4] for _ in range(5)]
    assert all("episode" not in i for i in infos[:-1])
    assert infos[-1]["episode"] == {"r": 15.0, "l": 5}
    # an env that records its own (Atari: whole games across lives) keeps its numbers
    inner = gym.wrappers.RecordEpisodeStatistics(make_env(COUNTDOWN))
    env = EpisodeLog(inner)
    env.reset()
    info = [env.step(0)[4] for _ in range(5)][-1]
    assert info["episode"]["r"] == 15.0 and "t" in info["episode"]


@pytest.mark.parametrize("state, message", [
    ({"log": [1]}, "episode"),
    ({"episode": 1, "log": []}, "reset seed"),
    ({"episode": 1, "log": ["x", 0]}, "reset seed"),
    ({"episode": 0, "log": [1, 0]}, "episode count"),
    ({"episode": 1, "log": [1, [0.5]], "action_dtype": "<U3"}, "action dtype"),
    ({"episode": 1, "log": [1, [0.5]], "action_dtype": "no such"}, "action dtype"),
    ({"episode": 1, "log": [1, 0], "seed": "7"}, "seed"),
])
def test_a_damaged_state_is_refused(state, message):
    with pytest.raises(ValueError, match=message):
        EpisodeLog(make_env("CartPole-v1")).restore(state)


@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped version",  # wrapped on purpose
                            "ignore:.*Box observation space m")  # CartPole's unbounded velocities
def test_it_passes_gymnasiums_env_checker_and_its_spec_rebuilds_it():
    from gymnasium.utils.env_checker import check_env

    check_env(EpisodeLog(make_env("CartPole-v1", check=False), seed=0), skip_render_check=True)
    env = EpisodeLog(make_env("CartPole-v1"), seed=3, index=1)
    remade = gym.make(gym.envs.registration.EnvSpec.from_json(env.spec.to_json()))
    assert isinstance(remade, EpisodeLog) and (remade.base_seed, remade.index) == (3, 1)
    np.testing.assert_array_equal(remade.reset()[0], env.reset()[0])


@pytest.mark.parametrize("num_envs", [1, 3])
def test_gymnasium_vector_envs_step_and_restore_it_exactly(num_envs):
    """Exact resume does not depend on deeprl's vector env: Gymnasium's SyncVectorEnv (automatic
    resets in the same step) over EpisodeLog gives VecEnv's numbers, and either restores the other's state."""
    fns = [_EnvFactory("CartPole-v1", {}) for _ in range(num_envs)]
    ours = VecEnv(fns, seed=5)

    def gymnasium_vec():
        wrapped = [lambda fn=fn, i=i: EpisodeLog(fn(), seed=5, index=i) for i, fn in enumerate(fns)]
        return gym.vector.SyncVectorEnv(wrapped, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    theirs = gymnasium_vec()
    np.testing.assert_array_equal(ours.reset(), theirs.reset()[0])
    rng = np.random.default_rng(0)
    ended = 0
    for a in rng.integers(0, 2, size=(300, num_envs)):
        step = ours.step(a)
        obs, reward, terminated, truncated, info = theirs.step(a)
        np.testing.assert_array_equal(step.obs, obs)
        np.testing.assert_array_equal(step.reward, reward.astype(np.float32))
        np.testing.assert_array_equal(step.terminated, terminated)
        for i in np.flatnonzero(terminated | truncated):
            np.testing.assert_array_equal(step.next_obs[i], info["final_obs"][i])
            assert (i, info["final_info"]["episode"]["r"][i], info["final_info"]["episode"]["l"][i]) in step.episodes
            ended += 1
    assert ended > 0
    state = json.loads(json.dumps([env.state() for env in theirs.envs]))
    assert state == ours.state()
    restored = gymnasium_vec()
    restored.reset()
    for env, s in zip(restored.envs, state):
        env.restore(s)
    fresh = VecEnv(fns, seed=5)
    fresh.restore(state)
    for a in rng.integers(0, 2, size=(100, num_envs)):
        expected = ours.step(a)
        np.testing.assert_array_equal(fresh.step(a).obs, expected.obs)
        np.testing.assert_array_equal(restored.step(a)[0], expected.obs)
    for v in (ours, theirs, restored, fresh):
        v.close()


def test_vector_env_state_is_its_envs_states():
    envs = make_vec_env("CartPole-v1", 2, seed=1)
    envs.reset()
    envs.step(np.array([0, 1]))
    assert envs.state() == [env.state() for env in envs.envs]
    assert all(isinstance(env, EpisodeLog) for env in envs.envs)
    with pytest.raises(ValueError, match="holds 1 envs"):
        envs.restore(envs.state()[:1])
    envs.close()
