"""The monocular encoder of the study: ResNet-18 on the left image only.

This is the Occupancy Networks single-view encoder: ImageNet normalisation, a ResNet-18 up to its
global average pool, and a linear map to the code. It accepts the right image so every encoder has
the same signature, and ignores it: the comparison with the stereo encoder is exactly "what does the
second view add".
"""

from __future__ import annotations

from typing import Mapping, Optional

from torch import Tensor, nn

from .resnet import ImageNetNormalize, ResNet18, load_torchvision_resnet18


class MonoEncoder(nn.Module):
    """``left (B, 3, H, W)`` in [0, 1] -> code ``(B, code_dim)``."""

    def __init__(self, code_dim: int = 512) -> None:
        super().__init__()
        self.normalize = ImageNetNormalize()
        self.backbone = ResNet18(num_classes=None)
        self.fc = nn.Linear(self.backbone.out_channels, code_dim)

    def forward(self, left: Tensor, right: Optional[Tensor] = None, cameras: object = None) -> Tensor:
        """The code of the left image; like the study's model it ignores the cameras."""
        return self.fc(self.backbone(self.normalize(left)))

    def load_resnet18_weights(self, state_dict: Mapping[str, Tensor]) -> None:
        """Start the backbone from torchvision-format ImageNet weights (its ``fc`` is not used)."""
        load_torchvision_resnet18(self.backbone, state_dict)
