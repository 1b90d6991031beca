"""PPM (PSPNet) and GCN + boundary refinement (Large Kernel Matters): each checked against its
defining property."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from block_checks import randomize, reach

from agriseg.models.modules.gcn import BoundaryRefinement, GCNBlock
from agriseg.models.modules.ppm import PPM
from agriseg.models.onnx_export import adaptive_avg_pool


def _block_means(x, b):
    n, c, h, w = x.shape
    return x.reshape(n, c, b, h // b, b, w // b).mean(dim=(3, 5))


def _branch_inputs(ppm, x):
    """What each pooled branch of ``ppm`` is fed, captured while ``ppm(x)`` runs."""
    seen = []
    hooks = [b.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
             for b in ppm.branches]
    with torch.no_grad():
        ppm(x)
    for h in hooks:
        h.remove()
    return seen


def test_ppm_pools_each_bin_to_block_means_where_sizes_divide():
    ppm = PPM(5, 8, bins=(1, 2, 3, 6), reduction_channels=4).eval()
    x = torch.randn(2, 5, 12, 18)
    pooled = _branch_inputs(ppm, x)
    assert [tuple(p.shape[-2:]) for p in pooled] == [(1, 1), (2, 2), (3, 3), (6, 6)]
    torch.testing.assert_close(pooled[0], x.mean(dim=(2, 3), keepdim=True))
    for b, p in zip((2, 3, 6), pooled[1:], strict=True):
        torch.testing.assert_close(p, _block_means(x, b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size", [(12, 20), (7, 5), (1, 1), (3, 13), (6, 6)])
def test_adaptive_pooling_matches_torch_where_sizes_do_not_divide(size):
    x = torch.randn(2, 3, *size)
    for b in (1, 2, 3, 6):
        torch.testing.assert_close(adaptive_avg_pool(x, b), F.adaptive_avg_pool2d(x, b))


def test_ppm_one_bin_branch_is_global_and_trains_at_batch_size_one():
    ppm = PPM(16, 8, reduction_channels=8).train()  # BatchNorm would refuse the 1x1 pooled map
    x = torch.randn(1, 16, 12, 18)
    levels = ppm.pyramid(x)
    assert [tuple(t.shape) for t in levels] == [(1, 8, 12, 18)] * 4
    whole = levels[0]
    torch.testing.assert_close(whole, whole[..., :1, :1].expand_as(whole), rtol=0, atol=1e-6)
    assert not torch.allclose(levels[-1], levels[-1][..., :1, :1].expand_as(levels[-1]))
    assert ppm.fuse[0].in_channels == 16 + 4 * 8 and ppm(x).shape == (1, 8, 12, 18)
    assert PPM(64, 8).reduction_channels == 16  # the paper's in_channels / len(bins)


def test_a_ppm_output_pixel_sees_the_whole_image():
    torch.manual_seed(0)
    ppm = PPM(8, 8, reduction_channels=8).eval()
    randomize(ppm)
    for m in ppm.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.fill_(1.0)
    x = torch.randn(1, 8, 15, 21, requires_grad=True)
    ppm(x)[0, :, 0, 0].sum().backward()  # a corner: its 3x3 fuse alone reaches 2x2 pixels
    assert (x.grad[0].abs().sum(0) > 0).all()


def test_ppm_exported_to_onnx_pools_correctly_at_another_size(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    ppm = PPM(6, 4, reduction_channels=4).eval()
    from agriseg.models.onnx_export import INPUT_NAME, OPSET, _export

    path = tmp_path / "ppm.onnx"
    _export(ppm, torch.zeros(1, 6, 12, 12), path, OPSET)  # exported at 12 x 12 ...
    x = torch.randn(2, 6, 7, 20)  # ... run at 7 x 20, where 3 and 6 bins do not divide
    with torch.no_grad():
        ref = ppm(x).numpy()
    out = ort.InferenceSession(str(path)).run(None, {INPUT_NAME: x.numpy()})[0]
    torch.testing.assert_close(torch.from_numpy(out), torch.from_numpy(ref), rtol=1e-4,
                               atol=1e-4)


def _gcn_kernel(block):
    """The one ``k x k`` kernel and bias that ``block`` applies: per branch, the second
    convolution's taps times the first's, summed over the intermediate channels."""
    a_l, b_l = block.left[0].weight[..., 0], block.left[1].weight[:, :, 0, :]  # k x 1, 1 x k
    a_r, b_r = block.right[0].weight[:, :, 0, :], block.right[1].weight[..., 0]  # 1 x k, k x 1
    kernel = (torch.einsum("omj,mci->ocij", b_l, a_l)
              + torch.einsum("omi,mcj->ocij", b_r, a_r))
    return kernel, block.left[1].bias + block.right[1].bias


@pytest.mark.parametrize("k", [3, 7])
def test_a_gcn_block_is_one_large_convolution(k):
    block = GCNBlock(4, 3, kernel_size=k).eval()
    randomize(block)
    x = torch.randn(2, 4, 15, 17)
    kernel, bias = _gcn_kernel(block)
    assert kernel.shape == (3, 4, k, k)
    with torch.no_grad():  # everywhere, borders included
        torch.testing.assert_close(block(x), F.conv2d(x, kernel, bias, padding=k // 2),
                                   rtol=1e-5, atol=1e-5)
    n_params = sum(p.numel() for p in block.parameters())
    assert n_params == 2 * k * (4 + 3) * 3 + 2 * 3  # 2k (in + out) out weights, two biases


def test_a_one_channel_gcn_kernel_is_rank_two_per_input_channel():
    block = GCNBlock(5, 1, kernel_size=9)
    randomize(block)
    kernel, _ = _gcn_kernel(block)
    with torch.no_grad():
        ranks = torch.linalg.matrix_rank(kernel[0])  # one 9 x 9 kernel per input channel
    assert ranks.tolist() == [2] * 5


def test_a_gcn_output_pixel_sees_a_dense_k_by_k_square():
    block = GCNBlock(3, 2, kernel_size=7)
    randomize(block)
    assert reach(block, torch.randn(1, 3, 21, 21), (10, 10)) == {
        (dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)}


def test_boundary_refinement_is_a_residual():
    br = BoundaryRefinement(3).eval()
    randomize(br)
    x = torch.randn(2, 3, 9, 11)
    with torch.no_grad():
        inner = F.conv2d(F.relu(F.conv2d(x, br.residual[0].weight, br.residual[0].bias,
                                         padding=1)),
                         br.residual[2].weight, br.residual[2].bias, padding=1)
        torch.testing.assert_close(br(x), x + inner)
        torch.nn.init.zeros_(br.residual[2].weight)
        torch.nn.init.zeros_(br.residual[2].bias)
        torch.testing.assert_close(br(x), x, rtol=0, atol=0)
