"""Data-parallel training: 2 gloo processes (torchrun) give the model of 1 process with the same
global batch. Tolerance (float64): max |w_2 - w_1| <= 1e-10.

The ranks add partial gradients in another order than one backward pass, so gradients agree to
rounding (~1e-16). Adam divides each step by sqrt(v) + eps (eps = 1e-8), which turns rounding
noise of gradient components that are zero up to rounding into weight differences of up to
~lr * 1e-8 per step; at lr = 1e-3 (used here) the measured difference after 12 steps is 4e-16,
at lr = 3e-2 it is ~2e-8 - rounding, not a bookkeeping error (that would show as ~lr).
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from tfpot.training import train_from_config
from tfpot.training.distributed import ShardedBatchSampler, free_port

TOL = 1e-10


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("n", [10, 12, 13])
def test_sharded_sampler_covers_each_global_batch_once(n, world):
    batch = 4
    per_rank = []
    for rank in range(world):
        s = ShardedBatchSampler(n, batch, rank, world, seed=5)
        s.set_epoch(3)
        per_rank.append(list(s))
    glob = ShardedBatchSampler(n, batch, 0, 1, seed=5)
    glob.set_epoch(3)
    expected = list(glob)
    assert all(len(p) == len(expected) for p in per_rank)
    for b, chunk in enumerate(expected):
        got = sorted(i for rank in range(world) for i in per_rank[rank][b])
        assert got == sorted(chunk)  # no structure padded, repeated or lost
    # the order depends on (seed, epoch) only; start= skips whole global batches
    s = ShardedBatchSampler(n, batch, 0, 1, seed=5)
    s.set_epoch(3, start=2)
    assert list(s) == expected[2:]
    s.set_epoch(4)
    assert list(s) != expected


def test_two_gloo_processes_match_one_process(tiny_config, tmp_path):
    # 22 training structures, global batch 4: the last batch has 2 (one per rank)
    common = dict(data={"path": "tfpot:demo", "split": {"train": 22, "val": 6, "test": 0},
                        "cutoff": 4.0},
                  optimizer={"lr": 1e-3},
                  training={"max_epochs": 2, "batch_size": 4, "checkpoint_every": 0})
    one = train_from_config(tiny_config(output_dir=str(tmp_path / "one"), **common), verbose=False)

    cfg = tiny_config(output_dir=str(tmp_path / "two"), **common)
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
           "-m", "tfpot", "train", str(path), "--quiet"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    two = tmp_path / "two"

    for name in ("final_model.pt", "best_model.pt"):
        a = torch.load(one / name, weights_only=True)["state_dict"]
        b = torch.load(two / name, weights_only=True)["state_dict"]
        worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].numel())
        print(f"{name}: max |w_2proc - w_1proc| = {worst:.3e}")
        assert worst <= TOL, f"{name}: max weight difference {worst:.3e} > {TOL:.0e}"
    # metrics are reduced over ranks: validation errors agree as well
    la = (one / "metrics.csv").read_text().splitlines()
    lb = (two / "metrics.csv").read_text().splitlines()
    assert la[0] == lb[0]
    head = la[0].split(",")
    for ra, rb in zip(la[1:], lb[1:]):
        for key, va, vb in zip(head, ra.split(","), rb.split(",")):
            if key.startswith(("val_", "train_")):
                assert np.isclose(float(va), float(vb), rtol=1e-9, atol=0), key
    # only rank 0 writes: one log, no stray files
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
