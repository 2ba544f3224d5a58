"""Policy gradients: returns and advantages, distributions, the baseline's unbiasedness, learning."""

import copy
import csv

import gymnasium as gym
import numpy as np
import pytest
import torch

import deeprl
from deeprl import A2C, PPO, REINFORCE, ActorCriticAgent
from deeprl.errors import ConfigError, EnvError
from deeprl.nets import Categorical, DiagGaussian
from deeprl.returns import gae, reward_to_go
from tests.envs import IDENTITY, TARGET_REACH, MultiDiscreteActionEnv
from tests.resume import crash_and_resume, metrics_rows

FAST = dict(preset=None, eval_freq=0, checkpoint_freq=0, log_interval=1000)


# ------------------------------------------------------------------------------- returns


def test_reward_to_go_hand_computed():
    r = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    dones = torch.tensor([[False], [True], [False], [True]])
    # episode 1: G0 = 1 + .5*2 = 2, G1 = 2; episode 2: G2 = 3 + .5*4 = 5, G3 = 4
    torch.testing.assert_close(reward_to_go(r, dones, 0.5), torch.tensor([[2.0], [2.0], [5.0], [4.0]]))


def naive_gae(r, v, nv, term, trunc, gamma, lam):
    T, N = r.shape
    adv = np.zeros((T, N))
    for i in range(N):
        running = 0.0
        for t in reversed(range(T)):
            delta = r[t, i] + gamma * (0.0 if term[t, i] else nv[t, i]) - v[t, i]
            running = delta + (0.0 if (term[t, i] or trunc[t, i]) else gamma * lam * running)
            adv[t, i] = running
    return adv


@pytest.mark.parametrize("lam", [0.0, 0.9, 1.0])
def test_gae_matches_naive_loop(lam):
    rng = np.random.default_rng(0)
    T, N, gamma = 12, 3, 0.95
    r, v, nv = rng.normal(size=(T, N)), rng.normal(size=(T, N)), rng.normal(size=(T, N))
    term, trunc = rng.random((T, N)) < 0.15, rng.random((T, N)) < 0.1
    f = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    adv, ret = gae(f(r), f(v), f(nv), torch.tensor(term), torch.tensor(trunc), gamma, lam)
    np.testing.assert_allclose(adv.numpy(), naive_gae(r, v, nv, term, trunc, gamma, lam), rtol=1e-10)
    np.testing.assert_allclose(ret.numpy(), adv.numpy() + v)


def test_gae_extremes_are_the_lecture_estimators():
    r = torch.tensor([[1.0], [1.0], [1.0]])
    v = torch.tensor([[0.5], [0.2], [0.1]])
    nv = torch.tensor([[0.2], [0.1], [0.7]])  # V(s_{t+1}); the last bootstraps from V(last state) = .7
    no = torch.zeros(3, 1, dtype=torch.bool)
    g = 0.9
    td, _ = gae(r, v, nv, no, no, g, 0.0)      # λ = 0: A = r' + γ V(s') - V(s)
    torch.testing.assert_close(td, r + g * nv - v)
    nstep, ret = gae(r, v, nv, no, no, g, 1.0)  # λ = 1: n-step return to the rollout end minus V(s)
    expected_ret = torch.tensor([[1 + g + g * g + g ** 3 * 0.7], [1 + g + g * g * 0.7], [1 + g * 0.7]])
    torch.testing.assert_close(ret, expected_ret)
    # termination stops the bootstrap; truncation keeps it
    term = torch.tensor([[False], [False], [True]])
    trunc = torch.tensor([[False], [False], [True]])
    a_term, _ = gae(r, v, nv, term, no, g, 0.0)
    a_trunc, _ = gae(r, v, nv, no, trunc, g, 0.0)
    assert a_term[2, 0].item() == pytest.approx(1.0 - 0.1)
    assert a_trunc[2, 0].item() == pytest.approx(1.0 + g * 0.7 - 0.1)


# ------------------------------------------------------------------------------- distributions


def test_categorical_matches_torch():
    logits = torch.randn(5, 4)
    ours, ref = Categorical(logits), torch.distributions.Categorical(logits=logits)
    a = torch.tensor([0, 1, 2, 3, 1])
    torch.testing.assert_close(ours.log_prob(a), ref.log_prob(a))
    torch.testing.assert_close(ours.entropy(), ref.entropy())
    torch.manual_seed(0)
    samples = Categorical(torch.log(torch.tensor([[0.1, 0.6, 0.3]]).expand(20000, 3))).sample()
    np.testing.assert_allclose(np.bincount(samples.numpy(), minlength=3) / 20000, [0.1, 0.6, 0.3], atol=0.015)


def test_diag_gaussian_sample_is_data_and_rsample_carries_gradient():
    mean, log_std = torch.zeros(4, 2, requires_grad=True), torch.zeros(2, requires_grad=True)
    dist = DiagGaussian(mean, log_std)
    assert not dist.sample().requires_grad
    dist.rsample().sum().backward()
    torch.testing.assert_close(mean.grad, torch.ones(4, 2))


def test_diag_gaussian_matches_torch():
    mean, log_std = torch.randn(6, 3), torch.randn(3)
    ours = DiagGaussian(mean, log_std)
    ref = torch.distributions.Independent(torch.distributions.Normal(mean, log_std.exp()), 1)
    a = torch.randn(6, 3)
    torch.testing.assert_close(ours.log_prob(a), ref.log_prob(a))
    torch.testing.assert_close(ours.entropy(), ref.entropy())
    torch.manual_seed(0)
    s = DiagGaussian(torch.zeros(50000, 1), torch.log(torch.tensor([2.0]))).sample()
    assert s.std().item() == pytest.approx(2.0, rel=0.02)


# ------------------------------------------------------------------------------- one gradient path


def _naive_advantage_loss(net, r, gamma, ent_coef, vf_coef):
    """The advantage actor-critic loss written out step by step, as the lecture does."""
    T, N = r.rewards.shape
    v = net.value(r.obs).view(T, N)
    finals = {int(k): j for j, k in enumerate(r.final_index)}
    psi, target = torch.zeros(T, N), torch.zeros(T, N)
    with torch.no_grad():
        for t in range(T):
            for i in range(N):
                k = t * N + i
                if r.terminated[t, i]:
                    next_v = 0.0
                elif k in finals:
                    next_v = net.value(r.final_obs[finals[k]][None])[0]
                elif t + 1 < T:
                    next_v = net.value(r.obs[k + N][None])[0]
                else:
                    next_v = net.value(r.last_obs[i][None])[0]
                target[t, i] = r.rewards[t, i] + gamma * next_v
                psi[t, i] = target[t, i] - v[t, i]
    dist = net.policy(r.obs)
    actor = -(psi.reshape(-1) * dist.log_prob(r.actions)).mean()
    return actor - ent_coef * dist.entropy().mean() + vf_coef * (v - target).pow(2).mean()


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])
def test_update_is_one_torch_step_on_the_naive_loss(env):
    agent = A2C(env, seed=3, num_envs=2, n_steps=8, ent_coef=0.05, estimator="advantage", optimizer="adam",
                max_grad_norm=0.0, **FAST)
    for _ in range(2):  # the second update starts from trained weights and optimizer state
        rollout = agent.collect()
        ref = copy.deepcopy(agent.net)
        ref_opt = torch.optim.Adam(ref.parameters(), lr=agent.config.lr, eps=agent.config.optim_eps)
        ref_opt.load_state_dict(copy.deepcopy(agent.optimizer.state_dict()))  # torch would share the moments
        ref_opt.zero_grad()
        _naive_advantage_loss(ref, rollout, agent.config.gamma, 0.05, agent.config.vf_coef).backward()
        ref_opt.step()
        agent.update(rollout)
        for (name, p), q in zip(agent.net.named_parameters(), ref.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("cls,kw", [(A2C, dict(num_envs=2, n_steps=8)),
                                    (REINFORCE, dict(batch_episodes=2)),
                                    (PPO, dict(num_envs=2, n_steps=16, minibatch_size=16, n_epochs=2))])
def test_a_new_loss_term_is_one_edit(cls, kw, tmp_path):
    """Every update of every policy-gradient algorithm goes through :meth:`losses`: a term added
    there with its scale (here an L2 penalty on the weights) changes training, and is logged as
    ``loss/<term>`` without any other edit."""

    class WithPenalty(cls):
        def losses(self, *args, **kwargs):
            return {**super().losses(*args, **kwargs), "l2": sum(p.pow(2).sum() for p in self.net.parameters())}

        @property
        def loss_scales(self):
            return {**super().loss_scales, "l2": 10.0}

    plain, penalized = cls("CartPole-v1", seed=1, **FAST, **kw), WithPenalty("CartPole-v1", seed=1, **FAST, **kw)
    plain.learn(300)
    penalized.learn(300, run_dir=tmp_path / "run")
    penalized.close()
    norm = lambda agent: sum(p.pow(2).sum().item() for p in agent.net.parameters())  # noqa: E731
    assert norm(penalized) < norm(plain)
    logged = [row["loss/l2"] for row in metrics_rows(tmp_path / "run" / "metrics.csv") if row.get("loss/l2")]
    assert logged and float(logged[-1]) > 0


def test_a_term_without_a_scale_is_an_error():
    class Unscaled(A2C):
        def losses(self, *args, **kwargs):
            return {**super().losses(*args, **kwargs), "l2": sum(p.pow(2).sum() for p in self.net.parameters())}

    with pytest.raises(ValueError, match="l2"):
        Unscaled("CartPole-v1", num_envs=2, n_steps=8, **FAST).learn(32)


def test_threads_are_set_while_training_and_restored_after():
    """torch and NumPy's BLAS run on torch_threads while an agent trains (spinning BLAS threads
    slow parallel runs tenfold); constructing an agent, or finishing training, changes nothing."""
    from threadpoolctl import threadpool_info

    def blas_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    torch_before, blas_before = torch.get_num_threads(), blas_threads()
    agent = A2C("CartPole-v1", torch_threads=1, total_steps=200, **FAST)
    assert torch.get_num_threads() == torch_before and blas_threads() == blas_before
    seen = []
    agent.learn(callback=lambda a: seen.append((torch.get_num_threads(), blas_threads())))
    assert seen and all(t == 1 and all(b == 1 for b in blas) for t, blas in seen)
    assert torch.get_num_threads() == torch_before and blas_threads() == blas_before


# ------------------------------------------------------------------------------- the baseline


def test_baseline_is_unbiased_and_lowers_variance_on_a_bandit():
    """The lecture's derivation: E[b ∇ log π] = b Σ_a ∇π(a) = b ∇ 1 = 0."""
    theta = torch.tensor([0.3, -0.2, 0.5], requires_grad=True)
    means = torch.tensor([1.0, 2.0, 3.0])   # expected reward of each arm; rewards = mean + N(0, 1)
    probs = torch.softmax(theta, 0)
    # exact: the baseline term's expectation vanishes for any b
    exact_b_term = torch.autograd.grad((probs.detach() * 5.0 * torch.log_softmax(theta, 0)).sum(), theta)[0]
    torch.testing.assert_close(exact_b_term, torch.zeros(3), atol=1e-6, rtol=0)
    true_grad = torch.autograd.grad((torch.softmax(theta, 0) * means).sum(), theta)[0]

    gen = torch.Generator().manual_seed(0)
    n = 20000
    actions = torch.multinomial(probs.detach(), n, replacement=True, generator=gen)
    rewards = means[actions] + torch.randn(n, generator=gen)
    score = torch.eye(3)[actions] - probs.detach()          # ∇_θ log softmax(θ)[a]
    b = (probs.detach() * means).sum()                      # baseline: the expected reward V
    plain = rewards[:, None] * score
    based = (rewards - b)[:, None] * score
    se = 4 * plain.std(0) / n ** 0.5
    assert torch.all((plain.mean(0) - true_grad).abs() < se)
    assert torch.all((based.mean(0) - true_grad).abs() < se)
    assert based.var(0).sum() < 0.5 * plain.var(0).sum()


def test_variance_measurement_uses_the_same_batches_for_every_estimator(tmp_path):
    """With V ≡ 0 the baseline adds nothing and Q's estimate is the advantage: equal gradients."""
    from deeprl.variance import fit_critic, measure, plot
    agent = ActorCriticAgent("CartPole-v1", estimator="gae", gae_lambda=0.95, collect="steps", n_steps=16,
                             num_envs=4, seed=0, **FAST)
    agent.learn(2000)
    with torch.no_grad():
        agent.net.value_head.weight.zero_()
        agent.net.value_head.bias.zero_()
    zero_v = measure(agent, batches=6)
    assert zero_v["baseline"] == pytest.approx(zero_v["reinforce"])
    assert zero_v["q"] == pytest.approx(zero_v["advantage"])
    assert zero_v["reinforce"]["variance"] > 0
    fit_critic(agent, iterations=5)
    fitted = measure(agent, batches=6)
    assert fitted["baseline"]["variance"] != pytest.approx(fitted["reinforce"]["variance"])
    out = plot(fitted, tmp_path / "v.png", "test")
    assert out.read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------------------- learning


def _two_dimensional_multidiscrete_actions():
    env = MultiDiscreteActionEnv()
    env.action_space = gym.spaces.MultiDiscrete([[2, 2], [2, 2]])
    return env


def test_bad_spaces_and_settings():
    with pytest.raises(EnvError, match="flatten it to one dimension"):
        PPO(_two_dimensional_multidiscrete_actions, **FAST)
    with pytest.raises(ConfigError, match="needs complete episodes"):
        A2C("CartPole-v1", estimator="reinforce", **FAST)


@pytest.mark.parametrize("cls, kw", [
    # plain G_t with batch_episodes=2 stalled near 13.7 on 2 seeds of 0-4; standardized G_t: 5 of 5 at 20
    (REINFORCE, dict(batch_episodes=4, lr=3e-3, total_steps=12_000, normalize_advantage=True)),
    (REINFORCE, dict(estimator="baseline", critic_target="rollout", batch_episodes=2, lr=3e-3)),
    (REINFORCE, dict(estimator="baseline", batch_episodes=2, lr=3e-3, discount_weighting=True)),
    (ActorCriticAgent, dict(lr=3e-3)),
    (ActorCriticAgent, dict(estimator="q", lr=3e-3, normalize_advantage=True)),
    (ActorCriticAgent, dict(collect="steps", n_steps=1, lr=1e-3)),
    (A2C, dict(num_envs=4, lr=3e-3)),
    (PPO, dict(n_steps=128, num_envs=2, minibatch_size=64, n_epochs=4, lr=3e-3)),
])
def test_learns_identity_env(cls, kw):
    agent = cls(IDENTITY, seed=0, **{**FAST, "total_steps": 6000, **kw})
    agent.learn()
    assert agent.evaluate(10)["mean_return"] >= 17.0   # 20 steps, 1 per right action


@pytest.mark.parametrize("cls", [A2C, PPO])
def test_learns_continuous_actions(cls):
    kw = dict(n_steps=32, num_envs=4, minibatch_size=64, n_epochs=4) if cls is PPO else dict(num_envs=4)
    agent = cls(TARGET_REACH, seed=0, total_steps=8000, lr=3e-3, gamma=0.0, log_std_init=-0.5, **{**FAST, **kw})
    agent.learn()
    assert agent.evaluate(20)["mean_return"] > -0.05   # mean action tracks the observed target
    obs = np.array([[0.5], [-0.5]], np.float32)
    np.testing.assert_allclose(agent.predict(obs)[:, 0], [0.5, -0.5], atol=0.2)


def test_cnn_policy_smoke():
    agent = A2C("ALE/Pong-v5", num_envs=2, n_steps=4, total_steps=32, **FAST)
    agent.learn()
    assert type(agent.net.actor_torso).__name__ == "NatureCNN" and agent.updates == 4


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_save_load_round_trip(tmp_path, activation):
    agent = PPO("Pendulum-v1", n_steps=64, minibatch_size=32, n_epochs=1, total_steps=128, activation=activation,
                **FAST)
    agent.learn()
    loaded = deeprl.load(agent.save(tmp_path / "ppo"))
    assert isinstance(loaded, PPO)
    expected = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[activation]
    for torso in (loaded.net.actor_torso, loaded.net.critic_torso):
        assert [type(m) for m in torso.body if not isinstance(m, torch.nn.Linear)] == [expected, expected]
    obs = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs), agent.predict(obs))


def _rows(path):
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in ("wall_time", "charts/sps")} for r in csv.DictReader(f)]


@pytest.mark.parametrize("normalize", [False, True])
def test_resume_after_a_crash_equals_an_uninterrupted_run(tmp_path, normalize):
    crash_and_resume(lambda: A2C("CartPole-v1", seed=2, num_envs=4, total_steps=4000, checkpoint_freq=1000,
                                 log_interval=500, eval_freq=2000, eval_episodes=2, preset=None,
                                 normalize_obs=normalize, normalize_reward=normalize), tmp_path, crash_at=3000)


def test_anneal_lr_reaches_zero_at_the_end():
    agent = A2C("CartPole-v1", num_envs=2, n_steps=5, total_steps=1000, anneal_lr=True, lr=1e-3, **FAST)
    agent.learn()
    lr = agent.optimizer.param_groups[0]["lr"]
    assert 0.0 <= lr < 2e-5   # set before the last update, from the steps done so far


def test_anneal_clip_range_narrows_the_clip_linearly():
    """SB3's ``clip_range=lin_0.2``: ε(p) = 0.2 (1 - p); a ratio of 1.15 is inside the clip at the
    start and clipped (no gradient through it) from halfway on."""
    agent = PPO("CartPole-v1", num_envs=2, n_steps=16, minibatch_size=32, n_epochs=1, total_steps=1000,
                clip_range=0.2, anneal_clip_range=True, normalize_advantage=False, **FAST)
    logits = torch.zeros(4, 2, requires_grad=True)
    actions, psi = torch.zeros(4, dtype=torch.long), torch.ones(4)
    old = Categorical(logits.detach()).log_prob(actions) - np.log(1.15)     # ρ = 1.15 for every sample
    for steps, eps, clipped in [(0, 0.2, 0.0), (500, 0.1, 1.0), (1000, 0.0, 1.0)]:
        agent.num_timesteps = steps
        assert agent.clip_range() == pytest.approx(eps)
        loss = agent.losses(Categorical(logits), None, actions, psi, psi, old_log_probs=old)["actor"]
        assert agent._stats.read()["policy/clip_fraction"] == clipped
        (grad,) = torch.autograd.grad(loss, logits)
        assert (grad.abs().sum().item() > 0) == (not clipped)
    assert PPO("CartPole-v1", total_steps=1000, **FAST).clip_range() == 0.2   # off by default
    agent.num_timesteps = 0
    seen = []
    agent.learn(64, callback=lambda a: seen.append(a.clip_range()))  # a 64-step run lays ε over its 64 steps
    assert seen[-1] == 0.0


def test_critic_lr_steps_the_critic_at_its_own_rate(tmp_path):
    """critic_lr is the lecture's α_c beside α_a = lr: Adam's first step moves each weight by about
    its group's rate (m̂/√v̂ = ±1), so the largest change of θ is lr and of φ is critic_lr."""
    agent = ActorCriticAgent("CartPole-v1", lr=1e-3, critic_lr=1e-2, optim_eps=1e-12, **FAST)
    actor = [p.detach().clone() for p in agent.net.actor_parameters()]
    critic = [p.detach().clone() for p in agent.net.critic_parameters()]
    agent.update(agent.collect())
    step = lambda before, now: max((a - b).abs().max().item() for a, b in zip(now, before))  # noqa: E731
    assert step(actor, agent.net.actor_parameters()) == pytest.approx(1e-3, rel=1e-3)
    assert step(critic, agent.net.critic_parameters()) == pytest.approx(1e-2, rel=1e-3)
    # annealing scales both rates; the two groups survive a save and load
    annealed = A2C("CartPole-v1", num_envs=2, n_steps=5, total_steps=1000, anneal_lr=True, lr=1e-3, critic_lr=4e-3,
                   **{**FAST, "log_interval": 500})
    rates = []
    annealed.learn(callback=lambda a: rates.append([g["lr"] for g in a.optimizer.param_groups]))
    (lr, clr), (end, cend) = rates
    assert lr == pytest.approx(0.5e-3, abs=2e-5) and clr == pytest.approx(4 * lr)
    assert 0.0 <= end < 2e-5 and cend == pytest.approx(4 * end)
    loaded = deeprl.load(annealed.save(tmp_path / "a2c"))
    assert [g["lr"] for g in loaded.optimizer.param_groups] == [1e-3, 4e-3]
    with pytest.raises(ConfigError, match="shared_torso"):
        A2C("CartPole-v1", critic_lr=1e-3, shared_torso=True, **FAST)


def test_running_mean_std_matches_numpy():
    from deeprl.agents.pg import RunningMeanStd
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(300, 4))
    rms = RunningMeanStd((4,))
    for chunk in np.split(data, [7, 50, 51, 200]):
        rms.update(chunk)
    np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-4)
    np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-3)
    z = rms.normalize(data)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01


def test_normalize_reward_divides_by_the_std_of_the_discounted_return():
    """Hand-computed: γ = 0.5, two envs, env 1's episode ends after the first step."""
    agent = A2C("CartPole-v1", num_envs=2, gamma=0.5, normalize_reward=True, **FAST)
    r1 = agent._scale_rewards(np.array([2.0, 4.0], np.float32), np.array([False, True]))
    # returns R = [2, 4]: the statistics start at mean 0, var 1, count 1e-4
    count = 1e-4 + 2
    mean = (3.0 * 2) / count
    var = (1e-4 + 1.0 * 2 + 9.0 * 1e-4 * 2 / count) / count
    np.testing.assert_allclose(r1, np.array([2.0, 4.0]) / np.sqrt(var + 1e-8), rtol=1e-5)
    np.testing.assert_allclose(agent._discounted, [2.0, 0.0])   # env 1 starts a new return
    agent._scale_rewards(np.array([1.0, 1.0], np.float32), np.array([False, False]))
    np.testing.assert_allclose(agent._discounted, [2.0, 1.0])   # 0.5 * 2 + 1 and 0.5 * 0 + 1
    assert agent.ret_rms.mean != mean  # updated again
    plain = A2C("CartPole-v1", num_envs=2, **FAST)
    same = np.array([2.0, 4.0], np.float32)
    assert plain._scale_rewards(same, np.array([False, False])) is same


def test_normalized_observations_learn_save_and_resume(tmp_path):
    agent = A2C(IDENTITY, seed=0, total_steps=6000, num_envs=4, lr=3e-3, normalize_obs=True, **FAST)
    agent.learn()
    assert agent.evaluate(10)["mean_return"] >= 17.0
    assert agent.obs_rms.count > 6000
    loaded = deeprl.load(agent.save(tmp_path / "a2c"))
    np.testing.assert_allclose(loaded.obs_rms.mean, agent.obs_rms.mean)
    obs = np.eye(3, dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict(obs), agent.predict(obs))
    with pytest.raises(ConfigError, match="normalize_obs works on vector observations"):
        A2C("tests.envs:DeeprlTest/Chain-v0", normalize_obs=True, **FAST)


def test_agents_draw_from_their_own_random_streams():
    """Constructing, training or querying an agent leaves torch's global random stream as it was,
    and two agents trained turn by turn end as each trained alone."""
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a, b = (PPO("CartPole-v1", seed=s, num_envs=2, n_steps=16, minibatch_size=16, n_epochs=2, **FAST) for s in (0, 1))
    for _ in range(2):
        a.learn(64)
        b.learn(64)
    a.predict(np.zeros(4, np.float32), deterministic=False)
    assert torch.equal(torch.get_rng_state(), before)
    alone = PPO("CartPole-v1", seed=0, num_envs=2, n_steps=16, minibatch_size=16, n_epochs=2, **FAST)
    alone.learn(128)
    for p, q in zip(a.net.parameters(), alone.net.parameters()):
        assert torch.equal(p, q)


def test_the_logs_people_read(tmp_path):
    """The learning rate (annealed here), episode length, the critic's explained variance and the
    Gaussian policy's σ are logged by name (docs/policy_gradients.md)."""
    agent = PPO("Pendulum-v1", preset=None, num_envs=2, n_steps=100, minibatch_size=100, n_epochs=1, anneal_lr=True,
                lr=1e-3, log_interval=400, eval_freq=0, eval_episodes=1, net_arch=[16], total_steps=1600)
    agent.learn(run_dir=tmp_path / "run", progress=False)
    agent.close()
    rows = [r for r in metrics_rows(tmp_path / "run" / "metrics.csv") if r["loss/actor"]]
    lrs = [float(r["charts/learning_rate"]) for r in rows]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] < 1e-3 and lrs[-1] < 3e-4
    assert all(float(r["charts/episode_length"]) == 200 for r in rows)  # Pendulum's time limit
    assert all(float(r["policy/std"]) > 0 for r in rows)
    assert all(-10 < float(r["value/explained_variance"]) <= 1 for r in rows)


def test_an_undeclared_metric_is_an_error_without_a_run_directory_too():
    """A notebook user (no run_dir, so no metrics.csv) is told as a CLI user is: every column is declared."""
    class Chatty(A2C):
        def update(self, r):
            super().update(r)
            self._record({"loss/typo": torch.tensor(1.0)})

    with pytest.raises(ValueError, match=r"'loss/typo'.*not declared by Chatty"):
        Chatty("CartPole-v1", num_envs=2, n_steps=8, **{**FAST, "log_interval": 16}).learn(64)
