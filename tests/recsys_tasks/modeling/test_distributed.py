"""Each rank's share of an epoch, and the torchrun command one node runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recsys_tasks.config import ConfigError, TrainConfig
from recsys_tasks.modeling.distributed import rank_batches, rdzv_id_for, steps_per_epoch, torchrun_command
from recsys_tasks.modeling.windows import TrainError


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("batch_size", [1, 2, 3, 5, 8])
def test_ranks_split_an_epoch_disjointly_covering_it_in_equal_steps(world, batch_size):
    for n in range(world, 60):
        order = np.random.default_rng(n).permutation(n)
        shares = [rank_batches(order, batch_size=batch_size, world=world, rank=r) for r in range(world)]
        steps = steps_per_epoch(n, batch_size=batch_size, world=world)
        assert [len(s) for s in shares] == [steps] * world, "every rank steps as often, or DDP deadlocks"
        seen = np.concatenate([b for share in shares for b in share])
        assert sorted(seen.tolist()) == list(range(n)), "disjoint, and together the whole epoch"
        for share in shares:
            assert all(len(b) == batch_size for b in share[:-1])
            assert 1 <= len(share[-1]) <= batch_size + 1, "no rank steps on an empty batch"


def test_one_process_gets_the_consecutive_batches_of_the_order():
    order = np.random.default_rng(0).permutation(130)
    batches = rank_batches(order, batch_size=32, world=1, rank=0)
    assert [b.tolist() for b in batches] == [order[i : i + 32].tolist() for i in range(0, 130, 32)]


def test_hand_computed_split_of_nine_windows_over_two_ranks():
    # Steps are cut every 2 x 2 windows; the ninth window alone would leave rank 1 without one,
    # so it joins the second step of rank 0.
    order = np.arange(9)
    assert [b.tolist() for b in rank_batches(order, batch_size=2, world=2, rank=0)] == [[0, 2], [4, 6, 8]]
    assert [b.tolist() for b in rank_batches(order, batch_size=2, world=2, rank=1)] == [[1, 3], [5, 7]]


def test_fewer_windows_than_processes_is_refused():
    with pytest.raises(TrainError, match="3 training windows cannot be shared by 4 processes"):
        steps_per_epoch(3, batch_size=8, world=4)


def test_one_node_launches_standalone():
    command = torchrun_command(TrainConfig(nproc_per_node=2), ["-m", "x"], out_dir=Path("/runs/a/train"))
    assert command[1:] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "x"]


def test_each_node_joins_the_rendezvous_of_its_run():
    cfg = TrainConfig(nnodes=2, rdzv_endpoint="trainer-0:29400", rdzv_join_timeout_s=30)
    host = torchrun_command(cfg, ["-m", "x"], out_dir=Path("/runs/a/train"), node_rank=0)
    peer = torchrun_command(cfg, ["-m", "x"], out_dir=Path("/runs/a/train"), node_rank=1)
    assert "--standalone" not in host
    assert {"--nnodes=2", "--rdzv-backend=c10d", "--rdzv-endpoint=trainer-0:29400"} <= set(host)
    assert f"--rdzv-id={rdzv_id_for(Path('/runs/a/train'))}" in host and host[-2:] == ["-m", "x"]
    assert "--rdzv-conf=join_timeout=30,read_timeout=30,is_host=1" in host
    assert "--rdzv-conf=join_timeout=30,read_timeout=30,is_host=0" in peer
    assert rdzv_id_for(Path("/runs/a/train")) != rdzv_id_for(Path("/runs/b/train")), "runs never meet"
    named = torchrun_command(cfg.model_copy(update={"rdzv_id": "nightly"}), [], out_dir=Path("/runs/a/train"))
    assert "--rdzv-id=nightly" in named
    assert "--rdzv-conf=join_timeout=30,read_timeout=30" in named, "no node rank: torchrun picks the host"
    with pytest.raises(ConfigError, match=r"--node-rank 2: use 0\.\.1 \(train\.nnodes=2\)"):
        torchrun_command(cfg, [], out_dir=Path("/runs/a/train"), node_rank=2)
