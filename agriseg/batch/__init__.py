"""Scheduled batch mapping: every raster of folders, globs or manifests mapped unattended.

:func:`~agriseg.batch.run.run_batch` (``agriseg batch``) maps each raster into its own folder
under an output root with :func:`~agriseg.jobs.fieldmap.map_field`, skips those already done
(completion records with input, model and parameter fingerprints), isolates failures in
worker processes (:mod:`agriseg.batch.local`) or runs on Dask (:mod:`agriseg.batch.cluster`),
and reports each run (:mod:`agriseg.batch.report`).
"""
