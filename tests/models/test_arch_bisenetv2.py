from arch_contract import ArchContract


class TestBiSeNetV2(ArchContract):
    arch = "bisenetv2"
    options = {"detail_channels": 16}
