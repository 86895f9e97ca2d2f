"""Sizes, FLOPs and CPU training throughput of the occupancy networks, and where a step's time goes.

Prints, measured in this one run:
  * parameters (encoder / decoder / total) and forward FLOPs per sample (one pair + ``--points``
    points), counted by torch.utils.flop_counter (convolutions and matrix products; elementwise
    work such as the correlation's products and the feature comparisons is not counted);
  * the machine's fp32 matmul peak (a large torch.matmul), and for each model the training samples per
    second (forward + backward + Adam) and the share of that peak a training step reaches; the
    samples/s of every model after the first as a ratio to the first's;
  * with --profile, where a training step's time goes (torch.profiler, top operators, then top
    operators by input shape, which names the layer, and the share of the step in encoding,
    decoding, backward and Adam; with --bf16 the profiled step runs under bf16 autocast);
  * with --channels-last, each model's step with contiguous (NCHW) and with channels-last (NHWC) 2D
    feature maps, timed in turn, and the ratio of the two (the camera-aware models use channels-last,
    the study's models contiguous);
  * with --bf16, each model's step in fp32 and under bf16 autocast, timed in turn, and the ratio of the
    two (``train.precision=auto`` trains in bf16 on CPUs with AVX512-BF16 or AMX); with both flags,
    the two layouts under bf16 autocast.

Every registered model works: the camera-aware ones (rig-stereo, rig-mono) get the cameras of the
config's rig. Model sizes are ``ModelConfig`` defaults, or with ``--config`` that config's model
section and the model's ``experiment.overrides`` (what the experiment trains). The CPU may be shared
with other work: ratios within one run are what to read.

    python bench/bench_models.py [--models mono stereo rig-stereo rig-mono] [--config configs/quick.yaml]
        [--batch N] [--points N] [--size N] (defaults: each model's in the config, else 16, 2048, 128) [--steps 2] [--profile] [--channels-last] [--bf16] [--fused-adam]

The rig-stereo step as the quick config trains it, against mono (its profile is docs/training.md's):

    python bench/bench_models.py --config configs/quick.yaml --models mono rig-stereo --points 1024 --fused-adam --profile
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile, record_function
from torch.utils.flop_counter import FlopCounterMode

from stereo_occ.config import ModelConfig, RigConfig, load_config, model_config
from stereo_occ.data.rig import StereoRig
from stereo_occ.models import MODELS, build_model
from stereo_occ.models.cameras import Cameras


def count_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 GFLOP/s of an n x n matmul: the ceiling a training step is compared with."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def make_batch(batch: int, points: int, size: int, cameras: Cameras, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(batch, points, 3, generator=g) * 1.1 - 0.55
    return {
        "left": torch.rand(batch, 3, size, size, generator=g),
        "right": torch.rand(batch, 3, size, size, generator=g),
        "points": pts,
        "occ": (pts.norm(dim=-1) < 0.35).float(),
        "cameras": cameras.expand(batch),
    }


def rig_cameras(rig_cfg: RigConfig, batch: int) -> Cameras:
    """The config's calibrated rig for every pair of a batch (the study's models ignore it)."""
    return Cameras.from_rig(StereoRig.from_config(rig_cfg)).expand(batch)


def default_layout(model: torch.nn.Module) -> bool:
    """True where the model works in channels-last by default (the camera-aware models' feature network)."""
    return any(getattr(m, "memory_format", None) == torch.channels_last for m in model.modules())


def set_layout(model: torch.nn.Module, channels_last: bool) -> None:
    """Channels-last or contiguous 2D feature maps: the camera-aware models' feature network takes the
    layout as its ``memory_format``; the study's models get their 2D convolution weights in it (and
    their input, in :func:`train_step`)."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    for module in model.modules():
        if hasattr(module, "memory_format"):
            module.memory_format = layout
        elif isinstance(module, torch.nn.Conv2d):  # Conv3d weights are 5D
            module.to(memory_format=layout)


def train_step(model, optimizer, batch, channels_last: bool) -> None:
    left, right = batch["left"], batch["right"]
    if channels_last:
        left, right = left.contiguous(memory_format=torch.channels_last), right.contiguous(memory_format=torch.channels_last)
    optimizer.zero_grad(set_to_none=True)
    with record_function("encode"):
        code = model.encode(left, right, batch["cameras"])
    with record_function("decode"):
        logits = model.decode(batch["points"], code)
    loss = F.binary_cross_entropy_with_logits(logits, batch["occ"])
    with record_function("backward"):
        loss.backward()
    with record_function("adam"):
        optimizer.step()


def time_in_turn(steps: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each step function, run in turn step after step (after one warm-up of each),
    so that a change in the machine's load hits every variant alike."""
    for step in steps.values():
        step()
    times: dict[str, list[float]] = {label: [] for label in steps}
    for _ in range(repeats):
        for label, step in steps.items():
            start = time.perf_counter()
            step()
            times[label].append(time.perf_counter() - start)
    return {label: statistics.median(t) for label, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=None, help="samples per step (default: each model's train.batch_size in the config, with its overrides; else 16)")
    parser.add_argument("--points", type=int, default=None, help="points per sample (default: each model's data.points_per_sample in the config, with its overrides; else 2048)")
    parser.add_argument("--size", type=int, default=None, help="image size (default: the config's rig, else 128)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per model (after one warm-up)")
    parser.add_argument("--models", nargs="+", default=["mono", "stereo"], choices=sorted(MODELS))
    parser.add_argument("--config", default=None, help="model sizes from this config (and its per-model overrides)")
    parser.add_argument("--channels-last", action="store_true", help="time each model's step with contiguous and with channels_last 2D maps, in turn, and print the ratio (in fp32; under bf16 autocast with --bf16)")
    parser.add_argument("--bf16", action="store_true", help="time each model's step in fp32 and under bf16 autocast, in turn, and print the ratio (train.precision=auto picks bf16 on CPUs that compute it natively); with --channels-last, compare the layouts under bf16 instead")
    parser.add_argument("--fused-adam", action="store_true", help="use Adam(fused=True)")
    parser.add_argument("--profile", action="store_true", help="profile one training step per model")
    args = parser.parse_args()

    torch.manual_seed(0)
    base = load_config(args.config) if args.config else None
    rig = base.dataset.rig if base is not None else RigConfig()
    if args.size is not None:
        rig = replace(rig, image_size=args.size)
    args.size = rig.image_size
    cameras = rig_cameras(rig, 1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; CPU shared with other work: indicative numbers")
    peak = matmul_peak()
    print(f"matmul peak (fp32, 2048^3): {peak:.1f} GFLOP/s\n")

    rows = []
    for name in args.models:
        named = model_config(base, name) if base is not None else None
        model = build_model(named.model if named is not None else ModelConfig(name=name), rig)
        # what the experiment trains this model with, unless the command line fixes it for all
        batch_size = args.batch or (named.train.batch_size if named is not None else 16)
        points = args.points or (named.data.points_per_sample if named is not None else 2048)
        enc, dec = count_params(model.encoder), count_params(model.decoder)
        one = make_batch(1, points, args.size, cameras)
        model.eval()
        with torch.no_grad():
            enc_flops = count_flops(lambda: model.encode(one["left"], one["right"], one["cameras"]))
            code = model.encode(one["left"], one["right"], one["cameras"])
            dec_flops = count_flops(lambda: model.decode(one["points"], code))
        model.train()
        batch = make_batch(batch_size, points, args.size, cameras)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=args.fused_adam or None)
        step_flops = count_flops(lambda: train_step(model, optimizer, batch, False))

        def report(label: str, seconds: float) -> None:
            achieved = step_flops / seconds / 1e9
            rows.append((label, batch_size / seconds, achieved))
            print(
                f"[{label}] {seconds:.2f} s per step = {batch_size / seconds:.2f} samples/s; "
                f"{achieved:.1f} GFLOP/s = {achieved / peak:.0%} of the matmul peak"
            )

        print(
            f"[{name}] params: encoder {enc / 1e6:.2f} M, decoder {dec / 1e6:.2f} M, total {(enc + dec) / 1e6:.2f} M; "
            f"batch {batch_size} x {points} points"
        )
        print(
            f"[{name}] forward GFLOP per sample: encoder {enc_flops / 1e9:.2f} + decoder ({points} points) "
            f"{dec_flops / 1e9:.2f} = {(enc_flops + dec_flops) / 1e9:.2f}; training step "
            f"{step_flops / batch_size / 1e9:.2f} GFLOP per sample"
        )
        if args.channels_last or args.bf16:
            default = default_layout(model)

            def variant(channels_last: bool, bf16: bool):
                def step() -> None:
                    set_layout(model, channels_last)
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        train_step(model, optimizer, batch, channels_last)
                return step

            if args.channels_last:  # the two layouts, in fp32 or (--bf16) under bf16 autocast
                a, b = ("contiguous", variant(False, args.bf16)), ("channels_last", variant(True, args.bf16))
            else:  # each model's own layout, fp32 against bf16 autocast (what train.precision chooses)
                a, b = ("fp32", variant(default, False)), ("bf16", variant(default, True))
            times = time_in_turn(dict([a, b]), args.steps)
            set_layout(model, default)
            for label, seconds in times.items():
                report(f"{name} {label}", seconds)
            print(f"[{name}] {b[0]} step time / {a[0]}: {times[b[0]] / times[a[0]]:.2f}")
        else:
            train_step(model, optimizer, batch, False)  # warm-up
            start = time.perf_counter()
            for _ in range(args.steps):
                train_step(model, optimizer, batch, False)
            report(name, (time.perf_counter() - start) / args.steps)
        if args.profile:  # one step, under bf16 autocast with --bf16
            with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                    train_step(model, optimizer, batch, False)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
            # by layer: the operators with their input shapes (a convolution's shapes name its layer)
            print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=8))
            phases = {e.key: e.cpu_time_total for e in prof.key_averages() if e.key in ("encode", "decode", "backward", "adam")}
            total = sum(phases.values())
            print(f"[{name}] step time by phase: " + ", ".join(f"{k} {v / total:.0%}" for k, v in phases.items()))
        print()

    if len(rows) > 1:
        first = rows[0]
        for label, rate, _ in rows[1:]:
            print(f"{label} trains at {rate / first[1]:.2f}x the samples/s of {first[0]}")


if __name__ == "__main__":
    main()
