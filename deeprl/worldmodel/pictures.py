"""Pictures of a world model: reconstructions, how far a dream stays faithful, dreamed videos.

* :func:`reconstruction_grid`: real observations beside their decoded reconstructions (PNG).
* :func:`rollout_error`: open-loop prediction error against the real future, by horizon.
* :func:`dream_video`: a dreamed trajectory decoded to images beside the real episode that
  started from the same state (the lecture's "dream up complete segments of a video game").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from deeprl.errors import DeepRLError


class WorldModel(Protocol):
    """What the pictures use of a world-model agent (:class:`deeprl.WorldModel` has all of it)."""

    config: Any
    num_timesteps: int
    device: torch.device
    vae: Any      # a :class:`~deeprl.worldmodel.VAE`
    buffer: Any   # a :class:`~deeprl.buffers.ReplayBuffer` of real transitions

    def encode(self, obs: np.ndarray | torch.Tensor, sample: bool = False) -> torch.Tensor: ...

    def predict_latent(self, z: torch.Tensor, actions: torch.Tensor) -> torch.Tensor: ...


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _to_rgb(images: np.ndarray) -> np.ndarray:
    """``(N, C, H, W)`` uint8 (channels-first, possibly stacked frames) -> ``(N, H, W, 3)``: the newest frame."""
    c = images.shape[1]
    frame = images[:, -3:] if c % 3 == 0 else images[:, -1:]
    frame = np.moveaxis(frame, 1, -1)
    return np.repeat(frame, 3, axis=-1) if frame.shape[-1] == 1 else frame


def reconstruction_grid(agent: WorldModel, obs: torch.Tensor, path: str | Path) -> Path:
    """Top row real s, bottom row decoded ŝ = mean of p_ψ(s|z) at z = mean of q_ψ(z|s)."""
    plt = _figure()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        decoded = agent.vae.observation(agent.encode(obs)).cpu().numpy()
    real = obs.cpu().numpy()
    n = len(real)
    if real.ndim == 4:
        fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.4), squeeze=False)
        for row, images in enumerate((_to_rgb(real), _to_rgb(decoded))):
            for i in range(n):
                axes[row][i].imshow(images[i])
                axes[row][i].axis("off")
        axes[0][0].set_title("real", loc="left", fontsize=9)
        axes[1][0].set_title("decoded", loc="left", fontsize=9)
    else:
        dims = real.shape[1]
        fig, axes = plt.subplots(1, dims, figsize=(2.4 * dims, 2.6), squeeze=False)
        for d in range(dims):
            ax = axes[0][d]
            ax.scatter(real[:, d], decoded[:, d], s=12)
            lo, hi = float(min(real[:, d].min(), decoded[:, d].min())), float(max(real[:, d].max(), decoded[:, d].max()))
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
            ax.set_title(f"obs[{d}]", fontsize=9)
            ax.set_xlabel("real")
        axes[0][0].set_ylabel("decoded")
    fig.suptitle(f"{agent.config.env}: reconstructions at step {agent.num_timesteps:,}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def real_segments(agent: WorldModel, horizon: int, count: int, seed: int = 0) -> dict[str, np.ndarray] | None:
    """Up to ``count`` stretches of ``horizon`` consecutive real steps of one env with no episode end
    inside, from the replay: ``obs (K, H+1, ...)`` and ``actions (K, H, ...)``; None if none exist."""
    buf = agent.buffer
    rows = buf.rows if buf.full else buf.pos
    if rows < horizon:
        return None
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, rows - horizon + 1, size=8 * count)
    envs = rng.integers(0, buf.num_envs, size=8 * count)
    obs, actions = [], []
    for start, env in zip(starts, envs):
        span = (start + np.arange(horizon)) % buf.rows
        if buf.full and ((buf.pos - start) % buf.rows) < horizon and buf.pos != start:
            continue  # crosses the write head
        if (buf.terminated[span, env] | buf.truncated[span, env]).any():
            continue
        last = np.array([span[-1] * buf.num_envs + env])
        obs.append(np.concatenate([buf.obs[span, env], buf.next_observations(last)]))
        actions.append(buf.actions[span, env])
        if len(obs) == count:
            break
    if not obs:
        return None
    return {"obs": np.stack(obs), "actions": np.stack(actions)}


@torch.no_grad()
def rollout_error(agent: WorldModel, horizon: int = 30, count: int = 64, seed: int = 0) -> dict[str, Any] | None:
    """Open-loop dream error by horizon h = 1..H: encode the first real state, feed the real actions
    through p_ψ(z'|z,a) (means), decode, and compare with the real states (mean squared error of
    observations scaled as the VAE sees them: pixels in [0, 1]).  Also the error of repeating the
    first state, a baseline a useful model must beat."""
    seg = real_segments(agent, horizon, count, seed)
    if seg is None:
        return None
    obs = torch.as_tensor(seg["obs"], device=agent.device)
    actions = torch.as_tensor(seg["actions"], device=agent.device)
    scale = agent.vae.scale if agent.vae.image else 1.0
    real = obs.float() / scale
    z = agent.encode(obs[:, 0])
    errors, copy_errors = [], []
    for h in range(horizon):
        z = agent.predict_latent(z, actions[:, h])
        predicted = agent.vae.observation(z).float() / scale
        dims = tuple(range(1, predicted.dim()))
        errors.append(float((predicted - real[:, h + 1]).pow(2).mean(dims).mean()))
        copy_errors.append(float((real[:, 0] - real[:, h + 1]).pow(2).mean(dims).mean()))
    return {"horizon": list(range(1, horizon + 1)), "dream_mse": errors, "copy_first_mse": copy_errors,
            "segments": int(len(obs))}


def plot_rollout_error(result: dict[str, Any], path: str | Path, title: str = "") -> Path:
    plt = _figure()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(result["horizon"], result["dream_mse"], marker="o", ms=3, label="dream (decoded latent rollout)")
    ax.plot(result["horizon"], result["copy_first_mse"], ls="--", label="repeat the first state")
    ax.set_xlabel("horizon (steps)")
    ax.set_ylabel("mean squared error")
    ax.set_yscale("log")
    ax.set_title(title or f"how far the dream stays faithful ({result['segments']} real segments)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _state_setter(env: Any):
    """For vector observations: a function that puts the env into the state an observation
    describes, so a decoded observation can be drawn by the env's own renderer; None if unknown."""
    inner = env.unwrapped
    if not hasattr(inner, "state"):
        return None
    size = np.size(inner.state)
    obs_size = int(np.prod(env.observation_space.shape))
    if type(inner).__name__ == "PendulumEnv":  # observes (cos θ, sin θ, θ̇), its state is (θ, θ̇)
        return lambda o: setattr(inner, "state", np.array([np.arctan2(o[1], o[0]), o[2]]))
    if size == obs_size:  # CartPole, MountainCar: the observation is the state
        return lambda o: setattr(inner, "state", np.asarray(o, dtype=np.float64).copy())
    return None


def _render_state(env: Any, setter: Any, observation: np.ndarray) -> np.ndarray | None:
    """The env's own drawing of a dreamed observation, kept inside the observation space (a dream
    can leave it: a cart far off the track); ``None`` where the renderer still fails."""
    space = env.observation_space
    low = np.where(np.isfinite(space.low), space.low, -1e3)
    high = np.where(np.isfinite(space.high), space.high, 1e3)
    try:
        setter(np.clip(np.nan_to_num(observation), low, high))
        return env.render()
    except (OverflowError, ValueError):
        return None


def _resize_nearest(image: np.ndarray, height: int) -> np.ndarray:
    rows = (np.arange(height) * image.shape[0] // height)
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    cols = (np.arange(width) * image.shape[1] // width)
    return image[rows][:, cols]


def _bars(real: np.ndarray, decoded: np.ndarray, height: int) -> np.ndarray:
    """A drawn frame for observations no renderer can show: real vs decoded values per dimension."""
    plt = _figure()
    fig, ax = plt.subplots(figsize=(4, 3), dpi=height / 3)
    x = np.arange(len(real))
    ax.bar(x - 0.2, real, 0.4, label="real")
    ax.bar(x + 0.2, decoded, 0.4, label="dream")
    ax.set_xticks(x)
    ax.legend(fontsize=7)
    fig.canvas.draw()
    frame = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return frame


@torch.no_grad()
def dream_video(agent: Any, path: str | Path, *, steps: int = 200, seed: int = 0,
                use_real_actions: bool = True, fps: int = 30) -> dict[str, Any]:
    """An MP4: the real episode (left) beside the dream decoded to images (right), both starting from
    the same real state.  Works for any agent with ``decode_dream`` (world models and Dreamer).  The dream replays the real actions (``use_real_actions``) or lets the
    agent act in it; it stops where the real episode ended or after ``steps`` steps."""
    import imageio.v2 as imageio

    env = agent.make_env(render_mode="rgb_array")
    if env.render_mode != "rgb_array":
        env.close()
        raise DeepRLError(f"env {agent.config.env!r} cannot render RGB frames, so no dream video can be made")
    obs, _ = env.reset(seed=seed)
    real_obs, real_frames, actions = [np.asarray(obs)], [env.render()], []
    done = False
    while not done and len(actions) < steps:
        action = agent.predict(np.asarray(obs), deterministic=True)
        obs, _, terminated, truncated, _ = env.step(action)
        done = terminated or truncated
        actions.append(action)
        real_obs.append(np.asarray(obs))
        real_frames.append(env.render())
    decoded, dream_return = agent.decode_dream(np.stack(real_obs), np.stack(actions), use_real_actions)
    image = len(agent.observation_space.shape) == 3
    height = real_frames[0].shape[0]
    setter = None if image else _state_setter(env)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    try:
        with imageio.get_writer(str(tmp), fps=fps, macro_block_size=8, codec="libx264", quality=7) as writer:
            for t, (frame, d) in enumerate(zip(real_frames, decoded)):
                if image:
                    dreamed = _resize_nearest(_to_rgb(d[None])[0], height)
                elif setter is not None:
                    dreamed = _render_state(env, setter, d)
                    if dreamed is None:  # the renderer cannot draw this state: show the values
                        dreamed = _resize_nearest(_bars(real_obs[t], d, height), height)
                else:
                    dreamed = _resize_nearest(_bars(real_obs[t], d, height), height)
                gap = np.full((height, 8, 3), 255, np.uint8)
                writer.append_data(np.concatenate([np.asarray(frame, np.uint8), gap,
                                                   np.asarray(dreamed, np.uint8)], axis=1))
        tmp.replace(path)
    finally:
        env.close()
        tmp.unlink(missing_ok=True)
    return {"path": str(path), "frames": len(real_frames), "dream_return": dream_return,
            "actions": "real" if use_real_actions else "policy"}

