"""Building blocks of agriseg's own architectures: multiscale context, attention and boundary
modules, one per file, each citing its paper at the top.

They follow timm's vocabulary (``in_channels``, ``out_channels``, ``norm_layer``,
``act_layer``) and are pure torch: nothing here reads files. Architectures that combine them
with segmentation-models-pytorch encoders are in :mod:`agriseg.models.archs`.
"""

from agriseg.models.modules.aspp import ASPP
from agriseg.models.modules.bga import BilateralGuidedAggregation
from agriseg.models.modules.cca import ChannelCrossAttention
from agriseg.models.modules.cct import ChannelCrossTransformer
from agriseg.models.modules.dense_aspp import DenseASPP
from agriseg.models.modules.fam import FlowAlignment
from agriseg.models.modules.gcn import BoundaryRefinement, GCNBlock
from agriseg.models.modules.point_rend import PointHead
from agriseg.models.modules.ppm import PPM
from agriseg.models.modules.stdc import STDCModule, STDCNet, detail_target

__all__ = ["ASPP", "PPM", "BilateralGuidedAggregation", "BoundaryRefinement",
           "ChannelCrossAttention", "ChannelCrossTransformer", "DenseASPP", "FlowAlignment",
           "GCNBlock", "PointHead", "STDCModule", "STDCNet", "detail_target"]
