"""SequenceReplay: contiguous windows per env, episode boundaries inside windows, the write head."""

import json

import numpy as np
import pytest
import torch

from deeprl.dreamer.sequence_buffer import SequenceReplay


def run(buf, steps, episode_len=None, seed=0):
    """Feed ``steps`` vector steps; obs = (env, that env's step counter), so time order is checkable.

    Env e's episodes last ``episode_len[e]`` steps (final observation included); after an episode
    ends the env stores one extra reset step with is_first, as a vector env's collector would.
    Returns each env's list of counters that start an episode.
    """
    E = buf.num_envs
    episode_len = episode_len or [10 ** 9] * E
    counter, age = np.zeros(E, np.int64), np.zeros(E, np.int64)
    firsts = [[] for _ in range(E)]
    rng = np.random.default_rng(seed)

    def add(ids, first, terminal):
        obs = np.stack([ids, counter[ids]], axis=1).astype(np.float32)
        action = rng.normal(size=(len(ids), 2)).astype(np.float32) + 5.0   # never 0 unless zeroed
        buf.add(obs, action, counter[ids].astype(np.float32) + 1.0, first, terminal, env_ids=ids)
        for e, f in zip(ids, first):
            if f:
                firsts[e].append(int(counter[e]))
        counter[ids] += 1
        age[ids] += 1

    add(np.arange(E), np.ones(E, bool), np.zeros(E, bool))
    for _ in range(steps - 1):
        ended = age + 1 == np.asarray(episode_len)
        add(np.arange(E), np.zeros(E, bool), ended)
        if ended.any():
            ids = np.flatnonzero(ended)
            age[ids] = 0
            add(ids, np.ones(len(ids), bool), np.zeros(len(ids), bool))
    return firsts


def test_shapes_and_dtypes():
    buf = SequenceReplay(64, 2, (3, 4), np.uint8, (5,), np.float32)
    for t in range(10):
        buf.add(np.full((2, 3, 4), t, np.uint8), np.ones((2, 5), np.float32), np.ones(2, np.float32),
                np.array([t == 0] * 2), np.zeros(2, bool))
    assert len(buf) == 20
    batch = buf.sample(7, 4, np.random.default_rng(0))
    assert set(batch) == {"obs", "action", "reward", "is_first", "is_terminal"}
    assert batch["obs"].shape == (7, 4, 3, 4) and batch["obs"].dtype == torch.uint8
    assert batch["action"].shape == (7, 4, 5) and batch["action"].dtype == torch.float32
    assert batch["reward"].shape == (7, 4) and batch["reward"].dtype == torch.float32
    assert batch["is_first"].dtype == torch.bool and batch["is_terminal"].dtype == torch.bool


def test_windows_are_contiguous_and_cover_every_valid_start():
    buf = SequenceReplay(40, 2, (2,), np.float32, (2,))
    run(buf, 12)
    batch = buf.sample(4000, 5, np.random.default_rng(1))
    env, t = batch["obs"][..., 0].numpy(), batch["obs"][..., 1].numpy()
    assert (env == env[:, :1]).all()
    assert (np.diff(t, axis=1) == 1).all()
    starts = set(zip(env[:, 0].astype(int).tolist(), t[:, 0].astype(int).tolist()))
    assert starts == {(e, s) for e in range(2) for s in range(12 - 5 + 1)}


def test_windows_span_episode_boundaries():
    buf = SequenceReplay(200, 2, (2,), np.float32, (2,))
    firsts = run(buf, 40, episode_len=[4, 7])
    batch = buf.sample(500, 8, np.random.default_rng(2))
    env, t = batch["obs"][..., 0].numpy().astype(int), batch["obs"][..., 1].numpy().astype(int)
    is_first = batch["is_first"].numpy()
    for e, counters, flags in zip(env[:, 0], t, is_first):
        np.testing.assert_array_equal(flags, np.isin(counters, firsts[e]))
    inside = is_first[:, 1:]
    assert inside.any(), "no window crossed an episode boundary"
    # the step before a restart is the final observation, terminated; the restart has no action or reward
    np.testing.assert_array_equal(batch["is_terminal"][:, :-1].numpy()[inside], True)
    assert (batch["action"].numpy()[is_first] == 0).all() and (batch["reward"].numpy()[is_first] == 0).all()
    assert (batch["action"].numpy()[~is_first] != 0).all()


def test_windows_never_cross_the_write_head():
    buf = SequenceReplay(30, 3, (2,), np.float32, (2,))   # 10 rows per env
    run(buf, 37, episode_len=[5, 1000, 3])                # envs 0 and 2 wrap at different rows
    assert buf.filled.tolist() == [10, 10, 10] and len(buf) == 30
    newest = {e: int(buf.obs[(buf.pos[e] - 1) % buf.rows, e, 1]) for e in range(3)}
    batch = buf.sample(3000, 6, np.random.default_rng(3))
    env, t = batch["obs"][..., 0].numpy().astype(int), batch["obs"][..., 1].numpy()
    assert (np.diff(t, axis=1) == 1).all()
    for e in range(3):
        first_steps = set(t[env[:, 0] == e, 0].astype(int).tolist())
        # the 10 newest steps of env e hold 5 windows of 6 steps
        assert first_steps == set(range(newest[e] - 9, newest[e] - 4))


def test_extra_steps_move_only_their_env_and_too_short_data_raises():
    buf = SequenceReplay(20, 2, (1,), np.float32, (1,))
    with pytest.raises(ValueError, match="no env holds 1 steps"):
        buf.sample(1, 1, np.random.default_rng(0))
    buf.add(np.zeros((2, 1)), np.zeros((2, 1)), np.zeros(2), np.ones(2, bool), np.zeros(2, bool))
    assert buf.can_sample(1) and not buf.can_sample(2)
    buf.add_one(1, np.ones(1), np.ones(1), 2.0, False, True)
    assert buf.pos.tolist() == [1, 2] and len(buf) == 3 and buf.can_sample(2)
    batch = buf.sample(10, 2, np.random.default_rng(0), device="cpu")   # only env 1 holds 2 steps
    np.testing.assert_array_equal(batch["obs"][:, :, 0].numpy(), [[0, 1]] * 10)
    np.testing.assert_array_equal(batch["reward"][0].numpy(), [0, 2])
    np.testing.assert_array_equal(batch["is_terminal"][0].numpy(), [False, True])
    with pytest.raises(ValueError, match="must not repeat"):
        buf.add(np.ones((2, 1)), np.ones((2, 1)), np.ones(2), np.zeros(2, bool), np.zeros(2, bool), env_ids=[0, 0])


def test_checkpoint_round_trip():
    buf = SequenceReplay(24, 2, (2,), np.float32, (2,))
    run(buf, 20, episode_len=[3, 6])
    meta = json.loads(json.dumps(buf.state_meta()))
    arrays = {name: a.copy() for name, a in buf.state_arrays().items()}
    restored = SequenceReplay(24, 2, (2,), np.float32, (2,))
    restored.load_state(arrays, meta)
    a, b = buf.sample(16, 5, np.random.default_rng(4)), restored.sample(16, 5, np.random.default_rng(4))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
    run(buf, 3, seed=1)
    run(restored, 3, seed=1)
    assert buf.pos.tolist() == restored.pos.tolist() and len(buf) == len(restored)
    with pytest.raises(ValueError, match="shape differs"):
        SequenceReplay(48, 2, (2,), np.float32, (2,)).load_state(arrays, meta)
    with pytest.raises(ValueError, match="'obs' has shape"):
        SequenceReplay(24, 2, (3,), np.float32, (2,)).load_state(arrays, meta)


def test_checkpoint_holds_only_the_rows_written():
    buf = SequenceReplay(1000, 2, (2,), np.float32, (2,))
    run(buf, 7, episode_len=[3, 6])
    arrays = buf.state_arrays()
    assert arrays["obs"].shape[0] == int(buf.filled.max()) < 20    # not the 500 rows of capacity
    restored = SequenceReplay(1000, 2, (2,), np.float32, (2,))
    restored.load_state({k: v.copy() for k, v in arrays.items()}, json.loads(json.dumps(buf.state_meta())))
    a, b = buf.sample(8, 3, np.random.default_rng(1)), restored.sample(8, 3, np.random.default_rng(1))
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)
