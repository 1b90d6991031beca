"""Values every layer must agree on, defined once.

``NODATA`` (255) is the class mask's no-data and the labels' "unknown": never a class, never a
polygon, ignored by the losses and the metrics. Class ids are 0..254 and 0 is the background
(soil). Input rasters are read in the ``SUPPORTED_DTYPES``, for which model cards record their
normalization. The names of the blend modes and devices are here so options can be checked
without importing the code that uses them.
"""

NODATA = 255
BACKGROUND = 0
MAX_CLASS_ID = 254
# class colours when a model card or a mask names none (soil brown, crop green, weed red...)
DEFAULT_COLORS = ((139, 90, 43), (34, 139, 34), (220, 20, 60), (30, 144, 255), (255, 215, 0),
                  (148, 0, 211), (0, 206, 209), (255, 140, 0))
SUPPORTED_DTYPES = ("uint8", "uint16", "int16", "float32")
BLEND_MODES = ("hann", "crop")  # how overlapping patches are merged (agriseg.infer.blending)
DEVICES = ("auto", "cpu", "cuda")  # where models run (agriseg.infer.devices)

# where the forward pass runs (see agriseg.infer.engines)
BACKENDS = ("auto", "torch", "onnx")
# --batch-size auto on the CPU: one patch a pass. Measured on 2 cores, 4096^2, DeepLabV3+/
# ResNet-18, whole `agriseg predict` processes (/usr/bin/time): ONNX Runtime 7.8 s and 343 MiB
# at 1, 8.0 s and 575 MiB at 4; PyTorch 13.2-15.3 s at 1, 16.7-17.2 s at 4. Larger batches
# cost memory and gain nothing there.
CPU_AUTO_BATCH = 1
ONNX_META_PREFIX = "agriseg."  # keys of agriseg's entries in an exported model's metadata
RESAMPLE_MODES = ("auto", "off")  # reading at the model's pixel size (agriseg.raster.resample)
# fixed input-range modes; a range is also given as "MIN,MAX" (agriseg.raster.ranges)
INPUT_RANGE_MODES = ("auto", "model")
# test-time augmentation: none, the 4 flips, the 8 dihedral transforms (agriseg.infer.tta)
TTA_MODES = ("none", "flips", "d4")
# below this confidence (percent) a vegetated pixel counts as "low confidence" in summary.json
LOW_CONFIDENCE_PERCENT = 60
