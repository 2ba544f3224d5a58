"""Slow learning tests: the shipped CartPole presets of DQN, A2C and PPO solve CartPole with their
final models (a 20-episode mean of at least 475 on fresh evaluation seeds) on 3 fixed seeds.

These are the README's first command and its closest peers, judged as users judge them: at the
end of training, not at the best checkpoint.  Runs go through the runner ``deeprl bench`` uses,
two at a time."""

import pytest

from deeprl.runner import Trial, run_trials

SEEDS = (1000, 1001, 1002)


@pytest.mark.slow
def test_cartpole_presets_solve_cartpole_with_their_final_models(tmp_path):
    trials = [Trial(algo, "CartPole-v1", seed, str(tmp_path / algo / str(seed)), settings={"eval_freq": 0})
              for algo in ("dqn", "a2c", "ppo") for seed in SEEDS]
    results = run_trials(trials, workers=2, backend="processes")
    finals = {(r["trial"]["algo"], r["trial"]["seed"]): r["final"] for r in results}
    assert all(f is not None and f >= 475 for f in finals.values()), finals
