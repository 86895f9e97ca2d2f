"""The occupancy network: an image encoder and a point decoder joined by a code.

``encode`` runs once per stereo pair, ``decode`` as often as there are points to ask about (mesh
extraction queries hundreds of thousands of points against one code), so the two are separate
methods; ``forward`` is the training path that does both.
"""

from __future__ import annotations

from typing import Mapping

from torch import Tensor, nn

from ..errors import UserError


class OccupancyNetwork(nn.Module):
    """``encoder(left, right) -> code``; ``decoder(points, code) -> logits``.

    Images are float ``(B, 3, H, W)`` in [0, 1] (normalisation is the encoder's job); points are
    ``(B, N, 3)`` in the rig frame; logits are ``(B, N)`` (occupied where sigmoid >= threshold).
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, left: Tensor, right: Tensor) -> Tensor:
        if left.dim() != 4 or left.shape[1] != 3:
            raise UserError(f"left image batch must be (B, 3, H, W), got {tuple(left.shape)}")
        if left.shape != right.shape:
            raise UserError(
                f"left and right images differ in size: {tuple(left.shape[-2:])} vs {tuple(right.shape[-2:])}"
            )
        return self.encoder(left, right)

    def decode(self, points: Tensor, code: Tensor) -> Tensor:
        if points.dim() != 3 or points.shape[-1] != 3:
            raise ValueError(f"points must be (B, N, 3), got {tuple(points.shape)}")
        return self.decoder(points, code)

    def forward(self, left: Tensor, right: Tensor, points: Tensor) -> Tensor:
        return self.decode(points, self.encode(left, right))

    def load_resnet18_weights(self, state_dict: Mapping[str, Tensor]) -> None:
        """Initialise the encoder's ResNet-18 from a torchvision-format ImageNet state dict.

        The caller reads the file (``torch.load(path, weights_only=True)``); models never touch files.
        """
        loader = getattr(self.encoder, "load_resnet18_weights", None)
        if loader is None:
            raise UserError(f"{type(self.encoder).__name__} has no ResNet-18 to load pretrained weights into")
        loader(state_dict)
