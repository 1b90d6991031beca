"""Helpers for the tests that check a block against a direct computation or its receptive
field: non-trivial weights and norm statistics (default initializations hide mistakes: zero
biases, unit variances), BatchNorm in eval mode as a formula, and the set of input pixels an
output pixel depends on."""

import torch
import torch.nn.functional as F


def randomize(module: torch.nn.Module, seed: int = 3) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.data = torch.randn(p.shape, generator=g) * 0.3
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean = torch.randn(m.num_features, generator=g) * 0.1
            m.running_var = torch.rand(m.num_features, generator=g) + 0.5
    return module


def eval_bn(x: torch.Tensor, bn: torch.nn.BatchNorm2d) -> torch.Tensor:
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0,
                        bn.eps)


def reach(module, x: torch.Tensor, at: tuple[int, int]) -> set[tuple[int, int]]:
    """Input pixels the output at ``at`` depends on (non-zero gradient), as offsets."""
    x = x.clone().requires_grad_(True)
    module(x)[0, :, at[0], at[1]].sum().backward()
    nz = x.grad[0].abs().sum(0).nonzero()
    return {(int(r) - at[0], int(c) - at[1]) for r, c in nz}
