from arch_contract import ArchContract


class TestNEAT(ArchContract):
    arch = "neat"
    options = {"head_width": 16, "head_blocks": 1}
