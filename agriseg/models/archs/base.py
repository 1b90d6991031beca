"""What every agriseg architecture shares: the smp encoder and the output at the input's size.
The patch grid's input divisor is the encoder's ``output_stride``
(:func:`agriseg.models.registry.input_divisor`), as for smp's own models."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EncoderDecoder(nn.Module):
    """An smp encoder (``depth`` 5: features at strides 1, 2, 4, 8, 16, 32) and a decoder that
    subclasses define in :meth:`decode`, returning logits at any stride; :meth:`forward`
    upsamples them bilinearly to the input's size.

    ``output_stride`` 8 or 16 makes the encoder's last stages dilated instead of strided (as
    DeepLab does), for context modules that want denser features.
    """

    def __init__(self, encoder_name: str, in_channels: int, output_stride: int = 32,
                 smp_weights: str | None = None) -> None:
        super().__init__()
        import segmentation_models_pytorch as smp

        self.encoder = smp.encoders.get_encoder(encoder_name, in_channels=in_channels, depth=5,
                                                weights=smp_weights,
                                                output_stride=output_stride)
        self.encoder_channels: list[int] = list(self.encoder.out_channels)

    def decode(self, features: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.decode(self.encoder(x))
        if logits.shape[-2:] != x.shape[-2:]:
            logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear",
                                   align_corners=False)
        return logits
