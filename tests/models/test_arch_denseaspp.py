from arch_contract import ArchContract


class TestDenseASPP(ArchContract):
    arch = "denseaspp"
    options = {"reduce_channels": 64, "growth": 16, "bottleneck": 32}
