from arch_contract import ArchContract


class TestGCN(ArchContract):
    arch = "gcn"
    options = {"kernel_size": 5}
