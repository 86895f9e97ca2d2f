"""Model names -> builders. A new model is one file with its builder plus one line here.

A builder takes the model config and the rig config (the stereo encoder sizes its cost volume from
the rig geometry) and returns an untrained :class:`OccupancyNetwork`.
"""

from __future__ import annotations

from typing import Callable

from ..config import ModelConfig, RigConfig
from ..errors import UserError
from .decoder import OccupancyDecoder
from .mono import MonoEncoder
from .network import OccupancyNetwork
from .rig_volume import build_rig_mono, build_rig_stereo
from .stereo import StereoEncoder, stereo_shifts

ModelBuilder = Callable[[ModelConfig, RigConfig], OccupancyNetwork]


def _decoder(cfg: ModelConfig) -> OccupancyDecoder:
    return OccupancyDecoder(code_dim=cfg.code_dim, hidden_dim=cfg.hidden_dim, n_blocks=cfg.n_blocks)


def build_mono(cfg: ModelConfig, rig_cfg: RigConfig) -> OccupancyNetwork:
    """The study's single-view Occupancy Network (ResNet-18 on the left image)."""
    return OccupancyNetwork(MonoEncoder(cfg.code_dim), _decoder(cfg))


def build_stereo(cfg: ModelConfig, rig_cfg: RigConfig) -> OccupancyNetwork:
    """Cost-volume stereo encoder + the same decoder."""
    if cfg.feature_dim % cfg.correlation_groups:
        raise UserError(
            f"model.feature_dim ({cfg.feature_dim}) must be a multiple of "
            f"model.correlation_groups ({cfg.correlation_groups})"
        )
    encoder = StereoEncoder(
        code_dim=cfg.code_dim,
        feature_dim=cfg.feature_dim,
        max_shift=stereo_shifts(cfg.max_disparity, rig_cfg),
        groups=cfg.correlation_groups,
    )
    return OccupancyNetwork(encoder, _decoder(cfg))


MODELS: dict[str, ModelBuilder] = {
    "mono": build_mono,
    "stereo": build_stereo,
    "rig-stereo": build_rig_stereo,
    "rig-mono": build_rig_mono,
}


def build_model(model_cfg: ModelConfig, rig_cfg: RigConfig) -> OccupancyNetwork:
    """The untrained network named ``model_cfg.name``; :class:`UserError` for an unknown name."""
    builder = MODELS.get(model_cfg.name)
    if builder is None:
        raise UserError(f"unknown model {model_cfg.name!r} (known: {', '.join(sorted(MODELS))})")
    return builder(model_cfg, rig_cfg)
