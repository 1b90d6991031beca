"""The committed sample tiles in ``sample_tiles/``, and the command that regenerates them.

The samples are small synthetic fields (see :mod:`agriseg.sampledata.fields`) that cover the cases
the pipeline must handle: plain RGB uint8, four-band uint16 reflectance with a ragged nodata
corner, and a size that is not a multiple of 32. They are made by code, not stored by hand, so
anyone can check that the files match their recipe::

    python -m agriseg.sampledata sample_tiles/
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from agriseg.errors import OutputError
from agriseg.sampledata.fields import FieldLayout, make_field, make_label_polygons

SAMPLES: dict[str, dict] = {
    "field_rgb": {
        "width": 1024, "height": 768, "bands": ("red", "green", "blue"), "dtype": "uint8",
        "seed": 1, "pixel_size_m": 0.01, "crs": "EPSG:32634", "origin": (500000.0, 4650000.0),
        "layout": FieldLayout(row_spacing_m=0.45, row_angle_deg=8.0),
    },
    "field_rgbn": {
        "width": 512, "height": 480, "bands": ("red", "green", "blue", "nir"),
        "dtype": "uint16", "seed": 2, "pixel_size_m": 0.01, "crs": "EPSG:32634",
        "origin": (500020.0, 4650000.0), "nodata": 0, "nodata_fraction": 0.15,
        "layout": FieldLayout(row_spacing_m=0.5, row_angle_deg=-28.0, weeds_per_m2=14.0),
    },
    "field_small": {
        "width": 300, "height": 250, "bands": ("red", "green", "blue"), "dtype": "uint8",
        "seed": 3, "pixel_size_m": 0.01, "crs": "EPSG:32634", "origin": (500040.0, 4650000.0),
        "blocksize": 128, "layout": FieldLayout(row_spacing_m=0.4, row_angle_deg=62.0),
    },
}
"""Recipe of each sample: keyword arguments of :func:`make_field`, keyed by file stem."""


def make_sample_tiles(out_dir: str | os.PathLike) -> list[Path]:
    """Write every sample (image, ``_labels.tif`` and ``_labels.gpkg``) into ``out_dir``.

    Existing files are replaced; each appears whole or not at all. Returns the written paths.
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise OutputError(f"{out}: folder does not exist; create it first")
    written = []
    for stem, recipe in SAMPLES.items():
        image, labels, polygons = (out / f"{stem}.tif", out / f"{stem}_labels.tif",
                                   out / f"{stem}_labels.gpkg")
        make_field(image, label_path=labels, **recipe)
        make_label_polygons(labels, polygons)
        written += [image, labels, polygons]
    return written


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: ``python -m agriseg.sampledata OUT_DIR``."""
    parser = argparse.ArgumentParser(prog="python -m agriseg.sampledata",
                                     description="Regenerate the agriseg sample tiles.")
    parser.add_argument("out_dir", help="folder to write the samples into (must exist)")
    for path in make_sample_tiles(parser.parse_args(argv).out_dir):
        print(path)


if __name__ == "__main__":
    main()
