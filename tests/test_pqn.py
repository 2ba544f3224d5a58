"""PQN: the Q(λ) targets (by hand, against a naive loop, the λ = 0 and λ = 1 ends), what a rollout
bootstraps from, the network, learning on a trivial env, persistence, resume, the CLI."""

import json

import numpy as np
import pytest
import torch

import deeprl
from deeprl import PQN
from deeprl.cli import main
from deeprl.errors import ConfigError, EnvError
from deeprl.returns import q_lambda_returns
from tests.envs import IDENTITY
from tests.resume import crash_and_resume

FAST = dict(preset=None, eval_freq=0, checkpoint_freq=0, log_interval=512, num_envs=4, n_steps=16,
            minibatch_size=32, net_arch=[32, 32])


# --------------------------------------------------------------------------- the Q(λ) targets
def naive_q_lambda(rewards, next_values, terminated, truncated, gamma, lam):
    """Each env on its own, each G_t from its definition: the λ-weighted n-step Q-learning targets
    of the episode segment that starts at t, G_t = (1-λ) Σ_{n≥1} λ^{n-1} G_t^(n) + (tail weight) G_t^(end)."""
    T, N = rewards.shape
    out = np.zeros((T, N))
    for i in range(N):
        for t in range(T):
            # the segment t..e: it stops at a termination, a truncation or the rollout's end
            e = t
            while e < T - 1 and not (terminated[e, i] or truncated[e, i]):
                e += 1

            def n_step(n):  # G_t^(n): n rewards, then max Q of the n-th successor (none after a termination)
                last = t + n - 1
                g = sum(gamma ** k * rewards[t + k, i] for k in range(n))
                return g + (0.0 if terminated[last, i] else gamma ** n * next_values[last, i])
            L = e - t + 1
            G = sum((1 - lam) * lam ** (n - 1) * n_step(n) for n in range(1, L)) + lam ** (L - 1) * n_step(L)
            out[t, i] = G
    return out


def test_q_lambda_targets_by_hand():
    """One env, 5 steps, γ = 0.5, λ = 0.5: a termination at t = 1 and a truncation at t = 3.

    max Q of each step's successor: M = [4, (ignored), 8, 6, 2]; rewards r = [1, 1, 1, 1, 1].
    t=4 (rollout end):   G = 1 + 0.5·2 = 2
    t=3 (truncated):     G = 1 + 0.5·6 = 4           (its final observation's max Q; not G_4, the next episode's)
    t=2:                 G = 1 + 0.5·(0.5·8 + 0.5·4) = 4
    t=1 (terminated):    G = 1
    t=0:                 G = 1 + 0.5·(0.5·4 + 0.5·1) = 2.25
    """
    r = np.ones((5, 1), np.float32)
    M = np.array([[4], [99], [8], [6], [2]], np.float32)
    term = np.array([[0], [1], [0], [0], [0]], bool)
    trunc = np.array([[0], [0], [0], [1], [0]], bool)
    G = q_lambda_returns(r, M, term, trunc, gamma=0.5, lam=0.5)
    np.testing.assert_allclose(G[:, 0], [2.25, 1.0, 4.0, 4.0, 2.0])


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.65, 0.95, 1.0])
def test_q_lambda_matches_a_naive_loop_in_numpy_and_torch(lam):
    rng = np.random.default_rng(0)
    T, N = 12, 5
    r = rng.normal(size=(T, N)).astype(np.float32)
    M = rng.normal(size=(T, N)).astype(np.float32)
    term, trunc = rng.random((T, N)) < 0.15, rng.random((T, N)) < 0.15
    term &= ~trunc
    term[5, 0], trunc[5, 0] = True, False      # a termination and a truncation mid-rollout in env 0
    term[8, 0], trunc[8, 0] = False, True
    expected = naive_q_lambda(r, M, term, trunc, 0.9, lam)
    np.testing.assert_allclose(q_lambda_returns(r, M, term, trunc, 0.9, lam), expected, rtol=1e-5, atol=1e-5)
    got = q_lambda_returns(*(torch.from_numpy(a) for a in (r, M, term, trunc)), 0.9, lam)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_lambda_zero_is_one_step_q_learning_and_lambda_one_the_rollout_return():
    rng = np.random.default_rng(1)
    T, N, gamma = 10, 3, 0.9
    r = rng.normal(size=(T, N)).astype(np.float32)
    M = rng.normal(size=(T, N)).astype(np.float32)
    term = np.zeros((T, N), bool)
    trunc = np.zeros((T, N), bool)
    term[3, 0], trunc[6, 1] = True, True
    one_step = q_lambda_returns(r, M, term, trunc, gamma, 0.0)
    np.testing.assert_allclose(one_step, r + gamma * M * ~term, rtol=1e-6)   # r' + γ max_a' Q(s', a'), 0 at the end
    mc = q_lambda_returns(r, M, term, trunc, gamma, 1.0)
    expected = np.zeros((T, N))                                              # rewards to the segment's end, then
    for i in range(N):                                                       # γ^k max Q there (0 after a termination)
        G = M[T - 1, i]
        for t in reversed(range(T)):
            G = r[t, i] + gamma * (0.0 if term[t, i] else M[t, i] if trunc[t, i] else G)
            expected[t, i] = G
    np.testing.assert_allclose(mc, expected, rtol=1e-5)


# --------------------------------------------------------------------------- the rollout
def test_a_rollout_bootstraps_from_each_true_successor():
    """next_values[t] is max Q of s'_t: of the next state inside an episode, of the final observation
    at a time limit (IdentityEnv truncates after 20 steps), never of the next episode's first."""
    agent = PQN(IDENTITY, **FAST)
    agent._open_envs()
    agent._obs = agent.envs.reset()
    steps = []
    step_env = agent._env_step
    agent._env_step = lambda actions: steps.append(step_env(actions)) or steps[-1]
    r = agent.collect(25)
    with torch.no_grad():
        successors = np.stack([s.next_obs for s in steps])                  # (T, N, 3) final observations included
        expected = agent.q(torch.from_numpy(successors).reshape(-1, 3)).max(dim=1).values.reshape(25, 4)
    assert r["truncated"][19].all() and not r["truncated"][:19].any()
    assert any((s.obs != s.next_obs).any() for s in steps)                  # reset observations differ from finals
    torch.testing.assert_close(r["next_values"], expected)
    assert r["obs"].shape == (100, 3) and r["actions"].shape == (100,)


def test_epsilon_is_drawn_per_env_and_annealed():
    agent = PQN(IDENTITY, eps_start=1.0, eps_end=0.1, eps_fraction=0.5, total_steps=1000, **FAST)
    assert agent.epsilon() == 1.0
    agent.num_timesteps = 250
    assert agent.epsilon() == pytest.approx(0.55)
    greedy = np.zeros(10_000, np.int64)
    explored = agent._explore(greedy, 0.55)
    # a random action of 3 is the greedy one a third of the time: P(not greedy) = ε · 2/3
    assert (explored != 0).mean() == pytest.approx(0.55 * 2 / 3, abs=0.02)
    np.testing.assert_array_equal(agent._explore(greedy, 0.0), greedy)


def test_the_q_network_puts_a_layer_norm_before_each_hidden_activation():
    agent = PQN("CartPole-v1", **FAST)
    kinds = [type(m).__name__ for m in agent.q.torso.body.modules() if type(m).__name__ in ("Linear", "LayerNorm", "ReLU")]
    assert kinds == ["Linear", "LayerNorm", "ReLU"] * 2
    plain = PQN("CartPole-v1", layer_norm=False, **FAST)
    assert not any(type(m).__name__ == "LayerNorm" for m in plain.q.modules())


def test_minatar_uses_the_grid_cnn_with_a_layer_norm():
    agent = PQN("MinAtar/Breakout-v1", total_steps=64, **FAST).learn()
    fc = [type(m).__name__ for m in agent.q.torso.fc]
    assert type(agent.q.torso).__name__ == "GridCNN" and fc == ["Linear", "LayerNorm", "ReLU"]
    assert agent.updates > 0


def test_refuses_what_it_cannot_do():
    with pytest.raises(EnvError, match="needs a discrete action space"):
        PQN("Pendulum-v1", **FAST)
    with pytest.raises(ConfigError, match="lower n_steps or num_envs"):
        PQN(IDENTITY, **{**FAST, "num_envs": 4096, "n_steps": 2048})
    with pytest.raises(ConfigError, match="cannot act under invalid-action masks"):
        PQN(IDENTITY, **FAST).predict(np.eye(3, dtype=np.float32)[0], action_mask=[1, 0, 1])


# --------------------------------------------------------------------------- training
def test_smoke_run_logs_its_columns_and_anneals_the_learning_rate():
    agent = PQN("CartPole-v1", total_steps=1024, lr=1e-3, **FAST)
    rates = []
    update = agent.update
    agent.update = lambda r: rates.append(agent.optimizer.param_groups[0]["lr"]) or update(r)
    agent.learn()
    assert agent.num_timesteps == 1024 and agent.rollouts == 16
    assert agent.updates == 16 * 4 * 2  # 64 transitions per rollout, 4 epochs of 2 minibatches
    np.testing.assert_allclose(rates, [1e-3 * (1 - k / 16) for k in range(16)])  # each rollout: the rate at its start
    assert {"loss/td", "charts/epsilon", "q/mean", "q/target_mean", "grad/norm"} <= set(agent.metric_keys)


def test_a_rollout_stops_at_the_planned_step():
    agent = PQN(IDENTITY, total_steps=100, **FAST).learn()
    assert agent.num_timesteps == 100  # 16 x 4 = 64, then 9 steps of 4 envs = 36


def test_async_envs_give_the_same_run():
    """vectorization=async steps the envs in subprocesses; the numbers are those of in-process envs."""
    sync = PQN(IDENTITY, total_steps=256, **FAST).learn()
    async_ = PQN(IDENTITY, total_steps=256, vectorization="async", **FAST).learn()
    async_.close()
    for (name, p), (_, q) in zip(sync._model_tensors().items(), async_._model_tensors().items()):
        torch.testing.assert_close(p, q, rtol=0, atol=0, msg=lambda m: f"{name}: {m}")


def test_learns_the_identity_env():
    agent = PQN(IDENTITY, seed=0, total_steps=6_000, lr=3e-3, gamma=0.9, eps_fraction=0.3, **FAST).learn()
    assert agent.evaluate(10)["mean_return"] >= 19.0  # 20 steps, reward 1 for naming the observed target


def test_save_load_predict(tmp_path):
    agent = PQN(IDENTITY, total_steps=256, **FAST).learn()
    loaded = deeprl.load(agent.save(tmp_path / "model"))
    obs = np.random.default_rng(0).random((16, 3)).astype(np.float32)
    assert isinstance(loaded, PQN) and loaded.config == agent.config
    np.testing.assert_array_equal(loaded.predict(obs), agent.predict(obs))
    assert loaded.predict(obs[0]).shape == ()


def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path):
    whole, resumed = crash_and_resume(
        lambda: PQN("CartPole-v1", seed=3, **{**FAST, "total_steps": 2048, "checkpoint_freq": 512, "eval_freq": 1024,
                                               "eval_episodes": 2, "log_interval": 256}), tmp_path, crash_at=1300)
    assert resumed.updates == whole.updates and resumed.rollouts == whole.rollouts


def test_cli_train(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "pqn", "--env", "CartPole-v1", "--steps", "1024", "--out", str(out), "--no-progress",
                 "--set", "num_envs=4", "n_steps=32", "minibatch_size=64", "eval_episodes=2"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["algo"] == "pqn" and config["config"]["num_envs"] == 4
    assert (out / "model.safetensors").exists() and "loss/td" in (out / "metrics.csv").read_text().splitlines()[0]


def test_exports_to_onnx_as_a_greedy_q_policy(tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime as ort
    agent = PQN("CartPole-v1", total_steps=256, **FAST).learn()
    report = agent.export(tmp_path / "policy.onnx")
    obs = np.random.default_rng(5).normal(size=(256, 4)).astype(np.float32)
    actions = ort.InferenceSession(report["path"], providers=["CPUExecutionProvider"]).run(["action"], {"obs": obs})[0]
    np.testing.assert_array_equal(actions, agent.predict(obs))
