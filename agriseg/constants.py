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
SUPPORTED_DTYPES = ("uint8", "uint16", "int16", "float32")
BLEND_MODES = ("hann", "crop")  # how overlapping patches are merged (agriseg.infer.blending)
DEVICES = ("auto", "cpu", "cuda")  # where models run (agriseg.infer.devices)

# where the forward pass runs (see agriseg.infer.engines)
BACKENDS = ("auto", "torch", "onnx")
CPU_AUTO_BATCH = 4  # --batch-size auto on the CPU: larger batches cost memory, not time
RESAMPLE_MODES = ("auto", "off")  # reading at the model's pixel size (agriseg.raster.resample)
# fixed input-range modes; a range is also given as "MIN,MAX" (agriseg.raster.ranges)
INPUT_RANGE_MODES = ("auto", "model")
