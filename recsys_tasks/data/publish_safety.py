"""What a publication must be before it may replace the previous one, and the errors of refusing it.

A broken run must not reach readers: a model with NaN or collapsed scores ranks nothing, so its
lists come out empty or one item long (the hourly refresh once replaced 24 users' 5-item lists by
1-item lists of score 0). The rows are checked while they stream into staging (:func:`checked_rows`)
and the totals once staged (:func:`check_shrink`); a refusal raises before anything is swapped, so
the previous publication stays as it was.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from recsys_tasks.config import PublishConfig
from recsys_tasks.sqlfiles import statement


class PublishError(RuntimeError):
    """A publication was refused or could not be swapped in; the previous publication is unchanged."""


class PublishInProgress(PublishError):
    """Another run holds the publisher lock of the same output schema, table and as-of date."""


class TableBusy(PublishError):
    """Readers held the published table for longer than the publish's lock tries allow."""


class UnsafePublication(PublishError):
    """The rows are not fit to publish: a non-finite score, an item outside the catalogue, a short list."""


class PublicationShrank(UnsafePublication):
    """The publication has far fewer users or rows than the previous one."""


@dataclass(frozen=True)
class PublishPolicy:
    """How a publish waits for locks and how much it may shrink (the ``publish`` config keys of those names)."""

    lock_timeout_ms: int
    lock_retries: int
    max_shrink_share: float
    allow_shrink: bool

    @classmethod
    def from_config(cls, cfg: PublishConfig | None = None, *, allow_shrink: bool | None = None) -> PublishPolicy:
        """The policy of ``cfg`` (default: the default config); ``allow_shrink`` (a run's param) overrides it."""
        cfg = cfg or PublishConfig()
        return cls(
            lock_timeout_ms=cfg.lock_timeout_ms,
            lock_retries=cfg.lock_retries,
            max_shrink_share=cfg.max_shrink_share,
            allow_shrink=cfg.allow_shrink if allow_shrink is None else allow_shrink,
        )


@dataclass(frozen=True)
class ListSpec:
    """What every user's published list must satisfy.

    ``need[user]`` is the shortest list the ranking can legitimately give that user:
    ``min(top_k, eligible[user])`` where ``eligible`` counts the items they may be recommended
    (``serving.eligibility.list_spec`` derives both from the ranking's rules). Every expected user
    (a key of ``need``) with ``need > 0`` must have rows; every item must be in ``catalogue``.
    """

    top_k: int
    catalogue: frozenset[str]
    need: Mapping[str, int]
    eligible: Mapping[str, int]


def checked_rows(rows: Iterable[Any], spec: ListSpec | None = None) -> Iterator[Any]:
    """Pass ``rows`` (grouped by their key, the second field) through, raising ``UnsafePublication`` at
    the first non-finite score (the ``score`` field) or, with ``spec``, a list that breaks it."""
    current: Any = None
    length = 0
    seen: set[str] = set()
    for row in rows:
        key, score = row[1], row.score  # recommendation rows and similar-item rows alike
        if not math.isfinite(score):
            raise UnsafePublication(
                f"the row of {key!r} at rank {row.rank} has score {score} (not finite): the model's scores are "
                "broken. Nothing was published; check the champion (rollback to a known-good version)."
            )
        if key != current:
            if spec is not None and current is not None:
                _check_length(spec, current, length)
            current, length = key, 0
            seen.add(key)
        length += 1
        if spec is not None and row.item_id not in spec.catalogue:
            raise UnsafePublication(
                f"user {key!r} would be recommended item {row.item_id!r}, which is not in the run's catalogue. "
                "Nothing was published; this is a bug in the ranking (it must rank catalogue items only)."
            )
        yield row
    if spec is None:
        return
    if current is not None:
        _check_length(spec, current, length)
    missing = [user for user, need in spec.need.items() if need > 0 and user not in seen]
    if missing:
        _check_length(spec, missing[0], 0, also=len(missing) - 1)


def _check_length(spec: ListSpec, user: str, length: int, *, also: int = 0) -> None:
    need = spec.need.get(user, 0)
    if length >= need:
        return
    others = f" (and {also} more users without any)" if also else ""
    raise UnsafePublication(
        f"user {user!r} has {length} recommendation(s){others} but min(top_k={spec.top_k}, "
        f"{spec.eligible.get(user, 0)} items they may be recommended) = {need} were expected: the model's scores "
        "look broken (NaN or -inf collapse the lists). Nothing was published and the previous lists are unchanged; "
        "check the champion (rollback to a known-good version)."
    )


def check_shrink(
    conn: sa.Connection, schema: str, *, as_of: date, users: int, rows: int, policy: PublishPolicy
) -> None:
    """Raise ``PublicationShrank`` when ``users`` or ``rows`` fall more than ``policy.max_shrink_share``
    below the publication of the newest as-of date before ``as_of`` (none: nothing to compare with)."""
    if policy.allow_shrink:
        return
    ref = conn.execute(statement("select_shrink_reference", schema=schema), {"as_of": as_of.isoformat()}).first()
    if ref is None:
        return
    keep = 1.0 - policy.max_shrink_share
    if users >= keep * int(ref.users) and rows >= keep * int(ref.rows):
        return
    raise PublicationShrank(
        f"the publication of {as_of} would have {users} users and {rows} rows, down from {ref.users} users and "
        f"{ref.rows} rows in the publication of {str(ref.as_of)[:10]}: more than publish.max_shrink_share="
        f"{policy.max_shrink_share:.0%} smaller. Nothing was published; the previous publication is unchanged. "
        "If the shrink is expected (a smaller catalogue or audience), rerun with publish.allow_shrink=true."
    )


def check_replaced(*, as_of: date, rows: int, old_rows: int, old_users: int, policy: PublishPolicy) -> None:
    """Raise ``PublicationShrank`` when a refresh would replace its users' ``old_rows`` with far fewer ``rows``."""
    if policy.allow_shrink or rows >= (1.0 - policy.max_shrink_share) * old_rows:
        return
    raise PublicationShrank(
        f"the refresh would replace {old_rows} rows of {old_users} users in the publication of {as_of} with {rows} "
        f"rows: more than publish.max_shrink_share={policy.max_shrink_share:.0%} fewer. Nothing was replaced; the "
        "published lists are unchanged. Check the champion, or set publish.allow_shrink=true if this is expected."
    )
