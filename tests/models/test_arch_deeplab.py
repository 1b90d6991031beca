from arch_contract import ArchContract


class TestDeepLab(ArchContract):
    arch = "deeplab"
    options = {"aspp_channels": 32, "decoder_channels": 32}
