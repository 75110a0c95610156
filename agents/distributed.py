"""Training on several processes with torch.distributed, as ``torchrun`` launches them.

``torchrun --nproc_per_node=N -m agents.train ...`` starts N copies of the command with ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK`` set; :func:`setup` joins them into one process group (gloo on CPU, NCCL on
GPUs). Each rank then plays its share of every batch (the episode samplers draw the same global batch on
every rank and each keeps its slice), the gradients are averaged across ranks before every optimiser step
(what DistributedDataParallel does; done explicitly here because a rollout calls the model's parts step by
step, not one ``forward``), and evaluation, checkpoints and logs are rank 0's.

For the update to equal one process's on the whole batch, every loss divides by a count of the whole batch:
:func:`share` turns a rank's count into ``global count / world size``, so that after averaging the gradients
across ranks each loss is exactly its sum over the whole batch divided by the whole batch's count. Outside
torchrun every function here is the identity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Group:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self) -> tuple[int, int]:
        """``(rank, world_size)``: which slice of each global batch this process plays."""
        return self.rank, self.world_size


_GROUP = Group()


def group() -> Group:
    """The current process group (a single process unless :func:`setup` joined one)."""
    return _GROUP


def setup(device: str) -> tuple[Group, str]:
    """Join the processes torchrun started (``WORLD_SIZE`` > 1) and return the group and this rank's device
    (``cuda`` becomes ``cuda:LOCAL_RANK``); a single process gets ``Group()`` and ``device`` unchanged."""
    global _GROUP
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return _GROUP, device
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        device = f"cuda:{local_rank}"
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo", rank=rank, world_size=world_size)
    _GROUP = Group(rank, world_size, local_rank)
    return _GROUP, device


def teardown() -> None:
    """Leave the process group (at the end of a run)."""
    global _GROUP
    if dist.is_initialized():
        dist.destroy_process_group()
    _GROUP = Group()


def global_sum(value: float | torch.Tensor) -> torch.Tensor:
    """The sum over every rank of ``value`` (a number or a tensor), on every rank."""
    tensor = torch.as_tensor(value, dtype=torch.float64).clone()
    if _GROUP.world_size > 1:
        dist.all_reduce(tensor)
    return tensor


def share(count: float | torch.Tensor) -> float:
    """What a rank divides its loss sum by so that, gradients averaged across ranks, the loss is the whole
    batch's sum over the whole batch's ``count``: the global count over the world size."""
    if _GROUP.world_size == 1:
        return float(count)
    return float(global_sum(count)) / _GROUP.world_size


def average_gradients(*modules: torch.nn.Module) -> None:
    """Average every parameter's gradient across ranks (one all-reduce over a flat buffer)."""
    if _GROUP.world_size == 1:
        return
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:  # a part one rank did not use this step still joins the all-reduce, with zeros
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in params]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= _GROUP.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset: offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_parameters(*modules: torch.nn.Module) -> None:
    """Give every rank rank 0's parameters (so all start from the same model)."""
    if _GROUP.world_size == 1:
        return
    for module in modules:
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def barrier() -> None:
    """Wait for every rank (e.g. while rank 0 evaluates and writes checkpoints)."""
    if _GROUP.world_size > 1:
        dist.barrier()
