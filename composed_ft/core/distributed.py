"""PyTorch DistributedDataParallel setup for `torchrun --nproc_per_node N ...`.

Under torchrun (WORLD_SIZE > 1) every process joins one process group (nccl on GPUs, gloo on CPUs),
takes its slice of each global batch, and gradients are averaged across processes, so N processes
with per-process batch B/N follow the same global batch of B as one process. Only rank 0 writes
logs, metrics and checkpoints. Without torchrun this is a no-op context of one process."""
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .device import get_device


@dataclass
class Context:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def enabled(self):
        return self.world_size > 1

    def shard(self, batch_indices):
        """This process's slice of a global batch (strided, so every rank gets a near-equal share)."""
        return batch_indices[self.rank::self.world_size] if self.enabled else batch_indices

    def wrap(self, model):
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def average_gradients(self, params):
        """All-reduce and average the gradients of `params` across processes: what DDP's hooks do,
        for models whose training step does not go through a wrapped module's forward (the
        seq2seq stages call the model's parts directly). A missing gradient counts as zero."""
        if not self.enabled:
            return
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)
            p.grad.div_(self.world_size)

    def barrier(self):
        if self.enabled:
            dist.barrier()

    def close(self):
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def setup(device="auto"):
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context(device=get_device(device))
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = get_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Context(rank=rank, world_size=world, device=dev)


def unwrap(model):
    """The module inside a DistributedDataParallel wrapper (or the model itself)."""
    return getattr(model, "module", model)
