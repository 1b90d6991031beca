"""Non-trivial weights and norm statistics for tests that compare a block with a direct
computation (default initializations hide mistakes: zero biases, unit variances)."""

import torch


def randomize(module: torch.nn.Module, seed: int = 3) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    for p in module.parameters():
        p.data = torch.randn(p.shape, generator=g) * 0.3
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean = torch.randn(m.num_features, generator=g) * 0.1
            m.running_var = torch.rand(m.num_features, generator=g) + 0.5
    return module
