"""Synthetic fields with exact labels: test data, benchmark rasters and the committed samples.

Not part of mapping: nothing in the pipeline imports this package. :func:`make_field` renders a
top-down vegetable field of any size, bands and dtype strip by strip (:mod:`.fields`, with
:mod:`.plants`, :mod:`.render` and :mod:`.noise`); :mod:`.samples` holds the recipes of the
files in ``sample_tiles/`` and ``python -m agriseg.sampledata DIR`` (``make samples``) writes
them, byte for byte.
"""

from agriseg.sampledata.fields import FieldLayout, make_field, make_label_polygons
from agriseg.sampledata.samples import SAMPLES, make_sample_tiles

__all__ = ["FieldLayout", "SAMPLES", "make_field", "make_label_polygons", "make_sample_tiles"]
