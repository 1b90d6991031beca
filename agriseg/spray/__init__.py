"""Spot-spray prescriptions from weed maps: a grid of spray cells with a rate each, written as
a zipped Shapefile, ISO 11783-10 task data or a GeoPackage, with a report of areas and savings.

:func:`prescribe` is the one entry point (``agriseg prescribe`` on the command line); the
modules are its steps: ``source`` (the weed map and boundary), ``grid`` (cells), ``cover`` (weed
share per cell), ``rates`` (threshold, buffer, headland), ``writers``/``isoxml`` (outputs).
"""

from agriseg.spray.job import FORMATS, PrescriptionResult, prescribe

__all__ = ["FORMATS", "PrescriptionResult", "prescribe"]
