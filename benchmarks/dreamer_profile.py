"""Where Dreamer's CPU time goes: one gradient step split into its parts, and one env step of acting.

Builds Dreamer on a task with its preset (Pendulum-v1 by default), fills the replay with random
steps, then times each part of ``train_step`` with ``time.process_time`` (CPU time of this process: with one thread it does not count the time other processes take from a shared machine) over ``--updates``
gradient steps (after ``--warmup``), torch threads = 1.  Prints a table: milliseconds per part
and its share of the update, and the milliseconds of one acting step (the posterior filter and
the actor on one observation).

    nice -n 19 .venv/bin/python benchmarks/dreamer_profile.py
    nice -n 19 .venv/bin/python benchmarks/dreamer_profile.py --set horizon=15 batch_length=32
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from contextlib import contextmanager

import numpy as np
import torch
from torch.nn import functional as F

import deeprl
from deeprl.agents.dreamer import frozen
from deeprl.config import parse_assignments
from deeprl.dreamer.math import kl_balanced_loss, lambda_returns
from deeprl.dreamer.rssm import State, flatten
from deeprl.optim import grad_step

PARTS = ("sample", "encode", "observe loop", "prior + KL + heads", "model backward + Adam",
         "imagine loop", "actor loss", "actor backward + Adam", "critic + Adam")


def profile(env: str, updates: int, warmup: int, overrides: dict) -> tuple[dict[str, list[float]], float, dict]:
    torch.set_num_threads(1)
    agent = deeprl.ALGORITHMS["dreamer"](env, seed=0, eval_freq=0, checkpoint_freq=0, torch_threads=1, **overrides)
    c = agent.config
    agent._obs = agent.envs.reset()
    while not agent.replay.can_sample(c.batch_length) or agent.num_timesteps < 2 * c.batch_length:
        agent.replay.add(agent._obs, agent._prev_action, agent._prev_reward, agent._first, np.zeros(c.num_envs, bool))
        env_actions, model_actions = agent._random_actions(c.num_envs)
        step = agent._env_step(env_actions)
        agent._prev_action, agent._prev_reward, agent._first = model_actions, step.reward.astype(np.float32), \
            step.terminated | step.truncated
    times: dict[str, list[float]] = defaultdict(list)

    @contextmanager
    def part(name: str):
        t0 = time.process_time()
        yield
        times[name].append(time.process_time() - t0)

    for i in range(warmup + updates):
        if i == warmup:
            times.clear()
        t_all = time.process_time()
        # the parts of Dreamer.train_step / train_world_model / train_behaviour, in order
        with part("sample"):
            batch = agent.replay.sample(c.batch_size, c.batch_length, agent.rng, device=agent.device)
        with part("encode"):
            embed = agent._embed(batch["obs"])
        with part("observe loop"):
            post, prior, _ = agent.rssm.observe(embed, batch["action"], batch["is_first"])
        with part("prior + KL + heads"):
            feature = post.feature()
            dyn, rep, _ = kl_balanced_loss(post.stats, prior, c.latent, c.free_bits)
            losses = {"recon": agent._recon_loss(feature, batch["obs"]).mean(),
                      "reward": agent.twohot.loss(agent.reward_head(feature), batch["reward"]).mean(),
                      "continue": F.binary_cross_entropy_with_logits(agent.continue_head(feature).squeeze(-1),
                                                                     1.0 - batch["is_terminal"].float()),
                      "dyn": dyn, "rep": rep}
            loss = sum(agent.loss_scales[k] * v for k, v in losses.items())
        with part("model backward + Adam"):
            grad_step(agent.optimizers["model"], loss, c.model_grad_norm)
        start, is_terminal = flatten(post), batch["is_terminal"].reshape(-1)
        if 0 < c.imagine_starts < len(is_terminal):
            pick = torch.as_tensor(agent.rng.choice(len(is_terminal), c.imagine_starts, replace=False))
            start, is_terminal = State(start.deter[pick], start.stoch[pick], {}), is_terminal[pick]
        with frozen(agent._world_model() + [agent.critic_target]):
            with part("imagine loop"):
                dream = agent.imagine(start.detach(), c.horizon)
            with part("actor loss"):
                features = dream["features"]
                rewards = agent.twohot.decode(agent.reward_head(features[1:]))
                continues = torch.sigmoid(agent.continue_head(features[1:]).squeeze(-1))
                values = agent.twohot.decode(agent.critic_target(features))
                returns = lambda_returns(rewards, values[1:], continues, c.gamma, c.lam)
                alive = torch.cat([(1.0 - is_terminal.float())[None], continues[:-1]]).detach()
                weight = torch.cumprod(alive, dim=0)
                agent.normalizer.update(returns)
                actor_loss = -(weight * (returns / agent.normalizer.scale + c.ent_coef * dream["entropies"])).mean()
            with part("actor backward + Adam"):
                grad_step(agent.optimizers["actor"], actor_loss, c.ac_grad_norm)
        with part("critic + Adam"):
            critic_loss = (weight * agent.twohot.loss(agent.critic(features[:-1].detach()), returns.detach())).mean()
            grad_step(agent.optimizers["critic"], critic_loss, c.ac_grad_norm)
            with torch.no_grad():
                torch._foreach_lerp_(list(agent.critic_target.parameters()), list(agent.critic.parameters()),
                                     c.critic_tau)
        times["whole update"].append(time.process_time() - t_all)
    # the real train_step, untouched, for comparison with the sum of the parts
    for i in range(max(3, updates // 2)):
        t0 = time.process_time()
        agent.train_step()
        times["Dreamer.train_step"].append(time.process_time() - t0)
    obs = agent.envs.reset()
    memory = agent._policy_state(c.num_envs)
    for i in range(300):
        t0 = time.process_time()
        agent._policy_step(memory, obs, False)
        times["act (one env step)"].append(time.process_time() - t0)
    agent.close()
    return times, c


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="Pendulum-v1")
    p.add_argument("--updates", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="Dreamer settings")
    args = p.parse_args()
    times, c = profile(args.env, args.updates, args.warmup, parse_assignments(args.set))
    total = statistics.median(times["whole update"])
    print(f"Dreamer on {args.env}: batch {c.batch_size} x {c.batch_length}, horizon {c.horizon}, "
          f"imagine_starts {c.imagine_starts}, deter {c.deter}, hidden {c.hidden}, torch threads 1; "
          f"medians over {args.updates} updates")
    print("| part | ms | share |\n| --- | ---: | ---: |")
    for name in PARTS:
        ms = 1000 * statistics.median(times[name])
        print(f"| {name} | {ms:.1f} | {ms / 1000 / total:.0%} |")
    print(f"| whole update (timed parts) | {1000 * total:.1f} | 100% |")
    print(f"| Dreamer.train_step | {1000 * statistics.median(times['Dreamer.train_step']):.1f} | |")
    print(f"| act (one env step, policy only) | {1000 * statistics.median(times['act (one env step)']):.2f} | |")


if __name__ == "__main__":
    main()
