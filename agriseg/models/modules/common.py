"""Small pieces the blocks share: conv + norm + activation, and norms safe at batch size 1."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

NormLayer = Callable[[int], nn.Module]
ActLayer = Callable[[], nn.Module]


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with up to 32 groups of at least 2 channels: statistics per sample over a
    group, so it works on 1x1 maps and at batch size 1, where BatchNorm in training cannot."""
    groups = max((g for g in (32, 16, 8, 4, 2) if channels % g == 0 and channels // g >= 2),
                 default=1)
    return nn.GroupNorm(groups, channels)


def relu() -> nn.Module:
    return nn.ReLU(inplace=True)


class ConvNormAct(nn.Sequential):
    """``conv(k, dilation) -> norm -> act``; padding keeps the spatial size."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1,
                 dilation: int = 1, norm_layer: NormLayer = nn.BatchNorm2d,
                 act_layer: ActLayer | None = relu) -> None:
        padding = dilation * (kernel_size - 1) // 2
        layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size,
                                             padding=padding, dilation=dilation, bias=False),
                                   norm_layer(out_channels)]
        if act_layer is not None:
            layers.append(act_layer())
        super().__init__(*layers)
        self.in_channels, self.out_channels = in_channels, out_channels
