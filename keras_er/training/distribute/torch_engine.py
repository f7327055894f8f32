"""The torch engine: DDP's contract on a Keras model, under `torchrun`.

The adapter for the Keras internals this needs, each pinned by a test in
`tests/training/test_distribute.py`: BatchNormalization's `_moments(inputs, mask)`
and `_reduction_axes` (replaced per layer with statistics over every rank), and
`optimizer.apply(gradients, variables)` (wrapped to average the gradients first).
"""

import functools
import os
import types

import numpy as np

from keras_er.training.distribute.engine import AveragedLogs
from keras_er.training.distribute.engine import Engine
from keras_er.training.distribute.engine import ShardedBatches
from keras_er.training.distribute.engine import batch_norms
from keras_er.training.distribute.engine import check_identical_masks


class TorchDDP(Engine):
    """DDP's contract on a Keras model: same start on every rank, gradients averaged before each update.

    Started by `torchrun` (which sets `RANK`, `WORLD_SIZE`, `MASTER_ADDR`); the process
    group uses NCCL on GPUs and gloo on CPUs. Each rank trains on its slice of every
    global batch; `prepare` broadcasts rank 0's weights, synchronises BatchNorm and
    makes the optimizer average gradients over the ranks (what `DistributedDataParallel`
    does for a torch module; Keras' trainer calls the model directly, so it is done here).
    """

    name = "torch.distributed (DDP)"

    def __init__(self, devices=None):
        import torch.distributed as dist

        if "WORLD_SIZE" not in os.environ and not dist.is_initialized():
            raise ValueError(
                "torch data-parallel training runs one process per device under torchrun: "
                "`torchrun --nproc_per_node N -m keras_er train ...` (`keras-er train --devices N` does this)."
            )
        if not dist.is_initialized():
            import torch

            if torch.cuda.is_available():
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))  # one GPU per process
            dist.init_process_group("cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
        self.processes = self.devices = dist.get_world_size()
        self.rank = dist.get_rank()
        local = int(os.environ.get("LOCAL_WORLD_SIZE", self.devices))
        if devices is not None and devices != local:
            raise ValueError(f"`devices`={devices} but torchrun started {local} processes on this host.")

    def shard(self, batches):
        return ShardedBatches(batches, self.rank, self.processes)

    def prepare(self, model):
        import torch.distributed as dist

        check_identical_masks(model, self)  # before the broadcast, which would hide a difference
        for variable in [*model.variables, *model.optimizer.variables]:
            dist.broadcast(variable.value.data, src=0)
        for layer in batch_norms(model):
            object.__setattr__(layer, "_moments", types.MethodType(_synchronized_moments, layer))
        _average_gradients_before_update(model.optimizer, self.processes)

    def release(self, model):
        for layer in batch_norms(model):
            if "_moments" in vars(layer):
                object.__delattr__(layer, "_moments")
        optimizer = model.optimizer
        if "apply" in vars(optimizer):
            object.__delattr__(optimizer, "apply")

    def callbacks(self):
        return [AveragedLogs(self), *super().callbacks()]

    def allgather(self, value):
        import torch
        import torch.distributed as dist

        gathered = [torch.zeros(1, dtype=torch.int64) for _ in range(self.processes)]
        dist.all_gather(gathered, torch.tensor([value], dtype=torch.int64))
        return [int(item.item()) for item in gathered]

    def average(self, value):
        import torch
        import torch.distributed as dist

        total = torch.tensor([float(value)], dtype=torch.float64)
        dist.all_reduce(total)
        return float(total.item()) / self.processes


def _average_gradients_before_update(optimizer, processes):
    import torch
    import torch.distributed as dist

    apply = optimizer.apply

    def apply_averaged(gradients, variables=None):
        present = [gradient for gradient in gradients if gradient is not None]  # the same on every rank
        if present:  # one all-reduce for all of them
            flat = torch.cat([gradient.reshape(-1) for gradient in present])
            dist.all_reduce(flat)
            flat.div_(processes)
            for gradient, part in zip(present, flat.split([gradient.numel() for gradient in present])):
                gradient.copy_(part.view_as(gradient))
        return apply(gradients, variables)

    optimizer.apply = apply_averaged


def _synchronized_moments(layer, inputs, mask):
    """BatchNorm mean/variance over the global batch (sums all-reduced, differentiably)."""
    import torch

    if mask is not None:
        raise ValueError("Synchronised BatchNorm does not support masked inputs.")
    axes = list(layer._reduction_axes)
    count = torch.tensor([float(np.prod([inputs.shape[a] for a in axes]))], device=inputs.device)
    total = _summed_over_ranks(torch.cat([inputs.sum(dim=axes), torch.square(inputs).sum(dim=axes), count]))
    channels = (total.shape[0] - 1) // 2
    mean = total[:channels] / total[-1]
    variance = (total[channels : 2 * channels] / total[-1] - torch.square(mean)).clamp_min(0)
    return mean, variance


def _summed_over_ranks(tensor):
    """All-reduce (sum) with its gradient: the backward pass sums the ranks' gradients too."""
    return _sum_over_ranks_function().apply(tensor)


@functools.cache
def _sum_over_ranks_function():
    import torch
    import torch.distributed as dist

    class SumOverRanks(torch.autograd.Function):
        @staticmethod
        def forward(ctx, value):
            total = value.clone()
            dist.all_reduce(total)
            return total

        @staticmethod
        def backward(ctx, gradient):
            total = gradient.clone()
            dist.all_reduce(total)
            return total

    return SumOverRanks
