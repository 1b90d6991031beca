"""geoai side of ``make bench-peers``; runs in bench/.venv-peers, never imports agriseg.

``predict``: segment a GeoTIFF with geoai's tiled inference and write a uint8 class mask, the
way a geoai user would with an smp model trained elsewhere: the agriseg checkpoint is a plain
segmentation_models_pytorch DeepLabV3+ state dict in safetensors, so it loads into the same smp
class geoai itself builds (``smp.create_model``).

* ``--entry predict_geotiff`` (default): ``geoai.inference.predict_geotiff``, geoai's generic
  tiled GeoTIFF inference (pixel overlap, batches, blended tiles). The network is wrapped with a
  softmax so the blend averages probabilities, and argmax turns them into the class mask.
* ``--entry semantic_segmentation``: ``geoai.semantic_segmentation``, the notebook-level API that
  builds the smp model itself and loads a ``.pth`` state dict (written by ``pth``).

``check``: the network's raw logits for a saved input patch, so the driver can confirm that the
weights loaded here compute what agriseg's ONNX export computes.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np


def build(weights: str, arch: str, encoder: str, classes: int):
    import segmentation_models_pytorch as smp
    from safetensors.torch import load_model

    model = smp.create_model(arch=arch, encoder_name=encoder, encoder_weights=None,
                             in_channels=3, classes=classes)
    load_model(model, weights, strict=True, device="cpu")
    return model.eval()


def predict(a: argparse.Namespace) -> None:
    if a.entry == "semantic_segmentation":
        import geoai

        geoai.semantic_segmentation(a.raster, a.output, a.weights, architecture=a.arch,
                                    encoder_name=a.encoder, num_channels=3,
                                    num_classes=a.classes, window_size=a.tile,
                                    overlap=a.overlap, batch_size=a.batch_size, device="cpu",
                                    quiet=True)
        return
    import torch
    from geoai.inference import predict_geotiff

    model = torch.nn.Sequential(build(a.weights, a.arch, a.encoder, a.classes),
                                torch.nn.Softmax(dim=1))
    predict_geotiff(model, a.raster, a.output, tile_size=a.tile, overlap=a.overlap,
                    batch_size=a.batch_size, num_classes=a.classes, output_dtype="uint8",
                    output_nodata=255, postprocess_fn=lambda p: p.argmax(axis=0).astype(np.uint8),
                    device="cpu", verbose=False)


def check(a: argparse.Namespace) -> None:
    import torch

    model = build(a.weights, a.arch, a.encoder, a.classes)
    with torch.no_grad():
        logits = model(torch.from_numpy(np.load(a.patch))).numpy()
    np.save(a.output, logits)


def pth(a: argparse.Namespace) -> None:
    """The checkpoint as the torch state-dict file geoai.semantic_segmentation loads."""
    import torch

    torch.save(build(a.weights, a.arch, a.encoder, a.classes).state_dict(), a.output)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("predict", "check", "pth"):
        s = sub.add_parser(name)
        if name == "predict":
            s.add_argument("raster")
            s.add_argument("--entry", choices=("predict_geotiff", "semantic_segmentation"),
                           default="predict_geotiff")
            s.add_argument("--tile", type=int, default=512)
            s.add_argument("--overlap", type=int, default=64)
            s.add_argument("--batch-size", type=int, default=4)
        if name == "check":
            s.add_argument("patch", help=".npy float32 (N, 3, H, W), already scaled to 0..1")
        s.add_argument("-w", "--weights", required=True,
                       help=".safetensors state dict (.pth for predict --entry "
                            "semantic_segmentation)")
        s.add_argument("-o", "--output", required=True)
        s.add_argument("--arch", default="deeplabv3plus")
        s.add_argument("--encoder", default="resnet18")
        s.add_argument("--classes", type=int, default=3)
    a = p.parse_args(argv)
    {"predict": predict, "check": check, "pth": pth}[a.cmd](a)


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    sys.exit(main())
