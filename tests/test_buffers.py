"""Replay buffers: wrap-around, n-step across episode ends, the write head, priorities."""

import numpy as np
import pytest

from deeprl.buffers import PrioritizedReplayBuffer, ReplayBuffer, SumTree, allocate_observations
from deeprl.errors import ConfigError


def fill(buf, rows, num_envs=1, term_at=(), trunc_at=()):
    """Row t stores obs=t, next_obs=t+1, reward=t (per env e: + 100 e)."""
    for t in range(rows):
        o = np.array([[t + 100 * e] for e in range(num_envs)], np.float32)
        buf.add(o, o + 1, np.zeros(num_envs, np.int64), o[:, 0].copy(),
                np.array([t in term_at] * num_envs), np.array([t in trunc_at] * num_envs))


def gather(buf, idx):
    return buf._gather(np.asarray(idx), np.ones(len(idx), np.float32))


def test_wraparound_overwrites_oldest():
    buf = ReplayBuffer(5, 1, (1,), np.float32)
    fill(buf, 7)  # rows 0..6 written; capacity 5 -> rows 5, 6 overwrite 0, 1
    assert len(buf) == 5 and buf.full and buf.pos == 2
    assert sorted(buf.obs[:, 0, 0].tolist()) == [2, 3, 4, 5, 6]
    assert buf.obs[0, 0, 0] == 5 and buf.obs[1, 0, 0] == 6


def test_one_step_batch_fields():
    buf = ReplayBuffer(10, 1, (1,), np.float32, gamma=0.9)
    fill(buf, 4, term_at={2})
    b = gather(buf, [1, 2])
    np.testing.assert_allclose(b.returns.numpy(), [1.0, 2.0])
    np.testing.assert_allclose(b.discounts.numpy(), [0.9, 0.0])  # row 2 terminated
    np.testing.assert_allclose(b.next_obs.numpy()[:, 0], [2.0, 3.0])


def test_nstep_stops_at_termination_and_truncation():
    g = 0.5
    buf = ReplayBuffer(20, 1, (1,), np.float32, n_step=3, gamma=g)
    fill(buf, 12, term_at={4}, trunc_at={8})
    b = gather(buf, [0, 3, 4, 7, 8])
    # from 0: r0 + g r1 + g² r2 = 0 + .5 + 1 = 1.5, bootstrap from next_obs of row 2 (=3) with g³
    # from 3: r3 + g r4 = 3 + 2 = 5, row 4 terminated: no bootstrap
    # from 4: r4 = 4, terminated
    # from 7: r7 + g r8 = 7 + 4 = 11, row 8 truncated: bootstrap from its final obs (9) with g²
    # from 8: r8 = 8, truncated: bootstrap with g
    np.testing.assert_allclose(b.returns.numpy(), [1.0, 5.0, 4.0, 11.0, 8.0])
    np.testing.assert_allclose(b.discounts.numpy(), [g ** 3, 0.0, 0.0, g ** 2, g])
    np.testing.assert_allclose(b.next_obs.numpy()[:, 0], [3.0, 5.0, 5.0, 9.0, 9.0])


def test_nstep_never_reads_past_write_head():
    g = 0.5
    buf = ReplayBuffer(6, 1, (1,), np.float32, n_step=3, gamma=g)
    fill(buf, 8)  # rows hold t = 6, 7, 2, 3, 4, 5 ; pos = 2 ; newest is t=7 at row 1
    b = gather(buf, [1, 0, 4])
    # newest (t=7): only itself is available; t=6: itself and t=7; row 4 (t=4): t=4,5,6 wrapping
    np.testing.assert_allclose(b.returns.numpy(), [7.0, 6.0 + g * 7, 4 + g * 5 + g * g * 6])
    np.testing.assert_allclose(b.discounts.numpy(), [g, g ** 2, g ** 3])
    np.testing.assert_allclose(b.next_obs.numpy()[:, 0], [8.0, 8.0, 7.0])


def test_nstep_keeps_envs_apart():
    buf = ReplayBuffer(20, 2, (1,), np.float32, n_step=2, gamma=1.0)
    fill(buf, 4, num_envs=2)
    b = gather(buf, [0 * 2 + 1, 1 * 2 + 0])  # (row 0, env 1), (row 1, env 0)
    np.testing.assert_allclose(b.returns.numpy(), [100 + 101, 1 + 2])


def test_uniform_sampling_covers_buffer():
    buf = ReplayBuffer(8, 2, (1,), np.float32)
    fill(buf, 3, num_envs=2)
    b = buf.sample(4000, np.random.default_rng(0))
    assert set(b.indices.tolist()) == set(range(6))


def test_sumtree_find_and_total():
    tree = SumTree(5)
    tree.set(np.arange(5), np.array([1.0, 0.0, 2.0, 3.0, 4.0]))
    assert tree.total == pytest.approx(10.0)
    np.testing.assert_array_equal(tree.find(np.array([0.0, 0.99, 1.0, 2.99, 3.0, 5.99, 6.0, 9.99])),
                                  [0, 0, 2, 2, 3, 3, 4, 4])
    tree.set(np.array([4, 4]), np.array([1.0, 1.0]))  # repeated index in one update
    assert tree.total == pytest.approx(7.0)


def test_prioritized_frequencies_and_weights():
    buf = PrioritizedReplayBuffer(4, 1, (1,), np.float32, alpha=1.0, eps=1e-9)
    fill(buf, 4)
    buf.update_priorities(np.arange(4), np.array([1.0, 2.0, 3.0, 4.0]))
    rng = np.random.default_rng(1)
    counts = np.zeros(4)
    for _ in range(200):
        b = buf.sample(50, rng, beta=1.0)
        counts += np.bincount(b.indices, minlength=4)
    np.testing.assert_allclose(counts / counts.sum(), [0.1, 0.2, 0.3, 0.4], atol=0.01)
    # weights (N P(i))^-β normalised by the max: P = .1..  -> w ∝ 1/P -> [1, .5, .333, .25]
    b = buf.sample(400, rng, beta=1.0)
    w_by_index = {int(i): float(w) for i, w in zip(b.indices, b.weights.numpy())}
    np.testing.assert_allclose([w_by_index[i] for i in range(4)], [1.0, 0.5, 1 / 3, 0.25], rtol=1e-5)


def test_prioritized_new_transitions_get_max_priority():
    buf = PrioritizedReplayBuffer(8, 1, (1,), np.float32, alpha=1.0)
    fill(buf, 2)
    buf.update_priorities(np.array([0, 1]), np.array([5.0, 0.1]))
    fill(buf, 1)
    assert buf.tree.leaves[2] == pytest.approx(5.0, rel=1e-5)


def test_state_round_trip():
    a = PrioritizedReplayBuffer(6, 2, (1,), np.float32, n_step=2)
    fill(a, 9, num_envs=2, term_at={3})
    a.update_priorities(np.array([0, 3]), np.array([2.0, 7.0]))
    b = PrioritizedReplayBuffer(6, 2, (1,), np.float32, n_step=2)
    b.load_state({k: v.copy() for k, v in a.state_arrays().items()}, a.state_meta())
    ra, rb = a.sample(32, np.random.default_rng(3)), b.sample(32, np.random.default_rng(3))
    np.testing.assert_array_equal(ra.indices, rb.indices)
    np.testing.assert_array_equal(ra.returns.numpy(), rb.returns.numpy())
    with pytest.raises(ValueError):
        ReplayBuffer(7, 2, (1,), np.float32).load_state(a.state_arrays(), a.state_meta())


def test_a_replay_too_large_for_memory_is_a_config_error():
    # 100 TB of observations: no machine gives it, and the error names the setting to lower
    with pytest.raises(ConfigError, match=r"needs 9[0-9,.]+ GiB.*lower buffer_size"):
        allocate_observations((10**8, 1, 1000, 1000), np.uint8)
    assert allocate_observations((4, 2, 3), np.float32).shape == (4, 2, 3)


def test_one_observation_stream_and_checkpoints_of_the_filled_rows_only():
    buf = ReplayBuffer(1000, 2, (1,), np.float32, n_step=1)
    assert not hasattr(buf, "next_obs")                        # s' is the next row's s, not a second copy
    fill(buf, 6, num_envs=2, term_at={2}, trunc_at={4})
    arrays = buf.state_arrays()
    assert arrays["obs"].shape == (6, 2, 1)                    # 6 rows written of 500
    assert sorted(arrays["final_index"].tolist()) == [4, 5, 8, 9]
    copy = ReplayBuffer(1000, 2, (1,), np.float32, n_step=1)
    copy.load_state({k: v.copy() for k, v in arrays.items()}, buf.state_meta())
    idx = np.arange(12)
    for b in (buf, copy):   # successors: t+1 everywhere, the final obs where episodes ended, the head's too
        np.testing.assert_array_equal(gather(b, idx).next_obs.numpy()[:, 0],
                                      [t + 1 + 100 * e for t in range(6) for e in range(2)])


def test_atari_checkpoint_holds_what_was_collected(tmp_path):
    from deeprl import DQN
    agent = DQN("ALE/Pong-v5", preset=None, buffer_size=100_000, learning_starts=10_000, total_steps=200,
                eval_freq=0, checkpoint_freq=0, torch_threads=1, eval_episodes=1, max_episode_steps=100)
    agent.learn(run_dir=tmp_path / "pong")
    agent.close()
    replay = next((tmp_path / "pong" / "checkpoints").glob("step_*")) / "replay.safetensors"
    frames = 200 * 4 * 84 * 84                                  # 200 stacked observations, one stream
    assert replay.stat().st_size < 1.2 * frames                 # was 5.6 GB: full capacity, obs and next_obs
