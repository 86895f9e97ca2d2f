"""Process group, device and precision: the few places where one GPU, many GPUs and a CPU differ.

``torchrun`` (``python -m torch.distributed.run``) sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``;
when they are present :func:`init_distributed` joins the process group (NCCL on CUDA, gloo on CPU) and
every process trains a replica on its share of each batch. Without them training is one plain process.
Only rank 0 logs, validates and writes files; the others wait at :func:`barrier`.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import UserError

# Validation and checkpointing on rank 0 can take a while on a big val split; the others wait this long.
BARRIER_TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: its rank, the world size, and the device it trains on."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    owns_group: bool = False  # this process group was created here, so it is destroyed here too

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise UserError(f"environment variable {name} must be an integer (got {value!r})") from None


def init_distributed() -> DistContext:
    """Join the torchrun process group if there is one; pick the device (CUDA when available)."""
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    cuda = torch.cuda.is_available()
    if cuda:
        if local_rank >= torch.cuda.device_count():
            raise UserError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA devices: "
                "use --nproc_per_node <= the number of GPUs"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    owns_group = False
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if cuda else "gloo"
        dist.init_process_group(backend=backend, timeout=BARRIER_TIMEOUT)
        owns_group = True
    return DistContext(rank, local_rank, world_size, device, owns_group)


def shutdown(ctx: DistContext) -> None:
    """Leave the process group if :func:`init_distributed` created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (a no-op in a single process)."""
    if ctx.distributed:
        dist.barrier()


def mean_over_ranks(ctx: DistContext, value: float) -> float:
    """The average of a scalar over all ranks (the value itself in a single process)."""
    if not ctx.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return float(t.item()) / ctx.world_size


def local_batch_size(global_batch: int, world_size: int) -> int:
    """Each rank's share of ``train.batch_size``, which is the global batch over all ranks."""
    if global_batch % world_size:
        raise UserError(
            f"train.batch_size {global_batch} must be divisible by the number of processes {world_size} "
            "(it is the global batch, split evenly across ranks)"
        )
    return global_batch // world_size


def cpu_computes_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX), so bf16 autocast is faster there.

    Without those instructions oneDNN emulates bf16 and a step is slower than in fp32. torch exposes
    the check only as a private helper; if it goes away, the answer is no (fp32, never slower).
    """
    checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(check is not None and check() for check in checks)


def autocast_dtype(precision: str, device: torch.device, bf16_on_cpu: bool = False) -> torch.dtype | None:
    """The autocast dtype for ``train.precision`` (and ``eval.precision``, which follows the same rule).

    ``auto`` is bf16 on CUDA GPUs that support it. On the CPU it is bf16 only for a model measured to
    train as well in bf16 (``bf16_on_cpu``: the camera-aware models, the same validation IoU as in
    fp32 at 1.3-1.4x the speed) on a CPU that computes bf16 natively; fp32 otherwise (the study's
    baselines keep fp32: docs/training.md, "Precision").
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise UserError("precision bf16 (train.precision or eval.precision) but this GPU does not support bfloat16; use fp32")
        return torch.bfloat16
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
        return torch.bfloat16 if bf16_on_cpu and device.type == "cpu" and cpu_computes_bf16() else None
    raise UserError(f"precision must be auto, fp32 or bf16 (got {precision!r})")


def autocast(device: torch.device, dtype: torch.dtype | None):
    """``torch.autocast`` for ``dtype``, or a no-op context for full precision."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
