"""The occupancy network: an image encoder and a point decoder joined by a conditioning.

One API for every kind of model. ``encode(left, right, cameras)`` runs once per stereo pair and
returns whatever conditions the decoder: a code tensor (the study's models, which ignore the
cameras), or feature maps and a volume with the cameras that place them (``rig_volume.py``).
``decode(points, conditioning)`` runs as often as there are points to ask about (mesh extraction
queries hundreds of thousands of points against one encoding), so the two are separate methods;
``forward`` is the training path that does both. Cameras are a :class:`~.cameras.Cameras` record.
"""

from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor, nn

from .cameras import Cameras

from ..errors import UserError


class OccupancyNetwork(nn.Module):
    """``encoder(left, right, cameras) -> conditioning``; ``decoder(points, conditioning) -> logits``.

    Images are float ``(B, 3, H, W)`` in [0, 1] (normalisation is the encoder's job); points are
    ``(B, N, 3)`` in the rig frame; logits are ``(B, N)`` (occupied where sigmoid >= threshold).
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, left: Tensor, right: Tensor, cameras: Cameras | None = None) -> Any:
        if left.dim() != 4 or left.shape[1] != 3:
            raise UserError(f"left image batch must be (B, 3, H, W), got {tuple(left.shape)}")
        if left.shape != right.shape:
            raise UserError(
                f"left and right images differ in size: {tuple(left.shape[-2:])} vs {tuple(right.shape[-2:])}"
            )
        return self.encoder(left, right, cameras)

    def set_axis_copies(self, copies: int) -> None:
        """How many turned and mirrored copies of each image the encoder's axis estimator averages over
        when the network evaluates (``eval.axis_copies``; training always shows it one); a model
        without an estimator has nothing to set."""
        if getattr(self.encoder, "axis_estimator", None) is not None:
            self.encoder.axis_copies = copies

    @property
    def trains_well_in_bf16(self) -> bool:
        """Whether the encoder declares it trains as well under bf16 autocast as in fp32 (measured per
        model: docs/training.md, "Precision"); ``train.precision=auto`` then uses bf16 on CPUs that
        compute it natively."""
        return bool(getattr(self.encoder, "trains_well_in_bf16", False))

    @property
    def predicts_distance(self) -> bool:
        """Whether the decoder also gives each point's signed distance (``with_distance=True``)."""
        return bool(getattr(self.decoder, "predicts_distance", False))

    def decode(self, points: Tensor, conditioning: Any, with_distance: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """``(B, N)`` logits; with ``with_distance``, ``(logits, signed distances)``."""
        if points.dim() != 3 or points.shape[-1] != 3:
            raise ValueError(f"points must be (B, N, 3), got {tuple(points.shape)}")
        if not with_distance:
            return self.decoder(points, conditioning)
        if not self.predicts_distance:
            raise UserError(f"{type(self.decoder).__name__} predicts no signed distance (model.distance_head=true, rig models)")
        return self.decoder(points, conditioning, with_distance=True)

    def forward(
        self, left: Tensor, right: Tensor, points: Tensor, cameras: Cameras | None = None, with_distance: bool = False
    ) -> Any:
        """Logits (``with_distance``: with the distances, as :meth:`decode`)."""
        return self.decode(points, self.encode(left, right, cameras), with_distance)

    def load_axis_estimator(self, state_dict: Mapping[str, Tensor]) -> None:
        """Load a trained axis estimator (``training/axis.py``) into an encoder built with ``align_axis``.

        The caller reads the file; models never touch files.
        """
        estimator = getattr(self.encoder, "axis_estimator", None)
        if estimator is None:
            raise UserError(f"{type(self.encoder).__name__} has no axis estimator (model.align_axis=true, rig models)")
        has_handle = any(key.startswith("handle_head.") for key in state_dict)
        if estimator.finds_handle and not has_handle:
            raise UserError("model.align_handle needs an axis estimator that finds the handle: train one with "
                            "data.handle_axis set (x for the procedural shapes)")
        if not estimator.finds_handle:  # a model along the axis alone uses the axis of one that finds both
            state_dict = {k: v for k, v in state_dict.items() if not k.startswith("handle_head.")}
        estimator.load_state_dict(state_dict)

    def load_resnet18_weights(self, state_dict: Mapping[str, Tensor]) -> None:
        """Initialise the encoder's ResNet-18 from a torchvision-format ImageNet state dict.

        The caller reads the file (``torch.load(path, weights_only=True)``); models never touch files.
        """
        loader = getattr(self.encoder, "load_resnet18_weights", None)
        if loader is None:
            raise UserError(f"{type(self.encoder).__name__} has no ResNet-18 to load pretrained weights into")
        loader(state_dict)
