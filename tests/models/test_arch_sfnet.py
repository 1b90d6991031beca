from arch_contract import ArchContract


class TestSFNet(ArchContract):
    arch = "sfnet"
    options = {"decoder_channels": 32}
