"""What the offline benchmark reads: interactions (RecBole ``.inter`` or SASRec ``.txt``) and item text
(a RecBole ``.item`` file), turned into the sequences and texts that ``recsys_tasks.bench`` trains on.

An ``.item`` file is tab-separated with a typed header, e.g. ML-100K's
``item_id:token  movie_title:token_seq  release_year:token  class:token_seq``. The text of an item is
``item_text(title, category)``: the title is the first ``token_seq`` column named like a title or a
name (else the first other ``token_seq`` column), followed by `` (year)`` where a column named like a
year holds digits; the category joins the tokens of the columns named like a class, category or genre
with ", ". So ML-100K's item 1 reads ``"Toy Story (1995) | Animation, Children's, Comedy"``.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_tasks.config import EVENT_TYPES
from recsys_tasks.data.sequences import EVENT_TYPE_IDS, ItemVocab, SequenceData
from recsys_tasks.modeling.text import item_text

_TITLE_WORDS = ("title", "name")
_CATEGORY_WORDS = ("class", "category", "genre")


class BenchDataError(ValueError):
    """The benchmark file cannot be read in the given format; the message says what was expected."""


def read_interactions(path: Path, fmt: str) -> pd.DataFrame:
    """A frame with columns user, item (strings) and ts (int), in file order."""
    path = Path(path)
    if not path.is_file():
        raise BenchDataError(f"{path} does not exist; pass --data pointing at a .inter or SASRec .txt file")
    if fmt == "recbole":
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        frame.columns = [c.split(":", 1)[0] for c in frame.columns]
        if not {"user_id", "item_id"} <= set(frame.columns):
            raise BenchDataError(f"{path}: a RecBole .inter header needs user_id:token and item_id:token")
        has_ts = "timestamp" in frame
        ts = frame["timestamp"].astype(float).astype(np.int64) if has_ts else np.arange(len(frame))
        return pd.DataFrame({"user": frame["user_id"], "item": frame["item_id"], "ts": ts})
    if fmt == "sasrec":
        frame = pd.read_csv(path, sep=r"\s+", header=None, names=["user", "item"], dtype=str, usecols=[0, 1])
        return frame.assign(ts=np.arange(len(frame), dtype=np.int64))
    raise BenchDataError(f"--format {fmt!r}: use recbole or sasrec")


def item_file_for(data: Path) -> Path | None:
    """The ``.item`` file next to an interactions file (``x.inter`` -> ``x.item``), if there is one."""
    candidate = Path(data).with_suffix(".item")
    return candidate if candidate.is_file() else None


def read_item_texts(path: Path) -> dict[str, str]:
    """Item id -> ``"title (year) | category, category"`` from a RecBole ``.item`` file."""
    path = Path(path)
    if not path.is_file():
        raise BenchDataError(f"{path} does not exist; pass --items pointing at a RecBole .item file")
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    kinds = {name: kind for name, _, kind in (c.partition(":") for c in frame.columns)}
    frame.columns = list(kinds)
    title, year, categories = _text_columns(path, kinds)
    texts = {}
    for values in frame.to_dict("records"):
        name = values[title].strip() if title else ""
        if name and year and values[year].strip().isdigit():
            name = f"{name} ({values[year].strip()})"
        tokens: list[str] = []
        for c in categories:  # a token_seq value is space-separated tokens; a token value is one
            tokens += values[c].split() if kinds[c] == "token_seq" else [values[c].strip()]
        text = item_text(name or None, ", ".join(t for t in tokens if t) or None)
        if text:
            texts[values["item_id"]] = text
    return texts


def _text_columns(path: Path, kinds: dict[str, str]) -> tuple[str | None, str | None, list[str]]:
    """(title column, year column, category columns) of an ``.item`` header, by name and type."""
    if "item_id" not in kinds:
        raise BenchDataError(f"{path}: a RecBole .item header needs item_id:token; found {list(kinds)}")
    categories = [n for n in kinds if any(w in n.lower() for w in _CATEGORY_WORDS)]
    seqs = [n for n, kind in kinds.items() if kind == "token_seq" and n not in categories]
    titles = [n for n in seqs if any(w in n.lower() for w in _TITLE_WORDS)] or seqs
    if not titles and not categories:
        raise BenchDataError(
            f"{path}: no item text found; the header needs a title (a token_seq column such as "
            f"movie_title:token_seq) or a class/category/genre column; found {list(kinds)}"
        )
    years = [n for n in kinds if "year" in n.lower()]
    return (titles[0] if titles else None), (years[0] if years else None), categories


def to_sequences(frame: pd.DataFrame) -> tuple[SequenceData, ItemVocab]:
    """Time-ordered per-user sequences (ties keep file order) and the item vocabulary."""
    frame = frame.assign(row=np.arange(len(frame))).sort_values(["user", "ts", "row"], kind="stable")
    vocab = ItemVocab(pd.unique(frame["item"]))
    idx = vocab.encode(frame["item"].to_numpy())
    ts = frame["ts"].to_numpy(dtype=np.int64)
    users = frame["user"].to_numpy()
    bounds = np.flatnonzero(users[1:] != users[:-1]) + 1
    starts, ends = np.concatenate(([0], bounds)), np.concatenate((bounds, [len(users)]))
    rate = EVENT_TYPE_IDS[EVENT_TYPES[-1]]
    data = SequenceData([], [], [], [])
    for s, e in zip(starts, ends, strict=True):
        data.user_ids.append(str(users[s]))
        data.items.append(idx[s:e])
        data.event_types.append(np.full(e - s, rate, dtype=np.int64))
        data.timestamps.append(ts[s:e])
    return data, vocab


__all__ = ["BenchDataError", "item_file_for", "read_interactions", "read_item_texts", "to_sequences"]
