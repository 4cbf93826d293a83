"""The champion timeline: which version publishes which as-of date, on both dialects.

Promotions for the newest date move the champion; a promotion for an older date (a backfill)
only inserts a period into the past, so the current champion never changes and every date is
published by a model trained for that date or earlier.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from recsys_tasks import registry
from recsys_tasks.data import publication
from recsys_tasks.registry import RegistryError

D = {n: date(2026, 1, n) for n in range(1, 9)}


def _register(engine: sa.Engine, schema: str, version: str, day: int) -> None:
    registry.register_model(
        engine, schema, model_version=version, parent_version=None, kind="transformer", dag_id="recsys_retrain",
        run_id=f"run-{version}", as_of=D[day], data_start=datetime(2025, 12, 1, tzinfo=UTC),
        data_end=datetime(2026, 1, day - 1, 12, tzinfo=UTC) if day > 1 else datetime(2025, 12, 31, 12, tzinfo=UTC),
        artifact_uri=f"/models/{version}", checksum="x", config={},
    )


def _at(engine: sa.Engine, schema: str, day: date) -> str | None:
    record = registry.champion_at(engine, schema, day)
    return record.model_version if record else None


def test_a_backfill_promotion_changes_the_past_only(output_db):
    engine, schema = output_db
    for version, day in (("m1", 1), ("m2", 3), ("m5", 5), ("m0", 4)):
        _register(engine, schema, version, day)
    registry.promote(engine, schema, "m1", decision="first model", as_of=D[1])
    registry.promote(engine, schema, "m5", decision="better", as_of=D[5])
    assert registry.get_champion(engine, schema).model_version == "m5"
    assert [_at(engine, schema, D[n]) for n in range(1, 8)] == ["m1", "m1", "m1", "m1", "m5", "m5", "m5"]
    assert registry.champion_before(engine, schema, D[5]).model_version == "m1"  # what the run of D5 was judged against

    # A backfill of D3 promotes m2 into [D3, D5): the current champion stays m5.
    registry.promote(engine, schema, "m2", decision="beats m1", as_of=D[3])
    assert registry.get_champion(engine, schema).model_version == "m5"
    assert [_at(engine, schema, D[n]) for n in range(1, 8)] == ["m1", "m1", "m2", "m2", "m5", "m5", "m5"]
    assert registry.champion_before(engine, schema, D[4]).model_version == "m2"
    m2 = registry.get_model(engine, schema, "m2")
    assert m2.status == "retired" and m2.decision.startswith("champion of as-of [2026-01-03, 2026-01-05) by a backfill")
    assert [(p.champion_from, p.champion_to, p.model_version) for p in registry.champion_timeline(engine, schema)] == [
        (D[1], D[3], "m1"), (D[3], D[5], "m2"), (D[5], None, "m5"),
    ]
    # Promoting the same version for the same date again (a rerun) changes nothing.
    before = registry.champion_timeline(engine, schema)
    registry.promote(engine, schema, "m2", decision="rerun", as_of=D[3])
    assert registry.champion_timeline(engine, schema) == before
    # A model trained for D4 can never publish D3: that would use data from after D3's cutoff.
    with pytest.raises(RegistryError, match="cannot be champion of the earlier date 2026-01-03"):
        registry.promote(engine, schema, "m0", decision="x", as_of=D[3])
    assert _at(engine, schema, D[3]) == "m2"


def test_a_rollback_starts_at_the_newest_publication(output_db):
    engine, schema = output_db
    for version, day in (("m1", 1), ("m2", 3)):
        _register(engine, schema, version, day)
    registry.promote(engine, schema, "m1", decision="first model", as_of=D[1])
    registry.promote(engine, schema, "m2", decision="better", as_of=D[3])
    row = publication.RecommendationRow(D[6], "u1", 1, "i1", 0.5, "m2", "r6", None, datetime(2026, 1, 6, 3, tzinfo=UTC))
    publication.write_publication(engine, schema, [row], as_of=D[6], run_id="r6", model_version="m2", top_k=1)
    registry.promote(engine, schema, "m1", decision="rollback")  # no date: an operator's rollback
    assert registry.get_champion(engine, schema).model_version == "m1"
    # The dates published before the rollback keep their model; the newest one is republished with m1.
    assert [_at(engine, schema, D[n]) for n in (1, 3, 5, 6, 7)] == ["m1", "m2", "m2", "m1", "m1"]
    registry.promote(engine, schema, "m1", decision="rollback again")  # already champion: nothing changes
    assert len(registry.champion_timeline(engine, schema)) == 3
