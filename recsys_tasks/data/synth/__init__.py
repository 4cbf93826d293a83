"""Synthetic behaviour data for demos, tests and benchmarks.

``generate`` returns canonical events and items frames (``sequences.EVENT_COLUMNS``,
``sequences.ITEM_COLUMNS``) with the structure a sequential recommender should find:

* item popularity is Zipf-like, so most-popular is a fair baseline;
* each user has 1-3 category interests, and one of them drifts to a new category at a per-user
  time (blended in over a week), so recent behaviour matters more than old behaviour;
* users come back in sessions (minutes between events inside one, hours to days between them);
* inside a session the next viewed item mostly follows a latent successor structure — each item
  has three fixed successors in its own category — so the previous item predicts the next one far
  better than popularity does;
* every view may go down the funnel click -> add_to_cart -> purchase (value = price), and some
  purchases are rated (value 1..5) one to four days later, outside any session (session_id NULL);
  sessions may open with a search (item_id NULL, query = category words).

The pieces: ``catalogue`` (categories, items, successors), ``sessions`` (users, interests, session
walks and funnels), ``events`` (the canonical events frame) and ``cli``
(``python -m recsys_tasks.cli synth --url URL``: generate, then bulk load with ``sources.load``).
"""

from __future__ import annotations

import logging
from datetime import datetime

import numpy as np
import pandas as pd

from recsys_tasks.data.sequences import EVENT_COLUMNS
from recsys_tasks.data.synth.catalogue import CATEGORIES, items_frame, make_catalogue
from recsys_tasks.data.synth.events import make_events
from recsys_tasks.data.synth.sessions import make_sessions, make_users
from recsys_tasks.timeutil import utc

logger = logging.getLogger(__name__)


def generate(
    *,
    n_users: int,
    n_items: int,
    start: datetime,
    end: datetime,
    events_per_user_per_day: float,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Canonical ``(events, items)`` frames of synthetic behaviour in ``[start, end)``, same seed -> same frames."""
    if n_users < 1 or n_items < 1:
        raise ValueError("n_users and n_items must be at least 1")
    if events_per_user_per_day <= 0:
        raise ValueError("events_per_user_per_day must be positive")
    start_ts, end_ts = utc(start), utc(end)
    if end_ts <= start_ts:
        raise ValueError(f"end ({end_ts}) must be after start ({start_ts})")
    rng = np.random.default_rng(seed)
    span_s = (end_ts - start_ts).total_seconds()

    # one generator drawn in a fixed order: reordering these calls changes every frame of a seed
    catalogue = make_catalogue(rng, n_items, span_s)
    users = make_users(rng, n_users, catalogue, span_s)
    sessions = make_sessions(rng, users, catalogue, span_s, events_per_user_per_day)
    events = make_events(rng, sessions, catalogue, users, start_ts, span_s)
    items = items_frame(rng, catalogue, start_ts)
    logger.info(
        "generated %d events (%d sessions) for %d users over %d items in %d categories",
        len(events), len(sessions.user), n_users, n_items, len(catalogue.categories),
    )
    return events, items


# EVENT_COLUMNS: the frame contract, re-exported because callers build empty event frames through synth.
__all__ = ["CATEGORIES", "EVENT_COLUMNS", "generate"]
