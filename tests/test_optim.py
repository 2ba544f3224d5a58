"""FlatOptimizer: the same trajectory as torch.optim's Adam and RMSprop, with clipping and resume."""

import copy

import pytest
import torch

from deeprl.errors import CheckpointError
from deeprl.optim import FlatOptimizer


def net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def loss_of(model, step):
    g = torch.Generator().manual_seed(step)
    x, y = torch.randn(16, 3, generator=g), torch.randn(16, 2, generator=g)
    return (model(x) - y).pow(2).mean() * 50  # large enough that clipping at 1 is active


@pytest.mark.parametrize("kind", ["adam", "rmsprop"])
@pytest.mark.parametrize("max_norm", [float("inf"), 1.0])
@pytest.mark.parametrize("arithmetic", ["numpy", "torch"])  # the CPU's and the GPU's
def test_matches_torch_optim(kind, max_norm, arithmetic):
    ours, ref = net(), net()
    opt = FlatOptimizer(ours.parameters(), kind, lr=1e-2, eps=1e-5)
    assert opt._np is not None
    if arithmetic == "torch":
        opt._np = None
    ref_opt = (torch.optim.Adam(ref.parameters(), lr=1e-2, eps=1e-5) if kind == "adam"
               else torch.optim.RMSprop(ref.parameters(), lr=1e-2, alpha=0.99, eps=1e-5))
    for step in range(20):
        opt.zero_grad()
        loss_of(ours, step).backward()
        norm = opt.clip_grad_norm(max_norm)
        opt.step()
        ref_opt.zero_grad()
        loss_of(ref, step).backward()
        ref_norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), max_norm)
        ref_opt.step()
        torch.testing.assert_close(norm, ref_norm)
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert opt.steps == 20


def test_parameters_are_views_of_the_flat_buffer():
    model = net()
    before = [p.detach().clone() for p in model.parameters()]
    opt = FlatOptimizer(model.parameters(), "adam")
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p, b) and p.data_ptr() >= opt.flat.data_ptr()
    opt.flat.zero_()
    assert all(float(p.detach().abs().sum()) == 0 for p in model.parameters())
    model.load_state_dict(net(1).state_dict())  # copies in place: still the same buffer
    assert float(opt.flat.abs().sum()) > 0


def test_module_zero_grad_does_not_detach_gradients():
    model = net()
    opt = FlatOptimizer(model.parameters(), "rmsprop", lr=0.1)
    model.zero_grad()  # sets .grad to None
    opt.zero_grad()
    loss_of(model, 0).backward()
    assert float(opt.grad.abs().sum()) > 0


def test_state_dict_resumes_the_same_trajectory():
    a = net()
    opt_a = FlatOptimizer(a.parameters(), "adam", lr=1e-2)
    for step in range(5):
        opt_a.zero_grad(); loss_of(a, step).backward(); opt_a.step()
    b = copy.deepcopy(a)
    opt_b = FlatOptimizer(b.parameters(), "adam", lr=1e-2)
    opt_b.load_state_dict({k: v.clone() if torch.is_tensor(v) else v for k, v in opt_a.state_dict().items()})
    for step in range(5, 10):
        for m, o in ((a, opt_a), (b, opt_b)):
            o.zero_grad(); loss_of(m, step).backward(); o.step()
    assert torch.equal(opt_a.flat, opt_b.flat)


def test_foreign_state_is_a_clear_error():
    opt = FlatOptimizer(net().parameters(), "adam")
    with pytest.raises(CheckpointError, match="does not match"):
        opt.load_state_dict(FlatOptimizer(net().parameters(), "rmsprop").state_dict())
    with pytest.raises(CheckpointError, match="does not match"):
        opt.load_state_dict(FlatOptimizer(torch.nn.Linear(2, 2).parameters(), "adam").state_dict())
