"""agriseg's own architectures: a segmentation-models-pytorch encoder (features at strides 2 to
32, through ``smp.encoders.get_encoder``) and decoders built from :mod:`agriseg.models.modules`.
One architecture per file; each is registered by name in :mod:`agriseg.models.registry`."""
