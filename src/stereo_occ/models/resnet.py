"""A ResNet-18 whose ``state_dict`` keys match torchvision's, with optional dilation.

There is no torchvision here, but users have ImageNet weights in torchvision's format
(``resnet18-f37072fd.pth``). Naming every submodule exactly as torchvision does (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer2.0.downsample.0``, ..., ``fc``) lets :func:`load_torchvision_resnet18`
load such a file's state dict directly, into the full network or into a truncated one (the stereo
feature extractor keeps only the stem, ``layer1`` and ``layer2``).

Dilation follows torchvision's ``replace_stride_with_dilation``: a stage's stride becomes dilation, so
the feature map keeps its resolution while the receptive field still grows. torchvision's own
``BasicBlock`` refuses dilation; here the first block of a dilated stage uses the previous dilation in
its first convolution and the new one in its second, later blocks use the new one throughout. Dilation
changes no weight shapes, so ImageNet weights still load.

This module never reads files: the caller loads the weights (``torch.load(..., weights_only=True)``)
and passes the dict.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import torch
from torch import Tensor, nn

from ..errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

STAGE_WIDTHS = (64, 128, 256, 512)
BLOCKS_PER_STAGE = 2  # ResNet-18


class ImageNetNormalize(nn.Module):
    """Maps images in [0, 1] to ImageNet statistics, so pretrained weights see what they expect.

    The buffers are not persistent: they are constants, not learned state, and keeping them out of
    the state dict keeps checkpoints and torchvision state dicts interchangeable.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        return (images - self.mean) / self.std


def conv3x3(in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution that keeps the size (up to stride) for any dilation."""
    return nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock(nn.Module):
    """torchvision's ResNet-18/34 block (same attribute names), plus dilation."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        stride: int = 1,
        dilation: tuple[int, int] = (1, 1),
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch, stride, dilation[0])
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(out_ch, out_ch, 1, dilation[1])
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample: Optional[nn.Sequential] = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 with torchvision's parameter names.

    Args:
        num_classes: size of the final ``fc`` layer; ``None`` drops ``fc`` and :meth:`forward` returns
            the globally pooled 512-d features (what an encoder wants).
        stages: how many residual stages to build (1-4); fewer stages give a feature extractor that
            stops early (:meth:`forward_features`), and drop ``avgpool``/``fc``.
        replace_stride_with_dilation: for ``layer2``, ``layer3``, ``layer4``, as in torchvision.
    """

    def __init__(
        self,
        num_classes: Optional[int] = 1000,
        stages: int = 4,
        replace_stride_with_dilation: Sequence[bool] = (False, False, False),
    ) -> None:
        super().__init__()
        if not 1 <= stages <= 4:
            raise ValueError(f"ResNet18 has 1 to 4 stages, not {stages}")
        if len(replace_stride_with_dilation) != 3:
            raise ValueError("replace_stride_with_dilation needs 3 flags (layer2, layer3, layer4)")
        self.stages = stages
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)

        in_ch, dilation = 64, 1
        for index in range(stages):
            width = STAGE_WIDTHS[index]
            stride = 1 if index == 0 else 2
            previous = dilation
            if index > 0 and replace_stride_with_dilation[index - 1]:
                dilation *= stride
                stride = 1
            blocks = [BasicBlock(in_ch, width, stride, (previous, dilation))]
            blocks += [BasicBlock(width, width, 1, (dilation, dilation)) for _ in range(BLOCKS_PER_STAGE - 1)]
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
            in_ch = width
        self.out_channels = in_ch
        self.fc: Optional[nn.Linear] = None
        if stages == 4:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            if num_classes is not None:
                self.fc = nn.Linear(512, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's initialisation, so a network trained from scratch starts where theirs does.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """The last built stage's feature map (stride 4 after layer1, 8 after layer2, ...)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for index in range(self.stages):
            x = getattr(self, f"layer{index + 1}")(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        if self.stages != 4:
            raise RuntimeError("a truncated ResNet18 has no classifier; call forward_features")
        x = torch.flatten(self.avgpool(self.forward_features(x)), 1)
        return x if self.fc is None else self.fc(x)


def _torchvision_keys() -> dict[str, tuple[int, ...]]:
    """Every key of a full torchvision ResNet-18 state dict, with its shape."""
    return {k: tuple(v.shape) for k, v in ResNet18(num_classes=1000).state_dict().items()}


def load_torchvision_resnet18(module: ResNet18, state_dict: Mapping[str, Tensor]) -> None:
    """Load a torchvision-format ResNet-18 state dict into ``module`` (full or truncated).

    Every key ``module`` has must be in ``state_dict`` with the same shape (``num_batches_tracked`` may
    be absent: older torchvision files lack it). Keys of parts the module leaves out (``layer3``,
    ``fc``, ...) are skipped; keys that belong to no ResNet-18 mean the dict is something else, and
    raise :class:`UserError`. A ``module.`` prefix (from DataParallel/DDP) is removed.
    """
    if not isinstance(state_dict, Mapping) or not state_dict:
        raise UserError("pretrained weights: expected a non-empty ResNet-18 state dict")
    items = dict(state_dict)
    if all(k.startswith("module.") for k in items):
        items = {k[len("module."):]: v for k, v in items.items()}
    non_tensors = [k for k, v in items.items() if not isinstance(v, Tensor)]
    if non_tensors:
        raise UserError(f"pretrained weights: {non_tensors[0]!r} is not a tensor; not a ResNet-18 state dict")

    reference = _torchvision_keys()
    foreign = sorted(k for k in items if k not in reference)
    if foreign:
        raise UserError(
            f"pretrained weights are not a torchvision ResNet-18 state dict: unexpected keys "
            f"{', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}"
        )
    wanted = module.state_dict()
    missing = sorted(k for k in wanted if k not in items and not k.endswith("num_batches_tracked"))
    if missing:
        raise UserError(
            f"pretrained ResNet-18 state dict lacks {len(missing)} keys: "
            f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}"
        )
    for key, target in wanted.items():
        if key in items and tuple(items[key].shape) != tuple(target.shape):
            raise UserError(
                f"pretrained ResNet-18 key {key!r} has shape {tuple(items[key].shape)}, "
                f"expected {tuple(target.shape)}"
            )
    module.load_state_dict({k: items[k] for k in wanted if k in items}, strict=False)
