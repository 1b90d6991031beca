import threading
import time

import numpy as np
import pytest
import torch

from agriseg.errors import ConfigError
from agriseg.infer.devices import resolve_device
from agriseg.infer.predictor import Predictor, prefetch
from agriseg.models.registry import create_model


def test_prefetch_keeps_order_and_reraises_producer_errors():
    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))

    def broken():
        yield 1
        raise ValueError("disk on fire")

    got = []
    with pytest.raises(ValueError, match="disk on fire"):
        for x in prefetch(broken()):
            got.append(x)
    assert got == [1]


def test_prefetch_stops_its_thread_when_abandoned():
    produced = []

    def endless():
        i = 0
        while True:
            produced.append(i)
            yield i
            i += 1

    before = threading.active_count()
    for x in prefetch(endless(), depth=2):
        if x == 3:
            break
    time.sleep(0.2)
    assert threading.active_count() == before
    assert len(produced) <= 3 + 2 + 2  # bounded read-ahead


def test_devices():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_predictor_matches_plain_forward():
    torch.manual_seed(0)
    model = create_model("fpn", "resnet18", in_channels=3, classes=4).eval()
    x = np.random.default_rng(0).standard_normal((3, 3, 64, 96)).astype(np.float32)
    with torch.inference_mode():
        ref = model(torch.from_numpy(x)).numpy()
    got = Predictor(model, device="cpu")(x)
    assert got.dtype == np.float32 and got.shape == (3, 4, 64, 96)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_amp_close_to_cpu():
    torch.manual_seed(0)
    model = create_model("deeplabv3plus", "resnet18", in_channels=3, classes=3).eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 128, 128)).astype(np.float32)
    cpu = Predictor(model, device="cpu", amp=False)(x)
    gpu = Predictor(model, device="cuda", amp=True)(x)
    assert (cpu.argmax(1) == gpu.argmax(1)).mean() > 0.98
