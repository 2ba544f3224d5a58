"""Network torsos and heads. Networks know nothing of optimizers or losses."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from deeprl.noisy import NoisyLinear, noisify
from deeprl.spaces import Packed


_LOG_2PI = math.log(2 * math.pi)


def dense(in_dim: int, out_dim: int, activation: type[nn.Module] = nn.SiLU, bias: bool = False) -> nn.Sequential:
    """Linear → LayerNorm → activation (DreamerV3's hidden layer, whose Linear has no bias).

    ``bias`` gives the Linear its bias (PQN's layer): without one the block cannot tell an input
    from its positive multiples, LayerNorm dividing the scale out (CartPole's calm centre and its
    runaway edge look alike)."""
    return nn.Sequential(nn.Linear(in_dim, out_dim, bias=bias), nn.LayerNorm(out_dim), activation())


def _norm(width: int, layer_norm: bool) -> list[nn.Module]:
    """A LayerNorm over ``width`` features where ``layer_norm`` asks for one (for a CNN's dense layer)."""
    return [nn.LayerNorm(width)] if layer_norm else []


ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}  # by their config names


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int | None = None, *,
        activation: type[nn.Module] = nn.ReLU, layer_norm: bool = False, bias: bool | None = None) -> nn.Sequential:
    """Every MLP in deeprl: hidden layers of the given widths, then a linear output if ``out_dim``.

    A hidden layer is Linear → activation, or with ``layer_norm`` a :func:`dense` block; ``bias``:
    whether the hidden Linear layers have one (None: only without ``layer_norm``).
    """
    layers: list[nn.Module] = []
    for h in hidden:
        if layer_norm:
            layers.append(dense(in_dim, h, activation, bias=bool(bias)))
        else:
            layers += [nn.Linear(in_dim, h, bias=bias is not False), activation()]
        in_dim = h
    if out_dim is not None:
        layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log N(x; μ, diag σ²) = Σ_i [-½((x_i - μ_i)/σ_i)² - log σ_i - ½ log 2π], summed over the last dim.

    ``(..., D)`` inputs (broadcastable) -> ``(...)``.
    """
    z = (x - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * _LOG_2PI).sum(dim=-1)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """H(N(μ, diag σ²)) = Σ_i [log σ_i + ½(1 + log 2π)] over the last dim."""
    return (log_std + 0.5 * (1.0 + _LOG_2PI)).sum(dim=-1)


class NatureCNN(nn.Module):
    """The Atari DQN torso (Mnih et al. 2015): three convolutions and a 512-unit layer.

    Input ``(B, C, H, W)`` uint8 in [0, 255]; scaled to [0, 1] here so replay can store bytes.
    ``layer_norm`` puts a LayerNorm between the dense layer and its ReLU (PQN's Q-network).
    """

    def __init__(self, in_shape: tuple[int, int, int], features: int = 512, layer_norm: bool = False):
        super().__init__()
        c = in_shape[0]
        self.convs = nn.Sequential(
            nn.Conv2d(c, 32, kernel_size=8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, kernel_size=3, stride=1), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_flat = self.convs(torch.zeros(1, *in_shape)).shape[1]
        self.fc = nn.Sequential(nn.Linear(n_flat, features), *_norm(features, layer_norm), nn.ReLU())
        self.out_features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(x.float() / 255.0))


class GridCNN(nn.Module):
    """The MinAtar torso (Young & Tian 2019): one 3x3 convolution with 16 channels, then 128 units.

    For images too small for the Nature CNN (under 36 pixels a side), e.g. MinAtar's 10x10 grids;
    inputs are divided by ``scale`` (the observation space's largest value).
    """

    def __init__(self, in_shape: tuple[int, int, int], scale: float = 255.0, features: int = 128,
                 layer_norm: bool = False):
        super().__init__()
        c, h, w = in_shape
        self.scale = scale
        self.conv = nn.Sequential(nn.Conv2d(c, 16, kernel_size=3, stride=1), nn.ReLU(), nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(16 * (h - 2) * (w - 2), features), *_norm(features, layer_norm), nn.ReLU())
        self.out_features = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x.float() / self.scale))


class VectorTorso(nn.Module):
    """MLP over float vectors, or over one-hot codes of a Discrete observation (FrozenLake, Taxi)."""

    def __init__(self, space: gym.Space, hidden: list[int], activation: type[nn.Module] = nn.ReLU,
                 layer_norm: bool = False):
        super().__init__()
        self.one_hot = isinstance(space, gym.spaces.Discrete)
        self.start = int(space.start) if self.one_hot else 0  # Discrete(n, start): codes start..start+n-1
        self.in_dim = int(space.n) if self.one_hot else int(np.prod(space.shape))
        self.body = mlp(self.in_dim, hidden, activation=activation, layer_norm=layer_norm, bias=True)
        self.out_features = hidden[-1] if hidden else self.in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.one_hot:
            x = nn.functional.one_hot(x.long().reshape(-1) - self.start, self.in_dim).float()
        else:
            x = x.float().flatten(1)
        return self.body(x)


class MultiInputTorso(nn.Module):
    """The torso for composite observations (a :class:`~deeprl.spaces.Packed` space): each image
    entry through its own CNN torso (:meth:`image_torso`), Discrete and MultiDiscrete entries
    one-hot, vectors through ``transform`` (none by default) and MultiBinary entries as they are;
    all concatenated, then an MLP (SB3's CombinedExtractor)."""

    def __init__(self, space: Packed, hidden: list[int], activation: type[nn.Module] = nn.ReLU,
                 layer_norm: bool = False, transform: Callable[[torch.Tensor], torch.Tensor] | None = None):
        super().__init__()
        self.entries, self.transform = space.entries, transform
        self.cnns = nn.ModuleDict({str(i): self.image_torso(e.space, hidden, activation, layer_norm)
                                   for i, e in enumerate(self.entries) if e.kind == "image"})
        width = 0
        for i, e in enumerate(self.entries):
            width += self.cnns[str(i)].out_features if e.kind == "image" else sum(e.nvec) if e.nvec else e.size
            if e.nvec:  # one-hot position k is on when slot slot_of[k] holds value_of[k]
                self.register_buffer(f"slot_of_{i}", torch.tensor([j for j, n in enumerate(e.nvec) for _ in range(n)]),
                                     persistent=False)
                self.register_buffer(f"value_of_{i}", torch.tensor([v for n in e.nvec for v in range(n)]),
                                     persistent=False)
        self.body = mlp(width, hidden, activation=activation, layer_norm=layer_norm, bias=True)
        self.out_features = hidden[-1] if hidden else width

    def image_torso(self, space: gym.spaces.Box, hidden: list[int], activation: type[nn.Module],
                    layer_norm: bool) -> nn.Module:
        """The network of one image entry (``.out_features`` wide): the CNN torso by default."""
        return make_torso(space, hidden, activation, layer_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().flatten(1)
        parts = []
        for i, e in enumerate(self.entries):
            chunk = x[:, e.offset:e.offset + e.size]
            if e.kind == "image":
                parts.append(self.cnns[str(i)](chunk.reshape(-1, *e.space.shape)))
            elif e.nvec:
                codes = chunk.long()[:, getattr(self, f"slot_of_{i}")]
                parts.append((codes == getattr(self, f"value_of_{i}")).float())
            else:
                parts.append(self.transform(chunk) if self.transform and e.kind == "vector" else chunk)
        return self.body(torch.cat(parts, dim=1))


def make_torso(space: gym.Space, hidden: list[int], activation: type[nn.Module] = nn.ReLU,
               layer_norm: bool = False) -> nn.Module:
    """CNN for images (uint8, channels first; small grids get :class:`GridCNN`), MLP otherwise (its hidden
    layers with ``activation``; the CNNs keep ReLU), :class:`MultiInputTorso` for composite
    observations. ``.out_features`` tells the width."""
    if isinstance(space, Packed):
        return MultiInputTorso(space, hidden, activation, layer_norm)
    if isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3:
        if min(space.shape[1:]) < 36:  # the Nature CNN's three convolutions need 36 pixels a side
            return GridCNN(tuple(space.shape), scale=float(space.high.max()), layer_norm=layer_norm)
        return NatureCNN(tuple(space.shape), layer_norm=layer_norm)
    return VectorTorso(space, hidden, activation, layer_norm)


class QNetwork(nn.Module):
    """Q_θ(s, ·): a torso, then one linear output per action (the lecture's Atari Q-network).

    With ``dueling`` the head splits into a state value V(s) and advantages A(s, a) and recombines
    them as Q = V + A - mean_a A, which makes V identifiable (Wang et al. 2016).
    ``layer_norm``: a LayerNorm before each hidden activation of the torso (PQN, Gallici et al. 2025; the MLP
    layers and the CNNs' dense layer, not yet the composite-observation torso).
    ``atoms``: a distributional head, N outputs per action (C51's logits over ``support``, or QR-DQN's
    quantiles without one); dueling then recombines V and A atom by atom.  ``noisy_sigma0`` > 0: every
    fully connected layer, the torso's and the head's, is a factorized noisy one
    (:class:`~deeprl.noisy.NoisyLinear`; NoisyNet-DQN and Rainbow); convolutions stay plain.
    """

    def __init__(self, obs_space: gym.Space, n_actions: int, hidden: list[int], dueling: bool = False,
                 layer_norm: bool = False, *, atoms: int | None = None, support: torch.Tensor | None = None,
                 noisy_sigma0: float = 0.0):
        super().__init__()
        self.torso = make_torso(obs_space, hidden, layer_norm=layer_norm)
        if noisy_sigma0 > 0:
            noisify(self.torso, noisy_sigma0)
        self.dueling = dueling
        self.n_actions, self.atoms = n_actions, atoms
        f, k = self.torso.out_features, atoms or 1
        linear = (lambda i, o: NoisyLinear(i, o, noisy_sigma0)) if noisy_sigma0 > 0 else nn.Linear
        if dueling:
            self.value = linear(f, k)
            self.advantage = linear(f, n_actions * k)
        else:
            self.head = linear(f, n_actions * k)
        self.register_buffer("support", support, persistent=False)  # C51's atoms z_i (set by the config)

    def outputs(self, obs: torch.Tensor) -> torch.Tensor:
        """``(B, *obs_shape)`` -> ``(B, n_actions)`` Q values, or ``(B, n_actions, atoms)`` with ``atoms``."""
        h = self.torso(obs)
        shape = (h.shape[0], self.n_actions, self.atoms or 1)
        if not self.dueling:
            out = self.head(h).view(shape)
        else:
            adv = self.advantage(h).view(shape)
            out = self.value(h).view(shape[0], 1, -1) + adv - adv.mean(dim=1, keepdim=True)
        return out if self.atoms else out.squeeze(-1)

    def q_of(self, out: torch.Tensor) -> torch.Tensor:
        """Q from :meth:`outputs`: itself, Σ_i softmax(logits)_i z_i (C51), or the quantiles' mean (QR)."""
        if not self.atoms:
            return out
        if self.support is not None:
            return (out.softmax(dim=-1) * self.support).sum(dim=-1)
        return out.mean(dim=-1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``(B, *obs_shape)`` -> ``(B, n_actions)``."""
        return self.q_of(self.outputs(obs))


# ---------------------------------------------------------------------------------------------
# policies: action distributions and actor-critic networks

class Categorical:
    """π(a|s) over discrete actions from logits ``(B, A)``; lighter than torch.distributions.

    With ``mask`` ``(B, A)`` bool, π over the valid actions only: the others get the lowest finite
    logit, so their probability is 0 and their p log p in the entropy 0 too (-inf would give NaN).
    """

    def __init__(self, logits: torch.Tensor, mask: torch.Tensor | None = None):
        if mask is not None:
            logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
        self.logits = logits.log_softmax(dim=-1)  # normalised log-probabilities
        self.mask = mask

    def sample(self) -> torch.Tensor:
        """Gumbel-max: argmax_a (log π(a) + g_a), g ~ Gumbel(0, 1), is a draw from π (fewer and
        cheaper operations than ``torch.multinomial``)."""
        gumbel = -torch.empty_like(self.logits).exponential_().log()
        scores = self.logits + gumbel
        if self.mask is not None:  # an exponential draw of 0 gives g = +inf, which must not lift a masked action
            scores = scores.masked_fill(~self.mask, -math.inf)
        return scores.argmax(dim=-1)

    def mode(self) -> torch.Tensor:
        return self.logits.argmax(dim=-1)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return self.logits.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.logits.exp() * self.logits).sum(dim=-1)


def with_mask(dist: "Categorical", mask: torch.Tensor | np.ndarray | None) -> "Categorical":
    """``dist`` over the actions ``mask`` allows (None: ``dist`` itself); masks come with Discrete actions only."""
    if mask is None:
        return dist
    return Categorical(dist.logits, torch.as_tensor(mask, device=dist.logits.device))


class DiagGaussian:
    """π(a|s) = N(μ(s), diag σ²) over continuous actions; ``(B, D)`` means and log-std."""

    def __init__(self, mean: torch.Tensor, log_std: torch.Tensor):
        self.mean, self.log_std = mean, log_std.expand_as(mean)

    def sample(self) -> torch.Tensor:
        """a ~ π as data, without gradient (as ``torch.distributions``): the score-function
        estimator A ∇ log π(a|s) needs a fixed a, else ∂(a - μ)/∂μ = 0 cancels the mean's gradient."""
        with torch.no_grad():
            return self.rsample()

    def rsample(self) -> torch.Tensor:
        """a = μ + σ ε, reparameterized: the gradient flows to μ and σ (backprop through a dream)."""
        return self.mean + self.log_std.exp() * torch.randn_like(self.mean)

    def mode(self) -> torch.Tensor:
        return self.mean

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return gaussian_log_prob(actions, self.mean, self.log_std)

    def entropy(self) -> torch.Tensor:
        return gaussian_entropy(self.log_std)


class MultiCategorical:
    """π(a|s) over MultiDiscrete actions: one independent categorical per slot, ``(B, Σ nvec)``
    logits split by ``nvec``; actions ``(B, len(nvec))``, log-probabilities and entropies summed."""

    def __init__(self, logits: torch.Tensor, nvec: Sequence[int]):
        self.parts = [Categorical(part) for part in logits.split(list(nvec), dim=-1)]

    def sample(self) -> torch.Tensor:
        return torch.stack([p.sample() for p in self.parts], dim=-1)

    def mode(self) -> torch.Tensor:
        return torch.stack([p.mode() for p in self.parts], dim=-1)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return sum(p.log_prob(actions[..., i]) for i, p in enumerate(self.parts))

    def entropy(self) -> torch.Tensor:
        return sum(p.entropy() for p in self.parts)


class Bernoulli:
    """π(a|s) over MultiBinary actions: independent bits from logits ``(B, n)``."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits

    def sample(self) -> torch.Tensor:
        return (torch.rand_like(self.logits) < torch.sigmoid(self.logits)).float()

    def mode(self) -> torch.Tensor:
        return (self.logits > 0).float()

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return -nn.functional.binary_cross_entropy_with_logits(self.logits, actions.float(), reduction="none").sum(-1)

    def entropy(self) -> torch.Tensor:
        p = torch.sigmoid(self.logits)
        return nn.functional.binary_cross_entropy_with_logits(self.logits, p, reduction="none").sum(-1)


def action_head_size(space: gym.Space) -> int:
    """The policy head's outputs for an action space: logits per action (Discrete), per slot and
    value (MultiDiscrete), per bit (MultiBinary), or one mean per dimension (Box)."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return int(space.nvec.sum())
    return int(np.prod(space.shape))


Distribution = Categorical | DiagGaussian | MultiCategorical | Bernoulli


class ActorCritic(nn.Module):
    """Policy π_θ(a|s) and value V_φ(s).

    ``shared=True`` puts both heads on one torso (θ and φ share it, as in A2C on Atari);
    ``shared=False`` gives the critic its own torso, the lecture's separate actor and critic.
    Image observations always use the Nature CNN torso.
    """

    def __init__(self, obs_space: gym.Space, action_space: gym.Space, hidden: list[int], shared: bool = False,
                 log_std_init: float = 0.0, activation: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.nvec = tuple(int(n) for n in action_space.nvec) if isinstance(action_space, gym.spaces.MultiDiscrete) \
            else None
        self.binary = isinstance(action_space, gym.spaces.MultiBinary)
        self.continuous = isinstance(action_space, gym.spaces.Box)
        self.actor_torso = make_torso(obs_space, hidden, activation)
        self.critic_torso = self.actor_torso if shared else make_torso(obs_space, hidden, activation)
        self.shared = shared
        f = self.actor_torso.out_features
        self.policy_head = nn.Linear(f, action_head_size(action_space))
        if self.continuous:
            self.log_std = nn.Parameter(torch.full((action_head_size(action_space),), float(log_std_init)))
        self.value_head = nn.Linear(self.critic_torso.out_features, 1)
        # small policy outputs start near-uniform / near-zero-mean; orthogonal init as in A2C/PPO practice
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.orthogonal_(m.weight, gain=float(np.sqrt(2)))
                nn.init.zeros_(m.bias)
        nn.init.orthogonal_(self.policy_head.weight, gain=0.01)
        nn.init.orthogonal_(self.value_head.weight, gain=1.0)

    def distribution(self, features: torch.Tensor) -> Distribution:
        out = self.policy_head(features)
        if self.continuous:
            return DiagGaussian(out, self.log_std)
        if self.nvec is not None:
            return MultiCategorical(out, self.nvec)
        return Bernoulli(out) if self.binary else Categorical(out)

    def forward(self, obs: torch.Tensor) -> tuple[Distribution, torch.Tensor]:
        """``(B, *obs_shape)`` -> (π(·|s), V(s) of shape ``(B,)``)."""
        h = self.actor_torso(obs)
        hv = h if self.shared else self.critic_torso(obs)
        return self.distribution(h), self.value_head(hv).squeeze(-1)

    def policy(self, obs: torch.Tensor) -> Distribution:
        return self.distribution(self.actor_torso(obs))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.value_head(self.critic_torso(obs)).squeeze(-1)

    def actor_parameters(self) -> list[nn.Parameter]:
        critic_only = set(self.value_head.parameters())
        if not self.shared:
            critic_only |= set(self.critic_torso.parameters())
        return [p for p in self.parameters() if p not in critic_only]

    def critic_parameters(self) -> list[nn.Parameter]:
        ids = {id(p) for p in self.actor_parameters()}
        return [p for p in self.parameters() if id(p) not in ids]
