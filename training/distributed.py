"""Data-parallel training on one process or many (``torchrun``), and the batch sampler.

Launch::

    torchrun --nproc_per_node 4 -m tfpot train config.yaml

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
:func:`setup` joins the process group (``nccl`` on GPUs, one per local rank; ``gloo`` on CPUs).

How a step works on W ranks (what ``DistributedDataParallel`` does, with exact bookkeeping):

* :class:`ShardedBatchSampler` draws the epoch's order from ``(seed, epoch)`` alone - the same on
  every rank and on resume - cuts it into *global* batches of ``batch_size`` structures and gives
  rank r the r-th of W near-equal contiguous pieces of each. Unlike
  ``torch.utils.data.DistributedSampler`` nothing is padded with repeated structures, so the set
  of structures in every global batch is the same for any W.
* Each rank sums its loss terms and divides by the *global* counts (one ``all_reduce`` of three
  numbers), then :func:`all_reduce_gradients` **sums** the gradients (one flat ``all_reduce``).
  The result is the gradient of the whole batch, as on one process (up to float rounding).
* Every rank then takes the same optimiser step; weights never drift apart. Metrics are sums
  and counts reduced with ``all_reduce``; only rank 0 writes files.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Iterable, Iterator, List

import numpy as np
import torch
import torch.distributed as dist
from torch_geometric.data import Batch


@dataclass
class DistContext:
    """Where this process stands: rank, world size, its device, whether it made the group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False

    @classmethod
    def single(cls, device: torch.device | str = "cpu") -> "DistContext":
        return cls(device=torch.device(device))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def all_reduce_(self, tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
        """In-place sum (or max) over ranks; a no-op on one process."""
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
        return tensor

    def any(self, flag: bool) -> bool:
        """True on every rank if it is True on any."""
        if not self.distributed:
            return bool(flag)
        t = torch.tensor([1.0 if flag else 0.0], dtype=torch.float64, device=self.device)
        return bool(self.all_reduce_(t, "max").item() > 0)

    def barrier(self) -> None:
        if self.distributed:
            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index or 0])
            else:
                dist.barrier()


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> cuda if available else cpu; ``cuda`` -> this rank's GPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was requested but torch sees no GPU; use device: cpu")
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return torch.device(device)


def setup(device: str = "auto") -> DistContext:
    """Join the process group when launched by torchrun (or one already made by the caller)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", rank))
        return DistContext(rank, world, local, resolve_device(device, local), owns_group=False)
    if world <= 1:
        return DistContext(0, 1, 0, resolve_device(device, 0))
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    dev = resolve_device(device, local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, rank=rank, world_size=world,
                            **({"device_id": dev} if dev.type == "cuda" else {}))
    return DistContext(rank, world, local, dev, owns_group=True)


def teardown(ctx: DistContext) -> None:
    """Leave the process group if :func:`setup` made it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_gradients(params: Iterable[torch.nn.Parameter], ctx: DistContext) -> None:
    """Give every parameter a gradient (zeros where none) and sum the gradients over ranks.

    Zeros instead of ``None`` keep AdamW's bookkeeping identical on every rank (a rank whose
    share of the batch is empty still steps) and identical to one process.
    """
    params = [p for p in params if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    if not ctx.distributed:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p))
        offset += n


class ShardedBatchSampler:
    """This rank's part of each global batch; the order is a function of (seed, epoch) only.

    Args:
        n: dataset size.
        batch_size: structures per *global* batch (all ranks together).
        rank, world_size: this process and the number of processes.
        seed: with the epoch (``set_epoch``) it fixes the permutation (numpy PCG64).
        shuffle: permute (training) or keep the order (evaluation).
        drop_last: drop a last global batch smaller than ``batch_size``.

    ``set_epoch(epoch, start=k)`` skips the first k global batches (exact resume mid-epoch).
    A rank may receive an empty list (a last batch smaller than the world size).
    """

    def __init__(self, n: int, batch_size: int, rank: int = 0, world_size: int = 1, seed: int = 0,
                 shuffle: bool = True, drop_last: bool = False) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of size {world_size}")
        self.n, self.batch_size, self.rank, self.world_size = int(n), int(batch_size), rank, world_size
        self.seed, self.shuffle, self.drop_last = int(seed), shuffle, drop_last
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start)

    def order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, self.epoch, 0x7F907]))
        return rng.permutation(self.n)

    def num_batches(self) -> int:
        full, rest = divmod(self.n, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def global_batches(self) -> List[np.ndarray]:
        order = self.order()
        return [order[b * self.batch_size:(b + 1) * self.batch_size] for b in range(self.num_batches())]

    def __iter__(self) -> Iterator[List[int]]:
        for chunk in self.global_batches()[self.start:]:
            yield np.array_split(chunk, self.world_size)[self.rank].tolist()

    def __len__(self) -> int:
        return max(self.num_batches() - self.start, 0)


def collate(items: List):
    """PyG ``Batch`` of a list of graphs; None for an empty list."""
    if not items:
        return None

    return Batch.from_data_list(items)


def sharded_loader(dataset, sampler: ShardedBatchSampler,
                   num_workers: int = 0) -> torch.utils.data.DataLoader:
    """A DataLoader serving this rank's batches (None for an empty share)."""
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                                       num_workers=num_workers)


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (for tests and single-node launches)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
