from arch_contract import ArchContract


class TestPPM(ArchContract):
    arch = "ppm"
    options = {"ppm_channels": 32, "reduction_channels": 16}
