"""smp's architectures in the registry keep the same contract as agriseg's own (small options
keep the tests fast)."""

from arch_contract import ArchContract


class TestSmpDeepLabV3Plus(ArchContract):
    arch = "deeplabv3plus"
    options = {"decoder_channels": 32}
    trains_at_batch_1 = False  # BatchNorm in the ASPP pooling branch (agriseg's deeplab: GN)


class TestSmpPSPNet(ArchContract):
    arch = "pspnet"
    options = {"psp_out_channels": 32}
    # smp's PSPNet reads the encoder's first 3 stages but builds all 5: with resnet18 that is
    # 10.5 M of its 11.3 M parameters that never see a gradient (agriseg's ppm has none)
    unused_parameters = ("encoder.layer3.", "encoder.layer4.")


class TestSmpUPerNet(ArchContract):
    arch = "upernet"
    options = {"decoder_channels": 32}
    trains_at_batch_1 = False  # BatchNorm in its PPM's 1x1 bin


class TestSmpFPN(ArchContract):
    arch = "fpn"
    options = {"decoder_pyramid_channels": 64, "decoder_segmentation_channels": 32}


class TestSmpUnet(ArchContract):
    arch = "unet"
    options = {"decoder_channels": [32, 16, 16, 8, 8]}
