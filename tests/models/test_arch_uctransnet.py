from arch_contract import ArchContract


class TestUCTransNet(ArchContract):
    arch = "uctransnet"
    options = {"decoder_channels": [32, 16, 16, 16], "num_heads": 2, "num_layers": 1}
