"""Data-parallel training over processes and nodes: the ``torchrun`` launch and each rank's share.

One node runs ``torchrun --standalone``; several meet through torchrun's c10d rendezvous at
``train.rdzv_endpoint`` (PyTorch's "Elastic Launch", with a fixed number of nodes and no restarts).
Every epoch each rank trains on its own slice of the shuffled windows, the way
``torch.utils.data.DistributedSampler`` splits a dataset, except that nothing is padded or dropped:
the slices are disjoint and together cover the epoch, and every rank takes the same number of
steps, so DDP's all-reduces always pair up.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from recsys_tasks.config import ConfigError, TrainConfig
from recsys_tasks.modeling.windows import TrainError

log = logging.getLogger(__name__)


class RendezvousError(RuntimeError):
    """The nodes of a multi-node training did not meet; the message says what to check."""


#: How torchrun's rendezvous ends when the peers never all arrive, or the store's host never answers.
_NEVER_MET = ("RendezvousTimeoutError", "RendezvousConnectionError")


def steps_per_epoch(windows: int, *, batch_size: int, world: int) -> int:
    """Optimizer steps every rank takes in an epoch over ``windows`` windows.

    Steps are cut at multiples of ``batch_size * world`` windows; a last cut of fewer than ``world``
    windows (one each would leave some rank without any) joins the step before it.
    """
    if 0 < windows < world:
        raise TrainError(
            f"{windows} training windows cannot be shared by {world} processes "
            "(train.nnodes x train.nproc_per_node); train with fewer processes or on more data"
        )
    steps = math.ceil(windows / (batch_size * world))
    if steps > 1 and windows - (steps - 1) * batch_size * world < world:
        steps -= 1
    return steps


def rank_batches(order: np.ndarray, *, batch_size: int, world: int, rank: int) -> list[np.ndarray]:
    """The batches of window indices rank ``rank`` trains on, given the epoch's shuffled ``order``.

    The rank's slice is ``order[rank::world]``, ``batch_size`` per step and the rest in the last step
    (at most one more or fewer than the other ranks' last). With ``world == 1`` these are the
    consecutive ``batch_size`` chunks of ``order``.
    """
    steps = steps_per_epoch(len(order), batch_size=batch_size, world=world)
    mine = order[rank::world]
    return [mine[i * batch_size : (i + 1) * batch_size if i < steps - 1 else None] for i in range(steps)]


def agree_across_ranks(values: tuple[Any, ...], *, what: str, world: int) -> None:
    """Raise ``TrainError`` unless every rank holds the same ``values`` (``what`` names them)."""
    if world == 1:
        return
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, values)
    if any(v != gathered[0] for v in gathered):
        raise TrainError(
            f"the training processes disagree on {what}: {gathered} (by rank). Every node must run with the "
            "same config, read the same snapshot and resume from the same out_dir: start them with the same "
            "command and put artifact_root on storage all nodes mount at the same path"
        )


def wait_for_rank0(world: int, device: torch.device) -> None:
    """Barrier: every rank returns only once rank 0 has written the model."""
    if world == 1:
        return
    if device.type == "cuda":
        dist.barrier(device_ids=[device.index])
    else:
        dist.barrier()


def rdzv_id_for(out_dir: Path) -> str:
    """The default rendezvous id: the same for every node and every retry of a run, unique across runs."""
    digest = hashlib.sha256(str(Path(out_dir).expanduser().resolve()).encode()).hexdigest()[:16]
    return f"recsys-{digest}"


def torchrun_command(
    cfg: TrainConfig, program: list[str], *, out_dir: Path, node_rank: int | None = None
) -> list[str]:
    """The command one node runs: ``torchrun`` starting ``cfg.nproc_per_node`` processes of ``program``.

    ``node_rank`` 0 hosts the rendezvous store (run it on the machine ``rdzv_endpoint`` names);
    ``None`` lets torchrun decide by comparing that host with this machine's names. Which node's
    process becomes rank 0 (and writes the model) is decided by the rendezvous, not by ``node_rank``.
    """
    launch = [sys.executable, "-m", "torch.distributed.run"]
    if cfg.nnodes == 1:
        return [*launch, "--standalone", f"--nproc_per_node={cfg.nproc_per_node}", *program]
    if node_rank is not None and not 0 <= node_rank < cfg.nnodes:
        raise ConfigError(f"--node-rank {node_rank}: use 0..{cfg.nnodes - 1} (train.nnodes={cfg.nnodes})")
    # read_timeout bounds a node's wait for the store's host to come up, as join_timeout bounds its
    # wait for the peers: a node alone fails after about one or two join timeouts, never hangs.
    rdzv_conf = f"join_timeout={cfg.rdzv_join_timeout_s},read_timeout={cfg.rdzv_join_timeout_s}"
    if node_rank is not None:
        rdzv_conf += f",is_host={int(node_rank == 0)}"
    return [
        *launch, f"--nnodes={cfg.nnodes}", f"--nproc_per_node={cfg.nproc_per_node}",
        "--rdzv-backend=c10d", f"--rdzv-endpoint={cfg.rdzv_endpoint}",
        f"--rdzv-id={cfg.rdzv_id or rdzv_id_for(out_dir)}", f"--rdzv-conf={rdzv_conf}", "--max-restarts=0",
        *program,
    ]


def run_torchrun(command: list[str], cfg: TrainConfig) -> None:
    """Run a ``torchrun_command`` and wait; raise ``RendezvousError`` if the nodes never met."""
    with tempfile.TemporaryDirectory(prefix="recsys-torchrun-") as tmp:
        # torchrun records the exception that ended it here (its own, or a worker's).
        error_file = Path(tmp) / "error.json"
        env = {**os.environ, "TORCHELASTIC_ERROR_FILE": str(error_file)}
        log.info("training with torchrun: %s", " ".join(command))
        returncode = subprocess.run(command, check=False, env=env).returncode
        failure = _recorded_failure(error_file)
    if returncode == 0:
        return
    if cfg.nnodes > 1 and failure.startswith(_NEVER_MET):
        raise RendezvousError(
            f"train.nnodes={cfg.nnodes}: this node did not meet its peers at train.rdzv_endpoint="
            f"{cfg.rdzv_endpoint} within train.rdzv_join_timeout_s={cfg.rdzv_join_timeout_s} "
            f"({failure.split(':')[0]}). Check that all {cfg.nnodes} nodes were started with the same "
            "config (rdzv_endpoint, rdzv_id) and --out, that the endpoint's host is up and runs node 0 "
            "(--node-rank 0), and that its port is reachable from every node (firewall, DNS)"
        )
    raise RuntimeError(
        f"torchrun training failed with exit code {returncode} (its log is above); with "
        f"train.nproc_per_node={cfg.nproc_per_node} every process needs its own GPU (or CPU with gloo)"
    )


def _recorded_failure(error_file: Path) -> str:
    """``"ExceptionType: message"`` from torchrun's error file; empty if it wrote none."""
    try:
        record = json.loads(error_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    message = record.get("message", "")
    return str(message.get("message", "") if isinstance(message, dict) else message)


__all__ = [
    "RendezvousError", "agree_across_ranks", "rank_batches", "rdzv_id_for", "run_torchrun", "steps_per_epoch",
    "torchrun_command", "wait_for_rank0",
]
