"""The resumable distributed sampler, device/precision choice, and a real 2-process DDP run on CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter

import numpy as np
import pytest
import torch

from stereo_occ.config import load_config
from stereo_occ.errors import UserError
from stereo_occ.training.distributed import autocast_dtype, cpu_computes_bf16, init_distributed, local_batch_size
from stereo_occ.training.sampler import EpochKeyed, EpochStream, ResumableDistributedSampler, category_weights


def test_ranks_partition_a_padded_permutation():
    n, world = 10, 3
    shares = [list(ResumableDistributedSampler(n, num_replicas=world, rank=r, seed=5)) for r in range(world)]
    assert all(len(s) == 4 for s in shares)  # ceil(10 / 3), padded
    counts = Counter(i for s in shares for i in s)
    assert set(counts) == set(range(n)) and sum(counts.values()) == 12
    dropped = [list(ResumableDistributedSampler(n, num_replicas=world, rank=r, drop_last=True)) for r in range(world)]
    assert all(len(s) == 3 for s in dropped) and len(set(sum(dropped, []))) == 9


def test_order_depends_only_on_seed_and_epoch():
    a = ResumableDistributedSampler(50, seed=1)
    b = ResumableDistributedSampler(50, seed=1)
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b) and sorted(a) == list(range(50))
    b.set_epoch(4)
    assert list(a) != list(b)
    assert list(ResumableDistributedSampler(50, seed=2)) != list(ResumableDistributedSampler(50, seed=1))


def test_start_offset_continues_the_same_epoch():
    s = ResumableDistributedSampler(20, num_replicas=2, rank=1, seed=0)
    s.set_epoch(2)
    full = list(s)
    s.set_epoch(2, start=4)
    assert list(s) == full[4:] and len(s) == len(full) - 4


def test_stream_spans_epochs_and_resumes_at_any_position():
    s = ResumableDistributedSampler(7, seed=3)
    whole = list(EpochStream(s, start=0, length=30))
    assert [e for e, _ in whole] == [p // 7 for p in range(30)]
    assert sorted(i for e, i in whole if e == 1) == list(range(7))
    for cut in (0, 5, 7, 13):
        head = list(EpochStream(s, start=0, length=cut))
        tail = list(EpochStream(s, start=cut, length=30 - cut))
        assert head + tail == whole


# 10 mug items, 30 bowl items, 20 bottle items: unequal on purpose
ITEMS = ["mug"] * 10 + ["bowl"] * 30 + ["bottle"] * 20


def _drawn_categories(weights, epochs: int, **kw) -> Counter:
    sampler = ResumableDistributedSampler(len(ITEMS), seed=7, weights=weights, **kw)
    counts: Counter = Counter()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        counts.update(ITEMS[i] for i in sampler)
    return counts


def test_each_category_gets_its_share_whatever_its_number_of_items():
    weights = category_weights(ITEMS, {"mug": 0.4, "bowl": 0.4, "bottle": 0.2})
    counts = _drawn_categories(weights, epochs=200)  # 12,000 draws: a share's standard error is under 0.005
    total = sum(counts.values())
    assert total == 200 * len(ITEMS)  # an epoch is as long as without shares
    assert counts["mug"] / total == pytest.approx(0.4, abs=0.02)
    assert counts["bowl"] / total == pytest.approx(0.4, abs=0.02)
    assert counts["bottle"] / total == pytest.approx(0.2, abs=0.02)
    # without shares every item once per epoch: the categories in proportion to their items
    plain = _drawn_categories(None, epochs=3)
    assert plain == Counter({"mug": 30, "bowl": 90, "bottle": 60})


def test_shares_are_relative_weights():
    a = category_weights(ITEMS, {"mug": 2, "bowl": 2, "bottle": 1})
    b = category_weights(ITEMS, {"mug": 0.4, "bowl": 0.4, "bottle": 0.2})
    np.testing.assert_allclose(a / a.sum(), b / b.sum())
    assert category_weights(ITEMS, {}) is None


def test_a_weighted_order_is_a_function_of_seed_and_epoch_and_resumes_mid_epoch():
    weights = category_weights(ITEMS, {"mug": 1, "bowl": 1, "bottle": 1})
    sampler = ResumableDistributedSampler(len(ITEMS), seed=3, weights=weights)
    whole = list(EpochStream(sampler, start=0, length=150))
    assert whole == list(EpochStream(ResumableDistributedSampler(len(ITEMS), seed=3, weights=weights), 0, 150))
    for cut in (0, 17, 60, 121):
        assert list(EpochStream(sampler, 0, cut)) + list(EpochStream(sampler, cut, 150 - cut)) == whole
    other = ResumableDistributedSampler(len(ITEMS), seed=4, weights=weights)
    assert list(EpochStream(other, 0, 150)) != whole
    # ranks share the epoch's draws
    ranks = [ResumableDistributedSampler(len(ITEMS), num_replicas=2, rank=r, seed=3, weights=weights) for r in (0, 1)]
    first = [i for _, i in whole[: len(ITEMS)]]
    assert list(ranks[0]) == first[0::2] and list(ranks[1]) == first[1::2]


def test_bad_shares_are_clear_errors():
    with pytest.raises(UserError, match="also has bottle"):
        category_weights(ITEMS, {"mug": 1, "bowl": 1})
    with pytest.raises(ValueError, match="non-negative"):
        ResumableDistributedSampler(3, weights=np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="3 finite"):
        ResumableDistributedSampler(3, weights=np.ones(4))
    with pytest.raises(UserError, match="unknown category 'cup'"):
        load_config(None, ["data.category_shares.cup=1"])
    with pytest.raises(UserError, match="bowl must be positive"):
        load_config(None, ["data.category_shares.bowl=0"])


class _EpochEcho(torch.utils.data.Dataset):
    def __init__(self):
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return (self.epoch, i)


def test_epoch_keyed_items_carry_their_epoch_through_subsets():
    ds = EpochKeyed(torch.utils.data.Subset(_EpochEcho(), range(3)))
    assert ds[(2, 1)] == (2, 1) and ds[(5, 0)] == (5, 0)


def test_global_batch_is_split_across_ranks():
    assert local_batch_size(64, 4) == 16
    with pytest.raises(UserError, match="batch_size"):
        local_batch_size(10, 4)


def test_precision_choice_on_this_machine():
    cpu = torch.device("cpu")
    assert autocast_dtype("auto", cpu) is None  # the study's models: fp32 on the CPU unless bf16 is asked for
    # a model that trains as well in bf16: only where this CPU multiplies it natively (else it is emulated, slower)
    assert autocast_dtype("auto", cpu, bf16_on_cpu=True) is (torch.bfloat16 if cpu_computes_bf16() else None)
    assert autocast_dtype("fp32", cpu) is None
    assert autocast_dtype("bf16", cpu) is torch.bfloat16
    ctx = init_distributed()
    assert ctx.world_size == 1 and ctx.is_main and not ctx.distributed
    assert ctx.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.slow
def test_two_process_torchrun_keeps_replicas_identical(tiny_dataset, tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT)
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(script), str(tiny_dataset), str(out), str(tmp_path),
    ]
    # Own process group, so a hung run is killed with all its workers, not just the launcher.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail("torchrun did not finish in 240 s: " + stderr[-2000:])
    assert proc.returncode == 0, stdout[-3000:] + stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert reports[0]["hash"] == reports[1]["hash"]  # DDP kept the replicas in lockstep
    assert reports[0]["world_size"] == reports[1]["world_size"] == 2
    assert reports[0]["local_batches"] == reports[1]["local_batches"] == [2] * 4  # global batch 4 over 2 ranks
    assert reports[0]["hash"] != reports[0]["initial_hash"]  # it did train
    summary = json.loads((out / "summary.json").read_text())
    assert summary["iterations"] == 4 and summary["world_size"] == 2
    assert (out / "model_last.pt").is_file() and (out / "model_best.pt").is_file()
    from stereo_occ.training.checkpoint import load_model

    model, _ = load_model(out / "model_last.pt")
    assert _parameter_hash(model) == reports[0]["hash"]  # rank 0 saved the trained replica


def _parameter_hash(model: torch.nn.Module) -> str:
    import hashlib

    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


DDP_SCRIPT = textwrap.dedent(
    '''
    import hashlib, json, os, sys
    import torch
    from stereo_occ.config import load_config
    from stereo_occ.training import trainer

    torch.set_num_threads(1)
    dataset, out, report = sys.argv[1], sys.argv[2], sys.argv[3]

    def parameter_hash(model):
        h = hashlib.sha256()
        for name, p in sorted(model.named_parameters()):
            h.update(name.encode())
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    captured = {"local_batches": []}
    build = trainer._Run._build

    def spying_build(self, state):  # keep hold of this rank's model to hash it at the end
        build(self, state)
        captured["model"] = self.model
        captured["initial_hash"] = parameter_hash(self.model)
        forward = self.ddp.forward

        def counting_forward(left, right, points, cameras):
            captured["local_batches"].append(int(left.shape[0]))
            return forward(left, right, points, cameras)

        self.ddp.forward = counting_forward

    trainer._Run._build = spying_build
    cfg = load_config(None, [
        "model.name=mono", "model.code_dim=32", "model.hidden_dim=32", "model.n_blocks=1",
        "data.points_per_sample=128", "data.num_workers=0",
        "train.iterations=4", "train.batch_size=4", "train.val_every=2", "train.checkpoint_every=2",
        "train.log_every=1", "train.val_points=256", "train.lr=1e-3",
    ])
    trainer.train(cfg, dataset, out)
    rank = int(os.environ["RANK"])
    with open(os.path.join(report, f"rank{rank}.json"), "w") as f:
        json.dump({
            "hash": parameter_hash(captured["model"]),
            "initial_hash": captured["initial_hash"],
            "local_batches": captured["local_batches"],
            "world_size": int(os.environ["WORLD_SIZE"]),
        }, f)
    '''
)
