"""agriseg: map crops and weeds in drone and field imagery.

Streaming, seam-free semantic segmentation of GeoTIFF orthomosaics with PyTorch
(segmentation-models-pytorch), from raster to class mask to polygons.
"""

__version__ = "0.1.0"
