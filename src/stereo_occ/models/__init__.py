"""Occupancy networks: image encoders (mono, stereo), the conditional-BN decoder, the registry.

Models never read files; pretrained ResNet-18 weights arrive as a state dict
(:meth:`OccupancyNetwork.load_resnet18_weights`).
"""

from .network import OccupancyNetwork
from .registry import MODELS, ModelBuilder, build_model
from .resnet import load_torchvision_resnet18

__all__ = ["MODELS", "ModelBuilder", "OccupancyNetwork", "build_model", "load_torchvision_resnet18"]
