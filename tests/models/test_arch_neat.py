from arch_contract import ArchContract


class TestNEAT(ArchContract):
    arch = "neat"
    options = {"head_width": 16, "head_blocks": 1}


def _net(**kw):
    import torch

    from agriseg.models.registry import create_model

    torch.manual_seed(0)
    return create_model("neat", "resnet18", in_channels=3, classes=3, head_width=16, **kw)


def test_grow_alternates_preserves_the_function_and_is_deterministic():
    import torch

    a, b = _net().double().eval(), _net().double().eval()
    x = torch.randn(1, 3, 64, 96, dtype=torch.float64)
    with torch.no_grad():
        before = a(x)
    state = torch.get_rng_state()
    events = [a.grow(step, seed=3) for step in range(4)]
    assert torch.equal(torch.get_rng_state(), state)  # the training RNG stream is untouched
    assert [e["op"] for e in events] == ["widen", "deepen", "widen", "deepen"]
    assert a.grown_shape() == {"head_width": 40, "head_blocks": 2}  # 16 -> 24 -> 36, up to x8
    assert events[-1]["params"] == sum(p.numel() for p in a.parameters())
    with torch.no_grad():
        torch.testing.assert_close(a(x), before, rtol=0, atol=1e-6)
    for step in range(4):
        b.grow(step, seed=3)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    assert a.grow(4, seed=3) is None  # grow_max_steps (4) reached


def test_growth_stays_within_the_parameter_budget():
    base = sum(p.numel() for p in _net().parameters())
    # one residual block at width 16 costs 2 * (16*16*9 + 32) = 4672 parameters; widening to
    # 24 costs more, so only the deepening fits, once
    net = _net(grow_max_params=base + 5000)
    assert net.grow(0, seed=0)["op"] == "deepen"  # widening would pass the budget
    assert net.grow(1, seed=0) is None  # neither fits any more
    assert net.grown_shape() == {"head_width": 16, "head_blocks": 1}
