"""A sparse shop: a large catalogue and short histories, the regime where full softmax gets dear.

    python -m recsys_tasks.data.synth.sparse --out sparse_shop.inter   # then: bench --data it

Defaults: 30,000 users, 25,000 items, 5-15 events per user (uniform), Zipf item popularity. Every
item belongs to one of ``n_topics`` topics and has three fixed successors, drawn uniformly from its
topic; a user
keeps to one topic, and the next item is a successor of the previous one (``p_successor``), a
popular item of the user's topic, or a popular item of the whole shop. So the previous item and the
user's topic predict the next item far better than popularity does, while most items are rare.
Same seed, same frame. Unlike ``generate`` (warehouse events frames with funnels and sessions), this
writes only (user, item, timestamp) interactions, the leave-one-out benchmark's input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def _zipf_weights(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """(n,) probabilities ~ 1 / rank^exponent over a random order of the n entries."""
    w = 1.0 / np.arange(1, n + 1) ** exponent
    return rng.permutation(w / w.sum())


def sparse_shop(
    *,
    n_users: int = 30_000,
    n_items: int = 25_000,
    min_events: int = 5,
    max_events: int = 15,
    n_topics: int = 500,
    zipf: float = 1.0,
    p_successor: float = 0.6,
    p_topic: float = 0.25,
    seed: int = 0,
) -> pd.DataFrame:
    """Interactions ``user``, ``item`` (strings) and ``ts`` (unix seconds), time-ordered per user."""
    if not 1 <= min_events <= max_events:
        raise ValueError(f"need 1 <= min_events <= max_events, got {min_events}, {max_events}")
    rng = np.random.default_rng(seed)
    pop = _zipf_weights(rng, n_items, zipf)  # (I,)
    topic = rng.choice(n_topics, size=n_items)  # (I,)
    by_topic = [np.flatnonzero(topic == t) for t in range(n_topics)]
    cum_in_topic = [np.cumsum(pop[m]) / pop[m].sum() if len(m) else m for m in by_topic]
    # Successors are uniform within the topic, so the walk reaches the long tail.
    uniform = [np.arange(1, len(m) + 1) / len(m) if len(m) else m for m in by_topic]
    successors = np.stack([_draw_in_topic(rng, by_topic, uniform, topic) for _ in range(3)], axis=1)

    topic_pop = np.bincount(topic, weights=pop, minlength=n_topics)
    user_topic = rng.choice(n_topics, size=n_users, p=topic_pop / topic_pop.sum())  # (U,)
    lengths = rng.integers(min_events, max_events + 1, size=n_users)  # (U,)
    seq = np.zeros((n_users, max_events), dtype=np.int64)
    seq[:, 0] = _draw_in_topic(rng, by_topic, cum_in_topic, user_topic)
    for t in range(1, max_events):
        u = rng.random(n_users)
        follow = successors[seq[:, t - 1], rng.integers(0, 3, size=n_users)]
        in_topic = _draw_in_topic(rng, by_topic, cum_in_topic, user_topic)
        anywhere = rng.choice(n_items, size=n_users, p=pop)
        seq[:, t] = np.where(u < p_successor, follow, np.where(u < p_successor + p_topic, in_topic, anywhere))
    mask = np.arange(max_events)[None, :] < lengths[:, None]  # (U, max_events)
    users = np.repeat(np.arange(n_users), lengths)
    gaps = rng.exponential(3600.0, size=mask.sum()).astype(np.int64) + 1
    start = 1_700_000_000 + rng.integers(0, 30 * 86_400, size=n_users)
    ts = start[users] + _cumsum_per_user(gaps, lengths)
    return pd.DataFrame({"user": users.astype(str), "item": seq[mask].astype(str), "ts": ts})


def _draw_in_topic(
    rng: np.random.Generator, by_topic: list[np.ndarray], cum: list[np.ndarray], topics: np.ndarray
) -> np.ndarray:
    """One item of each entry's topic, drawn by the topic's cumulative weights ``cum`` (an empty topic
    yields item 0)."""
    out = np.zeros(len(topics), dtype=np.int64)
    draws = rng.random(len(topics))
    for t in np.unique(topics):
        rows = np.flatnonzero(topics == t)
        if len(by_topic[t]):
            pick = np.searchsorted(cum[t], draws[rows], side="right").clip(max=len(by_topic[t]) - 1)
            out[rows] = by_topic[t][pick]
    return out


def _cumsum_per_user(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Running sums of ``values`` restarting at each user's first event."""
    total = np.cumsum(values)
    firsts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    before = np.repeat(total[firsts] - values[firsts], lengths)
    return total - before


def write_inter(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` as a RecBole ``.inter`` file (``python -m recsys_tasks.bench --format recbole``)."""
    out = frame.rename(columns={"user": "user_id:token", "item": "item_id:token", "ts": "timestamp:float"})
    out.to_csv(path, sep="\t", index=False)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m recsys_tasks.data.synth.sparse", description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--users", type=int, default=30_000)
    p.add_argument("--items", type=int, default=25_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    write_inter(sparse_shop(n_users=args.users, n_items=args.items, seed=args.seed), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
