"""The one gradient step: torch.optim's Adam and RMSprop, clipping, and checked optimizer state."""

import copy

import pytest
import torch

from deeprl.agents.persistence import load_optimizer as _load_optimizer
from deeprl.errors import ConfigError
from deeprl.optim import grad_step, make_optimizer


def net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def loss_of(model, step):
    g = torch.Generator().manual_seed(step)
    x, y = torch.randn(16, 3, generator=g), torch.randn(16, 2, generator=g)
    return (model(x) - y).pow(2).mean() * 50  # large enough that clipping at 1 is active


@pytest.mark.parametrize("kind", ["adam", "rmsprop"])
@pytest.mark.parametrize("max_norm", [0.0, 1.0])
def test_grad_step_is_zero_backward_clip_step(kind, max_norm):
    """grad_step's trajectory is the textbook loop's, written out with torch's default optimizers."""
    ours, ref = net(), net()
    opt = make_optimizer(ours.parameters(), kind, lr=1e-2, eps=1e-5)
    ref_opt = (torch.optim.Adam(ref.parameters(), lr=1e-2, eps=1e-5) if kind == "adam"
               else torch.optim.RMSprop(ref.parameters(), lr=1e-2, alpha=0.99, eps=1e-5))
    for step in range(20):
        norm = grad_step(opt, loss_of(ours, step), max_norm)
        ref_opt.zero_grad()
        loss_of(ref, step).backward()
        ref_norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), max_norm if max_norm > 0 else float("inf"))
        ref_opt.step()
        torch.testing.assert_close(norm, ref_norm)
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_clipping_bounds_the_applied_gradient():
    model = net()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    before = [p.detach().clone() for p in model.parameters()]
    norm = grad_step(opt, loss_of(model, 0), max_norm=0.5)
    assert norm > 0.5  # the loss is large: the raw gradient is longer than the bound
    step = torch.cat([(b - p.detach()).reshape(-1) for b, p in zip(before, model.parameters())])
    assert step.norm().item() == pytest.approx(0.5, rel=1e-4)  # SGD with lr 1 moves by the clipped gradient


def test_parameters_stay_the_modules_own():
    """No re-homed storage: a deep copy or a move of the module takes its parameters along, and
    zero_grad(set_to_none=True) is what every step does."""
    model = net()
    opt = make_optimizer(model.parameters(), lr=1e-2)
    grad_step(opt, loss_of(model, 0))
    clone = copy.deepcopy(model)
    grad_step(opt, loss_of(model, 1))
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), clone.parameters()))
    assert all(p is q for p, q in zip(model.parameters(), opt.param_groups[0]["params"]))


def test_unknown_optimizer_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown optimizer 'sgd'"):
        make_optimizer(net().parameters(), "sgd", lr=1e-3)


def test_optimizer_state_of_another_kind_or_size_is_refused():
    adam = make_optimizer(net().parameters(), "adam", lr=1e-2)
    grad_step(adam, sum(p.pow(2).sum() for p in adam.param_groups[0]["params"]))
    rmsprop = make_optimizer(net().parameters(), "rmsprop", lr=1e-2)
    with pytest.raises(ValueError, match="not a RMSprop"):
        _load_optimizer(rmsprop, adam.state_dict())
    other = make_optimizer(torch.nn.Linear(2, 2).parameters(), "adam", lr=1e-2)
    with pytest.raises(ValueError):
        _load_optimizer(other, adam.state_dict())
    same = make_optimizer(net().parameters(), "adam", lr=1e-2)
    _load_optimizer(same, adam.state_dict())
    assert same.state_dict()["state"][0]["step"] == 1
