"""Several processes under torchrun (PyTorch DDP): joining the group, sharing the run folder."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    grouped: bool = False          # in a process group (torchrun), even of one process

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str) -> Dist:
    """Join a torchrun process group (NCCL on CUDA, gloo on the CPU): whenever WORLD_SIZE > 1, and
    under torchrun with one process too, so that `torchrun --nproc-per-node 1` runs the DDP path
    (benchmarks/gpu_check.sh checks NCCL that way on a one-GPU machine)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 and "TORCHELASTIC_RUN_ID" not in os.environ:
        return Dist()
    import torch
    import torch.distributed as td

    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    if use_cuda:
        torch.cuda.set_device(local)
    td.init_process_group("nccl" if use_cuda else "gloo")
    return Dist(td.get_rank(), td.get_world_size(), local, grouped=True)


def broadcast_path(run: Path | None, dist: Dist) -> Path:
    import torch.distributed as td

    box = [str(run) if run is not None else None]
    td.broadcast_object_list(box, src=0)
    return Path(box[0])
