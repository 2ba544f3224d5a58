"""A trained agent's deterministic policy as an ONNX graph: observations in, actions out.

``export(agent, path)`` wraps what ``predict(obs, deterministic=True)`` does around the agent's
networks in one ``nn.Module``, a *policy module* built from the agent's public pieces:

* DQN: argmax_a Q_θ(s, a);
* REINFORCE, actor-critic, A2C, PPO: the running observation statistics (``normalize_obs``,
  frozen as they are now), the mode of π_θ(·|s) (argmax, or the Gaussian's mean clipped to the
  action bounds);
* WorldModel: the mode of π_θ(·|z) at z = the mean of q_ψ(z|s), clipped to the action bounds;
* Dreamer: one step of the recurrent policy, its state explicit (see :class:`DreamerStep`).

The module is traced by torch's TorchScript-based exporter (``dynamo=False``): it needs no
onnxscript and its graphs load in onnxruntime (the dynamo exporter's, at this opset, did not);
torch is pinned, so the exporter's deprecation does not move under us.  Before the file is
written, onnxruntime runs it beside ``predict`` on observations sampled from the observation
space (seeded): discrete actions must be equal, except where the reference's own scores tie
within :data:`TIE` (rounding decides those), continuous ones within :data:`TOLERANCE`; a
recurrent graph also runs them as episodes, its state fed back.  Otherwise nothing is written.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from deeprl.agents.devices import cpu_threads
from deeprl.checkpoint import atomic_write_with
from deeprl.dreamer.math import symlog
from deeprl.dreamer.rssm import State
from deeprl.errors import ConfigError, DeepRLError, did_you_mean
from deeprl.spaces import Packed, space_to_json

Algorithm = Any  # a deeprl.Algorithm (not imported: the agents' base imports this module)

FORMATS = ("onnx",)
OPSET = 17          # LayerNormalization is one op from 17 on; onnxruntime has run it since 1.14
TOLERANCE = 1e-4    # largest difference allowed between a continuous ONNX output and the reference's
TIE = 1e-5          # scores closer than this (relative to 1 or their size) are a tie that rounding may break
CHECKED = 1_000     # observations the check runs
RECURRENT_ENVS = 10  # Dreamer's check: CHECKED observations as RECURRENT_ENVS episodes run side by side


class ExportError(DeepRLError):
    """A policy that cannot be exported, or an exported graph that disagrees with ``predict``."""


# ---------------------------------------------------------------------------------------------
# policy modules: predict(obs, deterministic=True) as one traceable nn.Module per algorithm

Scores = dict[str, torch.Tensor]


class PolicyModule(nn.Module):
    """``forward(*inputs)``: the graph's outputs.  ``decide(*inputs)``: the outputs and, for each
    output an argmax makes, the ``(B, G, K)`` scores its G choices of K were made from: where two
    scores are within :data:`TIE`, float rounding may pick either, and the check allows it."""

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.decide(*inputs)[0]

    def decide(self, *inputs: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], Scores]:
        raise NotImplementedError


class GreedyQ(PolicyModule):
    """DQN: argmax_a Q_θ(s, a), ``(B, *obs_shape)`` -> ``(B,)`` int64 (``eval_eps`` is not exported)."""

    def __init__(self, q: nn.Module):
        super().__init__()
        self.q = q

    def decide(self, obs: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], Scores]:
        q = self.q(obs)
        return (q.argmax(dim=1),), {"action": q[:, None]}


class PolicyMode(PolicyModule):
    """The mode of π(·|s) for the policy-gradient family and the world-model agent.

    ``normalize = (mean, std, clip)``: observations become clip((s - mean) / std) in float64, as
    :class:`~deeprl.agents.pg.RunningMeanStd` computes them; ``encoder``: the VAE whose mean code
    the policy reads; ``bounds = (low, high)``: Gaussian means clipped to the action box.
    """

    def __init__(self, actor_critic: nn.Module, *, encoder: nn.Module | None = None,
                 normalize: tuple[np.ndarray, np.ndarray, float] | None = None,
                 bounds: tuple[np.ndarray, np.ndarray] | None = None):
        super().__init__()
        self.net, self.encoder = actor_critic, encoder
        self.clip = normalize[2] if normalize else 0.0
        stats = [None, None] if normalize is None else [torch.as_tensor(x, dtype=torch.float64) for x in normalize[:2]]
        self.register_buffer("obs_mean", stats[0])
        self.register_buffer("obs_std", stats[1])
        self.register_buffer("low", None if bounds is None else torch.as_tensor(bounds[0]))
        self.register_buffer("high", None if bounds is None else torch.as_tensor(bounds[1]))

    def decide(self, obs: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], Scores]:
        x = obs
        if self.obs_mean is not None:
            x = ((x.double() - self.obs_mean) / self.obs_std).clamp(-self.clip, self.clip).float()
        if self.encoder is not None:
            x = self.encoder.encode(x)[0]
        dist = self.net.policy(x)
        action = dist.mode()
        if self.low is not None:
            return (torch.minimum(torch.maximum(action, self.low), self.high),), {}
        return (action,), {"action": dist.logits[:, None]}


class DreamerStep(PolicyModule):
    """One step of Dreamer's recurrent policy with its state made explicit::

        (obs, deter, stoch, prev_action) -> (action, deter_out, stoch_out, prev_action_out)

    ``deter (B, D)`` is the GRU state h, ``stoch (B, S)`` the latent z (flattened one-hots or
    Gaussian means), ``prev_action (B, A)`` the last action in the model's form (one-hot, or in
    [-1, 1]).  Start every episode from zeros for all three (the RSSM's initial state), then feed
    each ``*_out`` back as the next step's input; ``action`` is what the env takes (an index, or
    the action rescaled to the box).  This is the policy ``deeprl eval`` runs: the posterior's
    and the actor's modes, no random draw.
    """

    def __init__(self, agent: Any):
        super().__init__()
        self.encoder, self.rssm, self.actor = agent.encoder, agent.rssm, agent.actor
        self.image, self.obs_scale, self.discrete = agent.image, agent.obs_scale, agent.discrete
        self.packed = agent.packed  # packed rows: the multi-entry encoder scales each entry itself
        space = agent.action_space
        self.register_buffer("low", None if self.discrete else torch.as_tensor(space.low))
        self.register_buffer("span", None if self.discrete else torch.as_tensor(space.high - space.low))

    def decide(self, obs: torch.Tensor, deter: torch.Tensor, stoch: torch.Tensor, prev_action: torch.Tensor
               ) -> tuple[tuple[torch.Tensor, ...], Scores]:
        x = obs.float()  # as Dreamer's _preprocess
        if not self.packed:
            x = x / self.obs_scale if self.image else symlog(x)
        first = torch.zeros_like(deter[:, 0], dtype=torch.bool)  # zeros in: the state an episode starts from
        post = self.rssm.obs_step(State(deter, stoch, {}), prev_action, self.encoder(x), first, mode=True)
        feature = post.feature()
        model_action = self.actor(feature, True)[0]
        scores = {"stoch_out": post.stats["logits"]} if "logits" in post.stats else {}
        if self.discrete:
            logits = self.actor.net(feature)[:, None]  # (unimix keeps their order)
            return (model_action.argmax(-1), post.deter, post.stoch, model_action), \
                {**scores, "action": logits, "prev_action_out": logits}
        return (self.low + (model_action + 1) / 2 * self.span, post.deter, post.stoch, model_action), scores


@dataclass
class PolicyGraph:
    """A policy module (a CPU copy: the agent's own networks stay where they are) and how it is
    called: example inputs by name (batch first), output names."""

    module: PolicyModule
    inputs: dict[str, torch.Tensor]
    outputs: list[str]
    notes: str = ""  # what the graph leaves out of predict, said in the report

    def __post_init__(self) -> None:
        self.module = copy.deepcopy(self.module).cpu().eval()

    @property
    def recurrent(self) -> bool:
        return len(self.inputs) > 1


def policy_graph(agent: Algorithm) -> PolicyGraph:
    """The policy module of ``agent``, or an ExportError naming what cannot be exported.

    Agents are told apart by what they hold (a Q-network ``q``; an actor-critic ``net`` with
    observation statistics; a VAE; an RSSM), so this module imports no agent (the agents' base
    imports it) and a new value-based algorithm with a ``q`` exports as DQN does."""
    obs_space, act_space = agent.observation_space, agent.action_space
    if type(obs_space) not in (gym.spaces.Box, gym.spaces.Discrete, Packed):
        raise ExportError("ONNX export takes Box, Discrete and composite observations; this agent observes "
                          f"{obs_space}, which it cannot export yet")
    if type(act_space) not in (gym.spaces.Box, gym.spaces.Discrete):
        raise ExportError(f"ONNX export gives Box and Discrete actions; this agent's actions are {act_space}, "
                          "which it cannot export yet")
    obs = {"obs": torch.as_tensor(_sample(obs_space, 2, 0))}
    bounds = (act_space.low, act_space.high) if isinstance(act_space, gym.spaces.Box) else None
    if hasattr(agent, "q"):
        eps = getattr(agent.config, "eval_eps", 0.0)
        return PolicyGraph(GreedyQ(agent.q), obs, ["action"], f"greedy: eval_eps={eps} is not exported" if eps else "")
    if hasattr(agent, "net") and hasattr(agent, "obs_rms"):
        rms = agent.obs_rms
        normalize = None if rms is None else (rms.mean, np.sqrt(rms.var + 1e-8), rms.clip)
        return PolicyGraph(PolicyMode(agent.net, normalize=normalize, bounds=bounds), obs, ["action"],
                           "" if rms is None else "observation statistics frozen at export")
    if hasattr(agent, "vae"):
        return PolicyGraph(PolicyMode(agent.ac, encoder=agent.vae, bounds=bounds), obs, ["action"])
    if hasattr(agent, "rssm"):
        n = len(obs["obs"])
        state = {"deter": torch.zeros(n, agent.rssm.deter_dim), "stoch": torch.zeros(n, agent.rssm.stoch_dim),
                 "prev_action": torch.zeros(n, agent.action_dim)}
        outputs = ["action", "deter_out", "stoch_out", "prev_action_out"]
        return PolicyGraph(DreamerStep(agent), {**obs, **state}, outputs,
                           "recurrent: feed deter_out, stoch_out, prev_action_out back; zeros at an episode's start")
    raise ExportError(f"no ONNX export for {agent.algo!r} agents; export knows dqn, reinforce, actor_critic, a2c, "
                      "ppo, worldmodel and dreamer")


def _sample(space: gym.Space, n: int, seed: int) -> np.ndarray:
    """``n`` observations drawn from ``space`` (seeded), as a batch of the space's dtype."""
    space = copy.deepcopy(space)  # the agent's space keeps its own random stream
    if isinstance(space, Packed):  # packed rows of observations the env could give
        space.source.seed(seed)
        return np.stack([space.pack(space.source.sample()) for _ in range(n)])
    space.seed(seed)
    return np.stack([np.asarray(space.sample(), dtype=space.dtype) for _ in range(n)])


# ---------------------------------------------------------------------------------------------
# export and check

def _runtime() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise ExportError(f"ONNX export needs onnx and onnxruntime ({e.name} is missing): "
                          'pip install "deeprl[export]"') from None
    return onnx, onnxruntime


def to_onnx(agent: Algorithm, graph: PolicyGraph) -> bytes:
    """The traced graph with the batch axis free and the agent's spaces in its metadata."""
    from deeprl.version import __version__

    onnx, _ = _runtime()
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice and tracer warnings
        torch.onnx.export(graph.module, tuple(graph.inputs.values()), buffer, dynamo=False, opset_version=OPSET,
                          input_names=list(graph.inputs), output_names=graph.outputs,
                          dynamic_axes={name: {0: "batch"} for name in [*graph.inputs, *graph.outputs]})
    model = onnx.load_from_string(buffer.getvalue())
    model.doc_string = " ".join((type(graph.module).__doc__ or "").split())
    meta = {"deeprl.algo": agent.algo, "deeprl.version": __version__, "deeprl.env": str(agent.config.env),
            "deeprl.observation_space": json.dumps(space_to_json(agent.observation_space)),
            "deeprl.action_space": json.dumps(space_to_json(agent.action_space))}
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _session(model: bytes) -> Any:
    _, ort = _runtime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # a check of 1,000 small rows gains nothing from threads
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


@dataclass
class Agreement:
    """How one output of the graph compares with its reference over a batch."""

    difference: float = 0.0  # the largest |graph - reference| over the rows whose choices agree
    ties: int = 0            # choices that differ where the reference's scores tie (within TIE)
    wrong: int = 0           # other differing choices, and rows farther apart than TOLERANCE

    def include(self, other: Agreement) -> None:
        self.difference = max(self.difference, other.difference)
        self.ties += other.ties
        self.wrong += other.wrong


def compare(got: np.ndarray, expected: np.ndarray, scores: np.ndarray | None = None) -> Agreement:
    """``got`` (the graph's) against ``expected``; ``scores (B, G, K)``: the output holds G
    choices of K per row (indices, or one-hots ``(B, G·K)``) made by argmax from these scores."""
    if got.shape != expected.shape or got.dtype != expected.dtype:
        return Agreement(float("inf"), 0, len(expected))
    agree = np.ones(len(expected), bool)
    ties = wrong = 0
    if scores is not None:
        mine, theirs = _choices(got, scores.shape), _choices(expected, scores.shape)
        differ = mine != theirs
        picked = np.take_along_axis(scores, np.clip(mine, 0, scores.shape[2] - 1)[..., None], -1)[..., 0]
        best = np.take_along_axis(scores, theirs[..., None], -1)[..., 0]
        tie = differ & (np.abs(best - picked) <= TIE * np.maximum(1.0, np.abs(best)))
        ties, wrong = int(tie.sum()), int((differ & ~tie).sum())
        agree = ~differ.any(axis=1)
    diff = np.abs(got[agree].astype(np.float64) - expected[agree].astype(np.float64))
    diff = diff.reshape(len(diff), int(np.prod(diff.shape[1:])))
    far = int((diff > TOLERANCE).any(axis=1).sum())
    return Agreement(float(diff.max()) if diff.size else 0.0, ties, wrong + far)


def _choices(output: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """The ``(B, G)`` choices an output holds: indices as they are, one-hots ``(B, G·K)`` by their argmax."""
    b, g, k = shape
    return output.reshape(b, g) if output.dtype.kind in "iu" else output.reshape(b, g, k).argmax(-1)


def _decide(graph: PolicyGraph, inputs: dict[str, np.ndarray]) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    with torch.no_grad():
        outputs, scores = graph.module.decide(*(torch.as_tensor(x) for x in inputs.values()))
    return [x.numpy() for x in outputs], {name: x.numpy() for name, x in scores.items()}


def _predict(agent: Algorithm, obs: np.ndarray) -> np.ndarray:
    """``predict(obs, deterministic=True)``; for DQN with ``eval_eps > 0``, its greedy action (what is exported)."""
    q = getattr(agent, "q", None)
    if q is not None and getattr(agent.config, "eval_eps", 0.0) > 0:
        with torch.inference_mode():
            return q(torch.as_tensor(obs, device=agent.device)).argmax(dim=1).cpu().numpy()
    return agent.predict(obs, deterministic=True)


@contextlib.contextmanager
def ieee_float32() -> Iterator[None]:
    """float32 as IEEE float32 on a GPU inside the block: cuDNN's convolutions default to TF32, whose
    10-bit mantissa would part ``predict`` from the graph by more than rounding does."""
    settings = (torch.backends.cudnn.conv, torch.backends.cuda.matmul)
    before = [s.fp32_precision for s in settings]
    for s in settings:
        s.fp32_precision = "ieee"
    try:
        yield
    finally:
        for s, precision in zip(settings, before):
            s.fp32_precision = precision


def check(agent: Algorithm, graph: PolicyGraph, model: bytes, *, observations: int = CHECKED,
          seed: int = 0) -> tuple[Agreement, Agreement | None]:
    """The graph run by onnxruntime against ``predict`` on ``observations`` observations sampled
    from the observation space: ``(actions, recurrent state)``.  A recurrent policy's graph also
    runs them as :data:`RECURRENT_ENVS` episodes side by side, each step from the state the torch
    module reached (so that one tie does not send the two apart), half of them restarted halfway."""
    session = _session(model)
    obs = _sample(agent.observation_space, observations, seed)
    inputs = {name: np.zeros((observations, *x.shape[1:]), x.numpy().dtype) for name, x in graph.inputs.items()}
    inputs["obs"] = obs
    _, scores = _decide(graph, inputs)
    actions = compare(session.run(["action"], inputs)[0], _predict(agent, obs), scores.get("action"))
    if not graph.recurrent:
        return actions, None
    state, n = Agreement(), RECURRENT_ENVS
    memory = {name: value[:n] for name, value in inputs.items() if name != "obs"}
    restart = np.arange(n) < n // 2
    for t in range(observations // n):
        if t == observations // n // 2:  # these episodes end: zeros in, as DreamerStep's docstring says
            memory = {name: np.where(restart[:, None], 0, value).astype(value.dtype) for name, value in memory.items()}
        step = {"obs": obs[t * n:(t + 1) * n], **memory}
        expected, scores = _decide(graph, step)
        for name, got, want in zip(graph.outputs, session.run(None, step), expected):
            (actions if name == "action" else state).include(compare(got, want, scores.get(name)))
        memory = dict(zip(memory, expected[1:]))
    return actions, state


def export(agent: Algorithm, path: str | Path, format: str = "onnx", *, observations: int = CHECKED,
           seed: int = 0) -> dict[str, Any]:
    """Write ``agent``'s deterministic policy to ``path`` as ``format`` once onnxruntime has run it
    beside ``predict`` on ``observations`` sampled observations (seeded by ``seed``).  Returns what
    was written: the path, inputs (shape with "batch" first, dtype) and outputs, the largest
    difference from ``predict`` and the ties (discrete choices the reference's scores did not
    separate by more than :data:`TIE`, which rounding may break either way)."""
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}.{did_you_mean(format, FORMATS)} "
                          f"Available: {', '.join(FORMATS)}")
    _runtime()
    graph = policy_graph(agent)
    model = to_onnx(agent, graph)
    on_gpu = agent.device.type == "cuda"
    with cpu_threads(1), ieee_float32() if on_gpu else contextlib.nullcontext():  # (one thread: rows are small)
        actions, state = check(agent, graph, model, observations=observations, seed=seed)
    for what, agreement in (("actions", actions), ("recurrent state", state)):
        if agreement is not None and agreement.wrong:
            raise ExportError(f"the ONNX graph's {what} differ from predict's on {agreement.wrong:,} of "
                              f"{observations:,} sampled observations (beyond {TOLERANCE:g} and ties); nothing was "
                              "written: this is a bug in deeprl's export, please report it")
    path = atomic_write_with(path, lambda tmp: Path(tmp).write_bytes(model))
    signature = lambda x: (["batch", *x.shape[1:]], str(x.numpy().dtype))  # noqa: E731
    report = {"path": str(path), "format": format, "algo": agent.algo, "observations": observations,
              "max_difference": actions.difference, "ties": actions.ties, "notes": graph.notes,
              "inputs": {name: signature(x) for name, x in graph.inputs.items()}, "outputs": graph.outputs}
    if state is not None:
        report.update(state_difference=state.difference, ties=actions.ties + state.ties)
    return report
