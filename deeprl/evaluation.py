"""Evaluating a policy on fresh environments, and recording it on video."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from deeprl.envs import make_env, make_vec_env, use_atari_wrappers
from deeprl.envs.atari import is_atari_id
from deeprl.envs.sources import describe_factory
from deeprl.errors import DeepRLError, one_line

EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes never share seeds with training episodes
# An env registered without a time limit is evaluated with this one (training keeps the larger
# DEFAULT_EPISODE_LIMIT): a greedy policy that loops (CliffWalking) would otherwise play each
# evaluation episode for 100,000 steps.  Episodes it cuts are counted and reported.
EVAL_EPISODE_CAP = 10_000

Policy = Callable[[np.ndarray], np.ndarray]  # batch of observations -> batch of actions
# A policy with memory (Dreamer's recurrent state) also has ``reset(mask)``: the envs flagged in
# ``mask`` start a new episode at the next call.  Stateless policies need nothing.


def _reset(policy: Policy, mask: np.ndarray) -> None:
    if hasattr(policy, "reset") and mask.any():
        policy.reset(mask)


def _act(policy: Policy, obs: np.ndarray, action_mask: np.ndarray | None) -> np.ndarray:
    """The policy's actions, under the env's invalid-action masks where it gives them (a policy
    then takes ``action_mask=``, a ``(B, n)`` bool array)."""
    return policy(obs) if action_mask is None else policy(obs, action_mask=action_mask)


def _episode_limit(env: gym.Env) -> int | None:
    """The limit make_env gave an env registered without one (None: the env's own or the user's)."""
    try:  # wrappers above the time limit (the user's, channels-first images) hide the attribute from getattr
        return env.get_wrapper_attr("deeprl_episode_limit")
    except AttributeError:
        return None


def evaluate(policy: Policy, env_id: str | Callable[[], gym.Env], episodes: int, seed: int, *,
             num_envs: int | None = None, env_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Mean and std of the undiscounted return over ``episodes`` complete episodes.

    Episodes are spread over parallel envs with a fixed quota per env, so short episodes are not
    over-represented (counting the first N to finish would favour them).
    """
    num_envs = num_envs or min(episodes, 8)
    kwargs = {**(env_kwargs or {}), "episode_limit": EVAL_EPISODE_CAP}
    probe = make_env(env_id, **kwargs)
    cap = _episode_limit(probe)
    probe.close()
    if cap:  # the limit counts env steps, an episode's length decisions
        cap = -(-cap // int(kwargs.get("action_repeat", 1)))
    envs = make_vec_env(env_id, num_envs, seed + EVAL_SEED_OFFSET, **kwargs)
    quota = np.array([episodes // num_envs + (i < episodes % num_envs) for i in range(num_envs)])
    returns: list[list[float]] = [[] for _ in range(num_envs)]
    lengths: list[list[int]] = [[] for _ in range(num_envs)]
    try:
        obs = envs.reset()
        _reset(policy, np.ones(num_envs, bool))
        while any(len(r) < q for r, q in zip(returns, quota)):
            step = envs.step(_act(policy, obs, envs.action_mask))
            obs = step.obs
            _reset(policy, step.terminated | step.truncated)
            for i, ret, length in step.episodes:
                if len(returns[i]) < quota[i]:
                    returns[i].append(ret)
                    lengths[i].append(length)
    finally:
        envs.close()
    flat = [r for rs in returns for r in rs]
    flat_len = [n for ns in lengths for n in ns]
    return {"mean_return": float(np.mean(flat)), "std_return": float(np.std(flat)), "episodes": len(flat),
            "mean_length": float(np.mean(flat_len)), "returns": flat, "episode_cap": cap,
            "capped_episodes": sum(n >= cap for n in flat_len) if cap else 0}


def record_video(policy: Policy, env_id: str | Callable[[], gym.Env], path: str | Path, seed: int, *,
                 episodes: int = 1, fps: int = 30, max_frames: int = 10_000,
                 env_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Plays ``episodes`` episodes and writes the rendered frames to an MP4 file (Atari: whole games,
    not single lives)."""
    import imageio.v2 as imageio

    kwargs = dict(env_kwargs or {})
    if is_atari_id(env_id) and use_atari_wrappers(env_id, kwargs.get("atari_wrappers", "auto")):
        kwargs["episodic_life"] = False
    name = env_id if isinstance(env_id, str) else describe_factory(env_id)
    path = Path(path)
    if path.exists() and not path.is_file():
        raise DeepRLError(f"{str(path)!r} exists and is not a regular file; give --video a new .mp4 path or a "
                          "file it may replace")
    try:
        with warnings.catch_warnings():  # an env without rgb_array is refused below, in deeprl's one line
            warnings.filterwarnings("ignore", message=".*render_mode.*")
            env = make_env(env_id, render_mode="rgb_array", **kwargs)
    except (TypeError, AssertionError, gym.error.Error) as e:
        raise DeepRLError(f"env {name!r} cannot be made with render_mode='rgb_array' ({one_line(e)}), so no "
                          "video can be made") from None
    if env.render_mode != "rgb_array" or "rgb_array" not in (env.metadata.get("render_modes") or []):
        env.close()
        raise DeepRLError(f"env {name!r} cannot render RGB frames (its render modes: "
                          f"{env.metadata.get('render_modes')}), so no video can be made; add 'rgb_array' rendering")
    path.parent.mkdir(parents=True, exist_ok=True)
    frames, returns = 0, []
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    tmp.unlink(missing_ok=True)
    try:
        with imageio.get_writer(str(tmp), fps=fps, macro_block_size=8, codec="libx264", quality=7) as writer:
            for ep in range(episodes):
                obs, info = env.reset(seed=seed + EVAL_SEED_OFFSET + ep)
                _reset(policy, np.ones(1, bool))
                done, total = False, 0.0
                while not done and frames < max_frames:
                    frame = env.render()
                    writer.append_data(np.asarray(frame, dtype=np.uint8))
                    frames += 1
                    mask = info.get("action_mask")  # a (1, n) batch of one, as for the vector envs
                    mask = None if mask is None else np.asarray(mask, bool)[None]
                    action = _act(policy, np.asarray(obs)[None], mask)[0]
                    obs, reward, terminated, truncated, info = env.step(action)
                    done = terminated or truncated
                    total += float(reward)
                    if "episode" in info:
                        total = float(info["episode"]["r"])
                returns.append(total)
        tmp.replace(path)
    except (OSError, AssertionError, ValueError, RuntimeError) as e:  # ffmpeg's, or the env's render
        raise DeepRLError(f"could not write the video {str(path)!r} ({one_line(e)})") from None
    finally:
        env.close()
        tmp.unlink(missing_ok=True)
    return {"path": str(path), "frames": frames, "returns": returns}
