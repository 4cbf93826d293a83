"""The sequence model: a decoder-only causal transformer over item sequences (SASRec-style).

Follows Kang & McAuley, "Self-Attentive Sequential Recommendation" (ICDM 2018) with the departures
that later work found helpful: a full softmax cross-entropy over the catalogue instead of one
sampled negative per position (Klenitskiy & Vasilev, "Turning Dross Into Gold Loss: is BERT4Rec
really better than SASRec?", RecSys 2023), and, when the catalogue is too large for a full softmax,
a sampled softmax with log-popularity (logQ) correction (Yi et al., RecSys 2019; ``losses`` says
when each is used). The attention stack is a Hugging Face ``GPT2Model`` or ``LlamaModel`` fed with
``inputs_embeds``; its configs are built locally, nothing is downloaded.

Layout conventions shared with ``train`` and ``recommender``:

* sequences are RIGHT padded with 0: ``items[b, :length[b]]`` are real, the rest is padding. Under
  the causal mask a real position never attends to a later (padding) position, so padding has no
  effect on real positions and no separate padding mask is passed;
* position ``t`` predicts the item at ``t + 1``: ``targets[b, t] = items[b, t + 1]`` (0 = ignore);
* output logits are tied to the item embedding table; index 0 (padding) never wins.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys_tasks.config import ModelConfig
from recsys_tasks.modeling.losses import sampled_softmax_loss

#: Number of rows of the event-type embedding: padding + the six canonical event types.
NUM_EVENT_TYPES = 7


def time_gap_buckets(timestamps: np.ndarray, num_buckets: int) -> np.ndarray:
    """Bucket ids (1..num_buckets) of the log2 gap in minutes to the previous event; 0 is padding.

    The first event of a sequence has gap 0 (bucket 1).
    """
    ts = np.asarray(timestamps, dtype=np.int64)
    gaps = np.zeros(len(ts), dtype=np.float64)
    if len(ts) > 1:
        gaps[1:] = np.maximum(np.diff(ts), 0) / 60.0
    buckets = np.floor(np.log2(1.0 + gaps)).astype(np.int64)
    return 1 + np.clip(buckets, 0, num_buckets - 1)


def _transformer_stack(cfg: ModelConfig) -> nn.Module:
    """A randomly initialised GPT-2 or Llama decoder sized from ``cfg`` (no download)."""
    # We always pass inputs_embeds: the stack's own token table (1 row) and special tokens are unused.
    no_tokens = {"vocab_size": 1, "use_cache": False, "bos_token_id": None, "eos_token_id": None}
    if cfg.architecture == "gpt2":
        from transformers import GPT2Config, GPT2Model

        drop = cfg.dropout
        stack = GPT2Model(GPT2Config(
            n_positions=cfg.max_len, n_embd=cfg.hidden_size, n_layer=cfg.num_layers, n_head=cfg.num_heads,
            resid_pdrop=drop, embd_pdrop=drop, attn_pdrop=drop, **no_tokens,
        ))
    else:
        from transformers import LlamaConfig, LlamaModel

        stack = LlamaModel(LlamaConfig(
            hidden_size=cfg.hidden_size, intermediate_size=4 * cfg.hidden_size,
            num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
            num_key_value_heads=cfg.num_heads, max_position_embeddings=cfg.max_len,
            attention_dropout=cfg.dropout, pad_token_id=None, **no_tokens,
        ))
    # Frozen, so DDP does not wait for a gradient that never comes and the optimizer does not carry it.
    stack.get_input_embeddings().weight.requires_grad_(False)
    return stack


def init_embeddings(*tables: nn.Embedding | None) -> None:
    """N(0, 0.02) rows with the padding row 0 zeroed (SASRec's and GPT-2's init)."""
    for emb in tables:
        if emb is not None:
            nn.init.normal_(emb.weight, std=0.02)
            with torch.no_grad():
                emb.weight[0].zero_()


class TiedItemOutput(nn.Module):
    """The output side our sequence models share: logits are dot products with the item table
    (tied input and output vectors), and a ``popularity`` buffer ranks items for users without history.

    A subclass defines ``hidden(items, event_types, time_gaps)``: (B, T) -> (B, T, C), causal, and
    calls ``init_embeddings`` where it likes (where it does so fixes the RNG stream of a seeded init).
    """

    def __init__(
        self, cfg: ModelConfig, num_items: int, *, repeat_bias: bool = False, sampled_softmax: bool = False,
        width: int | None = None,
    ) -> None:
        """``num_items`` is ``len(vocab)``: the number of embedding rows including padding row 0;
        ``width`` is the item vectors' size (default ``cfg.hidden_size``)."""
        super().__init__()
        self.cfg = cfg
        self.num_items = num_items
        self.sampled_softmax = sampled_softmax
        self.item_emb = nn.Embedding(num_items, width or cfg.hidden_size, padding_idx=0)
        # One learned logit offset for items already in the context: catalogues where people never
        # re-consume (ratings) learn a large negative value, catalogues with repeat purchases a
        # positive one (the repeat/explore split of RepeatNet, reduced to a scalar).
        self.repeat_bias = nn.Parameter(torch.zeros(())) if repeat_bias else None
        # Training-set interaction counts: the ranking for users without history, and q for logQ.
        self.register_buffer("popularity", torch.zeros(num_items))

    def set_popularity(self, counts: torch.Tensor | np.ndarray) -> None:
        """Store per-index interaction counts (length ``num_items``; index 0 is ignored)."""
        counts = torch.as_tensor(np.asarray(counts), dtype=torch.float32)
        self.popularity.copy_(counts.to(self.popularity.device))

    def item_rows(self, lo: int, hi: int) -> torch.Tensor:
        """Output vectors (hi - lo, C) of item indices ``[lo, hi)``, tied to the input embeddings."""
        return self.item_emb.weight[lo:hi]

    def item_vectors(self) -> torch.Tensor:
        """Output item vectors (V, C) of the whole vocabulary."""
        return self.item_rows(0, self.num_items)

    def score(self, h: torch.Tensor) -> torch.Tensor:
        """Logits over the catalogue for hidden states (..., C) -> (..., V); padding gets -inf."""
        logits = h @ self.item_vectors().t()
        logits[..., 0] = float("-inf")
        return logits

    def _logits(
        self, h: torch.Tensor, items: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``score`` plus the repeat bias; ``h`` is (B, T, C), or (N, C) at the ``valid`` (B, T) cells."""
        logits = self.score(h)
        if self.repeat_bias is None:
            return logits
        seen = seen_so_far(items, self.num_items)  # (B, T, V)
        return logits + self.repeat_bias * (seen if valid is None else seen[valid])

    def forward(
        self,
        items: torch.Tensor,
        event_types: torch.Tensor | None = None,
        time_gaps: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Without targets: logits (B, T, V). With targets: (logits (N, V), mean next-item loss).

        With targets, logits are computed only at the N non-padding target positions (row-major order),
        which saves the work on padding. With ``sampled_softmax`` the loss is a sampled softmax and no
        full logits are materialised (``logits`` is None).
        """
        h = self.hidden(items, event_types, time_gaps)  # (B, T, C)
        if targets is None:
            return self._logits(h, items), None  # (B, T, V)
        if self.sampled_softmax:
            return None, sampled_softmax_loss(
                h, targets, self.item_vectors(), self.popularity, num_negatives=self.cfg.num_negatives,
                items=items, repeat_bias=self.repeat_bias,
            )
        valid = targets != 0  # (B, T)
        logits = self._logits(h[valid], items, valid)  # (N, V)
        return logits, F.cross_entropy(logits.float(), targets[valid])

    def last_hidden(
        self,
        items: torch.Tensor,
        event_types: torch.Tensor | None,
        time_gaps: torch.Tensor | None,
        lengths: torch.Tensor,
    ) -> torch.Tensor:
        """Hidden state (B, C) after each right-padded history of ``lengths`` real items."""
        h = self.hidden(items, event_types, time_gaps)  # (B, T, C)
        return h[torch.arange(len(items), device=items.device), (lengths - 1).clamp_min(0)]  # (B, C)

    def score_items(self, h_last: torch.Tensor, items: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """Next-item scores (B, hi - lo) of item indices ``[lo, hi)``, repeat bias included.

        Scoring a catalogue slice at a time keeps memory at (B, hi - lo) whatever the catalogue size;
        the slices of one history together equal ``next_item_scores``.
        """
        scores = h_last.float() @ self.item_rows(lo, hi).float().t()  # (B, n)
        if self.repeat_bias is not None:
            # Only the (b, item) cells of the histories change: no (B, n) temporaries. An item twice
            # in a history writes the same value twice, so it gets the bias once.
            rows, cols = ((items >= lo) & (items < hi) & (items > 0)).nonzero(as_tuple=True)
            cells = (rows, items[rows, cols] - lo)
            scores.index_put_(cells, scores[cells] + self.repeat_bias.float())
        if lo == 0:
            scores[:, 0] = float("-inf")
        return scores

    def next_item_scores(
        self,
        items: torch.Tensor,
        event_types: torch.Tensor | None,
        time_gaps: torch.Tensor | None,
        lengths: torch.Tensor,
    ) -> torch.Tensor:
        """Scores (B, V) of the item after each right-padded history of ``lengths`` real items."""
        h_last = self.last_hidden(items, event_types, time_gaps, lengths)  # (B, C)
        return self.score_items(h_last, items, 0, self.num_items)  # (B, V)


class SeqRecModel(TiedItemOutput):
    """Next-item prediction with a causal transformer; logits tied to the item embeddings."""

    def __init__(self, cfg: ModelConfig, num_items: int) -> None:
        # ``auto`` starts on the full softmax; ``train_model`` decides from the cost of a step.
        sampled = cfg.loss == "sampled" or (
            cfg.loss == "auto" and cfg.sampled_softmax_above is not None and num_items - 1 > cfg.sampled_softmax_above
        )
        super().__init__(cfg, num_items, repeat_bias=cfg.repeat_bias, sampled_softmax=sampled)
        d = cfg.hidden_size
        self.type_emb = nn.Embedding(NUM_EVENT_TYPES, d, padding_idx=0) if cfg.use_event_types else None
        self.gap_emb = nn.Embedding(cfg.time_gap_buckets + 1, d, padding_idx=0) if cfg.use_time_gaps else None
        # GPT-2 applies its own dropout to the summed input embeddings; Llama has none, so we add it.
        self.emb_drop = nn.Dropout(cfg.dropout) if cfg.architecture == "llama" else nn.Identity()
        self.decoder = _transformer_stack(cfg)
        init_embeddings(self.item_emb, self.type_emb, self.gap_emb)

    def hidden(
        self, items: torch.Tensor,
        event_types: torch.Tensor | None = None, time_gaps: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Hidden state at every position: (B, T) -> (B, T, C)."""
        x = self.item_emb(items)  # (B, T, C)
        if self.type_emb is not None and event_types is not None:
            x = x + self.type_emb(event_types)
        if self.gap_emb is not None and time_gaps is not None:
            x = x + self.gap_emb(time_gaps)
        x = self.emb_drop(x)
        # Right padding: real positions are 0..len-1 and, under the causal mask, never attend to the
        # padding after them. So no padding mask is needed, which keeps SDPA on its fused causal
        # kernel (an explicit mask forces the slow math path on CPU); outputs at padding positions
        # are garbage that the loss ignores and ``recommend`` never reads.
        positions = torch.arange(items.shape[1], device=items.device).unsqueeze(0).expand_as(items)
        out = self.decoder(inputs_embeds=x, position_ids=positions, use_cache=False)
        return out.last_hidden_state  # (B, T, C)


def seen_so_far(items: torch.Tensor, num_items: int) -> torch.Tensor:
    """(B, T) -> (B, T, V): 1.0 where item v occurs in ``items[b, :t + 1]`` (padding column stays 0)."""
    onehot = torch.zeros(*items.shape, num_items, device=items.device)
    onehot.scatter_(2, items.unsqueeze(-1), 1.0)
    seen = onehot.cumsum(dim=1).clamp_max_(1.0)
    seen[..., 0] = 0.0
    return seen


def make_batch(
    items: list[np.ndarray],
    event_types: list[np.ndarray] | None,
    timestamps: list[np.ndarray] | None,
    *,
    max_len: int,
    num_gap_buckets: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded model inputs from the last ``max_len`` events of each sequence.

    Returns ``items`` (B, T), ``event_types`` (B, T), ``time_gaps`` (B, T) and ``lengths`` (B,), with
    ``T = min(max_len, longest sequence)`` (at least 1). Gaps are computed before truncation, so the
    first kept event still sees its real gap.
    """
    lengths = np.array([min(len(s), max_len) for s in items], dtype=np.int64)
    width = max(1, int(lengths.max(initial=0)))
    out_items = np.zeros((len(items), width), dtype=np.int64)
    out_types = np.zeros_like(out_items)
    out_gaps = np.zeros_like(out_items)
    for b, n in enumerate(lengths):
        if n == 0:
            continue
        out_items[b, :n] = items[b][-n:]
        if event_types is not None:
            out_types[b, :n] = event_types[b][-n:]
        if timestamps is not None:
            out_gaps[b, :n] = time_gap_buckets(timestamps[b], num_gap_buckets)[-n:]
    return (
        torch.from_numpy(out_items),
        torch.from_numpy(out_types),
        torch.from_numpy(out_gaps),
        torch.from_numpy(lengths),
    )


__all__ = [
    "NUM_EVENT_TYPES",
    "SeqRecModel",
    "TiedItemOutput",
    "init_embeddings",
    "make_batch",
    "sampled_softmax_loss",
    "seen_so_far",
    "time_gap_buckets",
]
