"""Small DistributedDataParallel helpers for the training scripts (torchrun; nccl on GPUs, gloo on CPU).

    torchrun --nproc_per_node 4 -m training.train_mesh_ae --out runs/mesh_ae ...

`setup()` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK; MASTER_ADDR/PORT for the
rendezvous) and initialises the default process group; without torchrun it returns a single-process
`DistEnv` (rank 0 of 1, CPU, no process group) and every helper below is a no-op, so
`python -m training.<script>` behaves exactly as before. Conventions used by the scripts:

- every rank draws its own samples (`rank_seed`) or its own slice of a dataset (`shard`);
- the model is wrapped with `wrap` (DDP averages the gradients, so all ranks keep identical weights);
- `--batch` is per rank: the effective batch is batch × world_size;
- only rank 0 prints (`print0`), writes checkpoints and exports (`is_main`), the others wait at
  `barrier()`; everything that decides the control flow (stop time, learning rate) is agreed on with
  `max_float` so that no rank leaves the loop alone;
- files that every rank needs (joint tables, feature caches) are built by rank 0 first (`main_first`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
from typing import Callable, Sequence, TypeVar

import numpy as np
import torch
import torch.distributed as dist

T = TypeVar("T")


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


@dataclasses.dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None      # None: no process group (plain `python -m …`)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None

    # -- logging / ordering -------------------------------------------------------------------
    def print0(self, *args, **kwargs) -> None:
        """print() on rank 0 only (flushed)."""
        if self.is_main:
            kwargs.setdefault("flush", True)
            print(*args, **kwargs)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    @contextlib.contextmanager
    def main_first(self):
        """Run the block on rank 0 first and on the other ranks after it (e.g. rank 0 builds a cache
        file, the others then load it)."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()

    def print_setup(self, batch: int) -> None:
        """The DDP line of the log (nothing on one process)."""
        if self.world_size > 1:
            self.print0(f"DDP: {self.world_size} processes ({self.backend}, {self.device.type}), batch {batch} "
                        f"per rank = {batch * self.world_size} per step")

    def on_main(self, fn, *args, **kwargs):
        """Run `fn` on rank 0 only (checkpoint, export), then let all ranks meet; returns fn's result
        on rank 0 and None elsewhere."""
        out = fn(*args, **kwargs) if self.is_main else None
        self.barrier()
        return out

    # -- collectives on small Python values -------------------------------------------------------
    def _tensor(self, values: Sequence[float]) -> torch.Tensor:
        dev = self.device if self.backend == "nccl" else torch.device("cpu")
        return torch.tensor([float(v) for v in values], dtype=torch.float64, device=dev)

    def all_reduce_sum(self, values: Sequence[float]) -> list[float]:
        if not self.distributed:
            return [float(v) for v in values]
        t = self._tensor(values)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def all_reduce_mean(self, values: Sequence[float]) -> list[float]:
        return [v / self.world_size for v in self.all_reduce_sum(values)]

    def max_float(self, value: float) -> float:
        """The largest `value` over the ranks (e.g. elapsed time, so that all ranks stop together)."""
        if not self.distributed:
            return float(value)
        t = self._tensor([value])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return float(t.item())

    def broadcast_float(self, value: float, src: int = 0) -> float:
        if not self.distributed:
            return float(value)
        t = self._tensor([value])
        dist.broadcast(t, src)
        return float(t.item())

    def params_max_diff(self, model: torch.nn.Module) -> float:
        """max |θ_rank − θ_0| over all parameters and ranks (0.0 when DDP kept the replicas in sync;
        0.0 trivially without a process group)."""
        if not self.distributed:
            return 0.0
        flat = torch.cat([p.detach().reshape(-1) for p in unwrap(model).parameters()]).double()
        if self.backend != "nccl":
            flat = flat.cpu()
        ref = flat.clone()
        dist.broadcast(ref, 0)
        d = (flat - ref).abs().max() if flat.numel() else flat.new_zeros(())
        d = d.reshape(1)
        dist.all_reduce(d, op=dist.ReduceOp.MAX)
        return float(d.item())

    def check_sync(self, *modules: torch.nn.Module, note: str = "") -> bool:
        """--check-sync: print max |θ_rank − θ_0| over `modules` and ranks; True when it is 0."""
        diff = max(self.params_max_diff(m) for m in modules)
        note = f" ({note})" if note else ""
        self.print0(f"sync check: max |weight difference|{note} over {self.world_size} ranks = {diff:.3g} "
                    f"({'in sync' if diff == 0.0 else 'NOT IN SYNC'})")
        return diff == 0.0

    def command(self, module: str, argv: Sequence[str]) -> str:
        """The command line recorded in a manifest: `python -m module ARGS`, or `torchrun
        --nproc_per_node N -m module ARGS` for a multi-process run."""
        launcher = "python" if self.world_size == 1 else f"torchrun --nproc_per_node {self.world_size}"
        return f"{launcher} -m {module} " + shlex.join(argv)


def setup(device: str = "auto") -> DistEnv:
    """Initialise the process group when launched by torchrun; pick the device.

    device: "auto" (cuda:LOCAL_RANK under torchrun when CUDA is available, else CPU; always CPU
    without torchrun, as the scripts were written for), "cpu" or "cuda" (cuda:LOCAL_RANK).
    Backend: nccl for a CUDA device, gloo for CPU.
    """
    if not launched_by_torchrun():
        dev = torch.device("cuda") if device == "cuda" else torch.device("cpu")
        return DistEnv(device=dev)
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev, backend = torch.device("cuda", local_rank), "nccl"
    else:
        dev, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistEnv(rank=rank, world_size=world, local_rank=local_rank, device=dev, backend=backend)


def cleanup(ok: bool = True) -> None:
    """Tear the process group down (no-op without one). `ok=False` (after an exception) skips the
    final barrier, which would otherwise wait for ranks that are stuck in another collective."""
    if dist.is_available() and dist.is_initialized():
        if ok:
            dist.barrier()
        dist.destroy_process_group()


def run(train: Callable[..., int], args, argv, device: str = "auto") -> int:
    """`train(args, argv, env)` inside `setup()` / `cleanup()` (a failed rank skips the final barrier)."""
    env = setup(device)
    try:
        rc = train(args, argv, env)
    except BaseException:
        cleanup(ok=False)
        raise
    cleanup()
    return rc


def wrap(model: torch.nn.Module, env: DistEnv, **ddp_kwargs) -> torch.nn.Module:
    """`model` moved to env.device, wrapped in DistributedDataParallel when a process group is up
    (DDP broadcasts rank 0's parameters and buffers at construction, then averages gradients)."""
    model = model.to(env.device)
    if not env.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [env.device.index] if env.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, output_device=ids[0] if ids else None, **ddp_kwargs)


@torch.no_grad()
def broadcast_module(module: torch.nn.Module, env: DistEnv, src: int = 0) -> None:
    """Copy rank `src`'s parameters and buffers into every rank's `module` (e.g. an EMA copy that DDP
    does not manage); no-op without a process group."""
    if not env.distributed:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside a DDP wrapper (what checkpoints and exports store: no 'module.' prefix)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def rank_seed(parts: Sequence[int] | int, env: DistEnv) -> list[int]:
    """Seed entropy for this rank's data generator: `parts` unchanged on rank 0 (so a single process
    draws exactly what it drew before DDP support), `parts + [rank]` on the other ranks."""
    parts = [int(parts)] if isinstance(parts, int) else [int(p) for p in parts]
    return parts if env.rank == 0 else parts + [env.rank]


def rank_int_seed(seed: int, env: DistEnv) -> int:
    """An integer seed (torch.Generator / torch.manual_seed) for this rank: `seed` unchanged on rank 0
    (a single process draws what it drew before DDP support), a 63-bit seed hashed from
    (seed, rank) on the others (no overlap with the seeds seed + k of rank 0 after a resume)."""
    if env.rank == 0:
        return int(seed)
    return int(np.random.SeedSequence(rank_seed(seed, env)).generate_state(1, np.uint64)[0] >> np.uint64(1))


def shard(items: Sequence[T], env: DistEnv) -> Sequence[T]:
    """This rank's strided slice items[rank::world_size] (the whole sequence on one process)."""
    return items if env.world_size == 1 else items[env.rank::env.world_size]
