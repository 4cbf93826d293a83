"""What this process may use of the machine: CPU threads for torch, and whether bf16 pays.

Why threads are set explicitly rather than left to torch's default: torch sizes its intra-op pool
from OpenMP, which counts the CPUs of the affinity mask but not a container's CPU quota
(``docker run --cpus 2`` on a 64-core host gives 64 threads fighting over 2 CPUs), inherits an
``OMP_NUM_THREADS=1`` that a launcher (torchrun with several processes per node, some Celery/Airflow
worker images) put in the environment. ``apply_threads`` at the start of training and scoring
fixes both and logs what it did. (A third hazard is not a thread count: a process forked after its
parent ran an OpenMP parallel region hangs in its own first one; Airflow forks each task from a
worker that never runs torch, so tasks are safe as long as nothing torch-parallel runs at DAG parse
time, which ``tests/dags`` forbids.)
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import torch

log = logging.getLogger(__name__)

#: More intra-op threads than this stop helping the small matrices of a sequence model.
MAX_THREADS = 32
#: Whether ``precision: auto`` uses bf16 autocast on CPUs with native bf16. Off: on the avx512_bf16
#: CPU of BENCHMARKS.md (issue 17) it gained 5 % a step at this model size on a quiet machine and lost
#: up to 2.5x in busier runs; not worth the rounding.
CPU_BF16_AUTO = False
_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def cgroup_cpu_limit(path: Path = _CGROUP_CPU_MAX) -> int | None:
    """CPUs a cgroup v2 quota allows (``quota / period`` rounded up), or None without a quota."""
    try:
        quota, period = path.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, bounded by a container CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    return min(cpus, limit) if limit is not None else cpus


def default_num_threads() -> int:
    """Intra-op threads when ``train.num_threads`` is unset: usable CPUs shared among the local
    ranks of a torchrun launch (``LOCAL_WORLD_SIZE``), capped at ``MAX_THREADS``."""
    local_ranks = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(MAX_THREADS, usable_cpus() // local_ranks))


def apply_threads(num_threads: int | None, *, what: str) -> int:
    """Set torch's intra-op (and, if still possible, inter-op) threads; returns the intra-op count.

    ``None`` means ``default_num_threads()``. Inter-op threads can only be set before the first
    inter-op parallel work of the process; later calls keep the pool torch already has.
    """
    n = default_num_threads() if num_threads is None else int(num_threads)
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(min(n, 4))
    except RuntimeError:  # already started: only allowed once per process
        pass
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}
    log.info(
        "%s: %d intra-op threads (was %d), %d inter-op; %d usable CPUs%s",
        what, n, before, torch.get_num_interop_threads(), usable_cpus(), f"; env {env}" if env else "",
    )
    return n


def release_memory() -> None:
    """Hand memory freed by this process back to the OS: Arrow's pool and glibc's heap keep what a
    chunked read freed, which would otherwise add to the peak of the scoring that follows."""
    import ctypes
    import ctypes.util

    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    libc = ctypes.util.find_library("c")
    if libc and hasattr(ctypes.CDLL(libc), "malloc_trim"):  # glibc only; elsewhere a no-op
        ctypes.CDLL(libc).malloc_trim(0)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX), so autocast can pay off."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    if " avx512_bf16" in flags or " amx_bf16" in flags:
        return True
    return torch.backends.cpu.get_cpu_capability() == "AVX512_BF16"  # newer torch names it


def autocast_bf16(precision: str, device: torch.device, *, cpu_auto: bool) -> bool:
    """Whether to run under bf16 autocast: ``bf16`` wherever bf16 is native, ``auto`` on CUDA and,
    if ``cpu_auto``, on CPUs with native bf16 (``cpu_auto`` is False where measurements showed no
    gain; see BENCHMARKS.md)."""
    if precision == "fp32":
        return False
    if device.type == "cuda":
        return True
    native = device.type == "cpu" and cpu_has_bf16()
    return native and (precision == "bf16" or cpu_auto)


__all__ = [
    "CPU_BF16_AUTO",
    "MAX_THREADS",
    "apply_threads",
    "autocast_bf16",
    "cgroup_cpu_limit",
    "cpu_has_bf16",
    "default_num_threads",
    "release_memory",
    "usable_cpus",
]
