"""GPU slots: each training job takes a free device itself, so jobs started together never share one.

Locally `snakemake --resources gpu=N` bounds how many GPU jobs run; this module decides *which* device each takes,
with an exclusive file lock per device in a run directory. Under a scheduler that sets CUDA_VISIBLE_DEVICES the
job's devices are already its own and the first visible one is used. Without a GPU: the CPU, with a log line.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def visible_gpu_count() -> int:
    """Number of CUDA devices torch can use here (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


@contextlib.contextmanager
def device_slot(
    lock_dir: str | Path, n_devices: int | None = None, poll: float = 0.5, timeout: float = 3600
) -> Iterator[str]:
    """Hold an exclusive lock on one free device for the duration of the block; yields 'cuda:i' or 'cpu'."""
    n = visible_gpu_count() if n_devices is None else n_devices
    if n == 0:
        log.info("no GPU visible: training on the CPU")
        yield "cpu"
        return
    if os.environ.get("CUDA_VISIBLE_DEVICES") and os.environ.get("SLURM_JOB_ID"):
        log.info("scheduler assigned CUDA_VISIBLE_DEVICES=%s: using cuda:0", os.environ["CUDA_VISIBLE_DEVICES"])
        yield "cuda:0"
        return
    Path(lock_dir).mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        for i in range(n):
            handle = open(Path(lock_dir) / f"gpu{i}.lock", "w")  # noqa: SIM115 - held until the block ends
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            log.info("took GPU slot cuda:%d", i)
            try:
                yield f"cuda:{i}"
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
                handle.close()
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"no free GPU slot in {lock_dir} after {timeout} s")
        time.sleep(poll)


def limit_threads(n: int) -> None:
    """Hold torch and the OpenMP/BLAS pools (HistGradientBoosting) to a job's `threads`: oversubscribed, they thrash."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(n)
