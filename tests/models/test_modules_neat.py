"""NEAT's growth operations preserve the function, survive a checkpoint, and train."""

from __future__ import annotations

import torch

from agriseg.models.card import ModelCard, Normalization
from agriseg.models.checkpoint import load_model, save_checkpoint
from agriseg.models.modules.neat import GrowableHead
from agriseg.models.registry import create_model


def _head(blocks=1):
    torch.manual_seed(0)
    head = GrowableHead(6, 3, width=5, blocks=blocks).double()
    for m in head.modules():  # non-trivial norm statistics and scales
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return head


def test_widening_and_deepening_preserve_the_function():
    x = torch.randn(2, 6, 12, 20, dtype=torch.float64)
    for mode in ("eval", "train"):
        head = _head()
        head.train(mode == "train")
        before = head(x)
        head.widen(9, generator=torch.Generator().manual_seed(1))
        assert head.width == 9 and head.shape() == {"head_width": 9, "head_blocks": 1}
        torch.testing.assert_close(head(x), before, rtol=0, atol=1e-6)
        head.deepen()
        assert len(head.blocks) == 2
        torch.testing.assert_close(head(x), before, rtol=0, atol=1e-6)
        head.widen(12)  # widening again, through the new block too
        torch.testing.assert_close(head(x), before, rtol=0, atol=1e-6)
        # every block is at the stream's width: the shape alone rebuilds the grown head
        rebuilt = GrowableHead(6, 3, **{k.removeprefix("head_"): v
                                        for k, v in head.shape().items()}).double()
        rebuilt.load_state_dict(head.state_dict(), strict=True)
        rebuilt.train(mode == "train")
        torch.testing.assert_close(rebuilt(x), before, rtol=0, atol=1e-6)


def test_new_parameters_receive_gradients():
    head = _head(blocks=0).train()
    x = torch.randn(2, 6, 12, 20, dtype=torch.float64)
    block = head.deepen()
    head.widen(8)
    head(x).square().mean().backward()
    assert block.norm2.weight.grad.abs().sum() > 0  # the new block's scale learns at once
    new_stem = head.stem.weight.grad[5:]
    assert new_stem.abs().sum() > 0  # the copied channels too
    with torch.no_grad():  # once the scale has moved, the block's convolutions learn
        block.norm2.weight.fill_(0.1)
    head.zero_grad()
    head(x).square().mean().backward()
    assert block.conv1.weight.grad.abs().sum() > 0 and block.conv2.weight.grad.abs().sum() > 0


def test_a_grown_model_reloads_at_its_grown_size(tmp_path):
    torch.manual_seed(0)
    model = create_model("neat", "resnet18", in_channels=3, classes=3, head_width=16).eval()
    model.head.widen(24)
    model.head.deepen()
    with torch.no_grad():
        model.head.blocks[0].norm2.weight.fill_(0.3)  # make the new block matter
    arch = {"arch": "neat", "encoder_name": "resnet18", **model.grown_shape()}
    assert arch["head_width"] == 24 and arch["head_blocks"] == 1
    card = ModelCard(arch=arch, bands=("red", "green", "blue"), classes=("a", "b", "c"),
                     normalization=Normalization.from_scale(255.0, 3), patch_px=64)
    path = save_checkpoint(tmp_path / "grown.safetensors", model, card)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(load_model(path).net.eval()(x), model(x), rtol=0, atol=0)


def test_growth_happens_on_the_weights_device():
    """The training loop grows a model already on its device (CUDA): the channel mapping is
    drawn on the CPU and must follow the weights. The meta device stands in for CUDA here."""
    with torch.device("meta"):
        head = GrowableHead(6, 3, width=5, blocks=1)
    head.widen(9, generator=torch.Generator().manual_seed(1))
    head.deepen()
    assert head.shape() == {"head_width": 9, "head_blocks": 2}
    assert {p.device.type for p in head.parameters()} == {"meta"}
