import threading
import time

import numpy as np
import pytest
import torch

from agriseg.errors import ConfigError
from agriseg.infer.devices import resolve_device
from agriseg.infer.predictor import Predictor, prefetch
from agriseg.infer.prefetch import background_sink
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


def test_background_sink_keeps_order_and_reraises_writer_errors():
    got = []
    with background_sink(got.append, depth=2) as put:
        for i in range(40):
            put(i)
    assert got == list(range(40))  # everything written when the block ends

    def broken(item):
        if item == 3:
            raise OSError("disk full")
        got.append(item)

    got.clear()
    with pytest.raises(OSError, match="disk full"), background_sink(broken, depth=1) as put:
        for i in range(1000):
            put(i)
            time.sleep(0.001)
    assert got == [0, 1, 2]  # stopped at the error; later items were dropped
    assert not [t for t in threading.enumerate() if t.name == "agriseg-writer"]

    got.clear()
    with pytest.raises(KeyError), background_sink(got.append) as put:
        put(1)
        raise KeyError("caller failed")  # the writer thread is stopped, the error kept
    assert not [t for t in threading.enumerate() if t.name == "agriseg-writer"]


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


def test_submit_and_auto_batch_on_the_cpu():
    torch.manual_seed(0)
    model = create_model("unet", "resnet18", in_channels=3, classes=3, encoder_depth=3,
                         decoder_channels=(16, 8, 4)).eval()
    pred = Predictor(model, device="cpu")
    xs = [np.random.default_rng(i).standard_normal((2, 3, 64, 64)).astype(np.float32)
          for i in range(2)]
    first, second = pred.submit(xs[0]), pred.submit(xs[1])  # two in flight, like the pipeline
    np.testing.assert_array_equal(first(), pred(xs[0]))
    np.testing.assert_array_equal(second(), pred(xs[1]))
    assert pred.max_batch(3, 512, 512) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_submit_is_queued_through_pinned_memory():
    torch.manual_seed(0)
    model = create_model("deeplabv3plus", "resnet18", in_channels=3, classes=3).eval()
    pred = Predictor(model, device="cuda", amp=False)
    xs = [np.random.default_rng(i).standard_normal((4, 3, 256, 256)).astype(np.float32)
          for i in range(3)]
    expected = [pred(x) for x in xs]
    results = [pred.submit(xs[0]), pred.submit(xs[1])]
    got0 = results[0]().copy()  # collected before the one after next is submitted
    results.append(pred.submit(xs[2]))
    for got, want in zip([got0, results[1](), results[2]()], expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-4)
    assert all(b.is_pinned() for bufs in pred._pinned.values() for b in bufs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_auto_batch_fits_the_free_memory():
    model = create_model("deeplabv3plus", "resnet18", in_channels=3, classes=3).eval()
    pred = Predictor(model, device="cuda")
    n = pred.max_batch(3, 512, 512)
    assert 4 <= n <= 64  # a resnet18 patch needs well under 1 GB
    assert pred.max_batch(3, 512, 512, limit=2) == 2
    out = pred(np.zeros((n, 3, 512, 512), np.float32))  # and it really runs
    assert out.shape == (n, 3, 512, 512)
