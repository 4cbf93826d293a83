"""Training checkpoints copied to the artifact store, so a retry on another worker resumes from the last epoch.

Layout under the run's ``train/checkpoints/`` URI: ``epoch-<n>/`` (a checkpoint directory as
``TrainState.save`` writes it) and ``LATEST`` (``n``, one small object written last). A reader
follows ``LATEST``, so a copy cut off half-way is never used; older epochs are deleted after
``LATEST`` moves on.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from pathlib import Path

from upath import UPath

from recsys_tasks.modeling.checkpoint import CHECKPOINT_DIR
from recsys_tasks.storage import ArtifactStore

log = logging.getLogger(__name__)

POINTER = "LATEST"


class CheckpointSync:
    """Puts each epoch's local checkpoint into ``remote`` and restores the newest one from there."""

    def __init__(self, store: ArtifactStore, remote: UPath) -> None:
        self.store, self.remote = store, remote

    def save(self, ckpt: Path) -> None:
        """Copy the checkpoint directory ``ckpt`` up as the newest epoch (called after each epoch)."""
        epoch = self._next_epoch()
        self.store.put_tree(ckpt, self.remote / f"epoch-{epoch}")
        self.store.write_text(self.remote / POINTER, str(epoch))
        for old in range(max(0, epoch - 3), epoch):  # the previous ones, now superseded
            self.store.remove(self.remote / f"epoch-{old}")
        log.info("checkpoint of this epoch copied to %s", self.remote / f"epoch-{epoch}")

    def restore(self, out_dir: Path) -> bool:
        """Fetch the newest stored checkpoint into ``out_dir/checkpoint`` unless one is there; say whether it did."""
        local = Path(out_dir) / CHECKPOINT_DIR
        epoch = self._latest()
        if local.exists() or epoch is None:
            return False
        tmp = local.with_name(f"{local.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            self.store.get_tree(self.remote / f"epoch-{epoch}", tmp)
            tmp.replace(local)  # another rank on this node may have won the race: its copy is the same
        except OSError:
            if not local.exists():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("resuming from the checkpoint in the artifact store: %s", self.remote / f"epoch-{epoch}")
        return True

    def _latest(self) -> int | None:
        pointer = self.remote / POINTER
        try:
            return int(pointer.read_text().strip()) if pointer.exists() else None
        except ValueError:
            log.warning("ignoring %s: it does not hold an epoch number", pointer)
            return None

    def _next_epoch(self) -> int:
        latest = self._latest()
        return 0 if latest is None else latest + 1


__all__ = ["CheckpointSync"]
