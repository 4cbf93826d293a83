"""The model registry: immutable versions, exactly one champion (enforced by the database), stored artifacts."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from recsys_tasks import registry
from recsys_tasks.data import warehouse
from recsys_tasks.data.warehouse import ensure_output_schema
from recsys_tasks.registry import RegistryError
from recsys_tasks.storage import ArtifactStore


@pytest.fixture
def reg(pg_engine, pg_schema) -> tuple[sa.Engine, str]:
    ensure_output_schema(pg_engine, pg_schema)
    return pg_engine, pg_schema


def _register(engine: sa.Engine, schema: str, version: str, *, parent: str | None = None, day: int = 5, **over):
    fields = dict(
        model_version=version,
        parent_version=parent,
        kind="sasrec",
        dag_id="recsys_nightly",
        run_id=f"run-{version}",
        as_of=date(2026, 1, day),
        data_start=datetime(2025, 12, day, tzinfo=UTC),
        data_end=datetime(2026, 1, day, tzinfo=UTC),
        artifact_uri=f"/models/{version}",
        checksum=f"sha-{version}",
        config={"hidden_size": 64},
    )
    fields.update(over)
    return registry.register_model(engine, schema, **fields)


def _statuses(engine: sa.Engine, schema: str) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text(f'SELECT model_version, status FROM "{schema}".model_registry')).all())


def test_register_is_idempotent_and_a_version_is_immutable(reg):
    engine, schema = reg
    first = _register(engine, schema, "m1", metrics={"ndcg@10": 0.25}, holdout_users=40)
    assert first.status == "candidate"
    assert first.as_of == date(2026, 1, 5)
    assert first.data_end == datetime(2026, 1, 5, tzinfo=UTC)
    assert first.config == {"hidden_size": 64} and first.metrics == {"ndcg@10": 0.25}
    # Registering again (a task retry), even with other fields, changes nothing.
    again = _register(engine, schema, "m1", checksum="something-else", config={"hidden_size": 8})
    assert again == first
    with engine.connect() as conn:
        assert conn.execute(sa.text(f'SELECT count(*) FROM "{schema}".model_registry')).scalar() == 1


def test_no_champion_before_the_first_promotion(reg):
    engine, schema = reg
    assert registry.get_champion(engine, schema) is None
    _register(engine, schema, "m1")
    assert registry.get_champion(engine, schema) is None


def test_promote_makes_exactly_one_champion_and_retires_the_previous(reg):
    engine, schema = reg
    _register(engine, schema, "m1")
    _register(engine, schema, "m2", parent="m1", day=6)
    _register(engine, schema, "m3", parent="m2", day=7)
    registry.promote(engine, schema, "m1", decision="first model")
    assert _statuses(engine, schema) == {"m1": "champion", "m2": "candidate", "m3": "candidate"}
    registry.promote(engine, schema, "m2", decision="ndcg up 5%")
    assert _statuses(engine, schema) == {"m1": "retired", "m2": "champion", "m3": "candidate"}
    champion = registry.get_champion(engine, schema)
    assert champion.model_version == "m2" and champion.decision == "ndcg up 5%" and champion.parent_version == "m1"
    assert registry.get_model(engine, schema, "m1").decision == "replaced by m2"
    # Promoting the champion again is a no-op (its decision is kept).
    registry.promote(engine, schema, "m2", decision="again")
    assert registry.get_champion(engine, schema).decision == "ndcg up 5%"
    with engine.connect() as conn:
        assert conn.execute(sa.text(f'SELECT count(*) FROM "{schema}".champion')).scalar() == 1
    with pytest.raises(RegistryError, match="'nope' is not in"):
        registry.promote(engine, schema, "nope", decision="x")
    assert _statuses(engine, schema) == {"m1": "retired", "m2": "champion", "m3": "candidate"}


def test_the_database_rejects_a_second_champion(reg):
    engine, schema = reg
    _register(engine, schema, "m1")
    _register(engine, schema, "m2", day=6)
    registry.promote(engine, schema, "m1", decision="first model")
    with pytest.raises(sa.exc.IntegrityError, match="model_registry_one_champion"):
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE \"{schema}\".model_registry SET status = 'champion' WHERE model_version = 'm2'"))
    assert _statuses(engine, schema) == {"m1": "champion", "m2": "candidate"}


def test_set_status_refuses_to_touch_the_champion(reg):
    engine, schema = reg
    _register(engine, schema, "m1")
    _register(engine, schema, "m2", day=6)
    registry.promote(engine, schema, "m1", decision="first model")
    with pytest.raises(RegistryError, match="m1 is the champion"):
        registry.set_status(engine, schema, "m1", "rejected", decision="oops")
    with pytest.raises(RegistryError, match="use promote"):
        registry.set_status(engine, schema, "m2", "champion", decision="sneaky")
    with pytest.raises(RegistryError, match="cannot be set directly"):
        registry.set_status(engine, schema, "m2", "deleted", decision="typo")
    assert _statuses(engine, schema) == {"m1": "champion", "m2": "candidate"}
    registry.set_status(engine, schema, "m2", "rejected", decision="lost to champion")
    record = registry.get_model(engine, schema, "m2")
    assert (record.status, record.decision) == ("rejected", "lost to champion")


def test_registry_on_sqlite(sqlite_url):
    engine = warehouse.create_engine(sqlite_url)
    try:
        ensure_output_schema(engine, "recsys")
        first = _register(engine, "recsys", "m1")
        assert _register(engine, "recsys", "m1") == first
        assert first.data_end == datetime(2026, 1, 5, tzinfo=UTC) and first.as_of == date(2026, 1, 5)
        _register(engine, "recsys", "m2", day=6)
        assert registry.get_champion(engine, "recsys") is None
        registry.promote(engine, "recsys", "m1", decision="first")
        registry.promote(engine, "recsys", "m2", decision="better")
        assert _statuses(engine, "recsys") == {"m1": "retired", "m2": "champion"}
        assert registry.get_champion(engine, "recsys").model_version == "m2"
        with pytest.raises(sa.exc.IntegrityError):
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE recsys.model_registry SET status = 'champion' WHERE model_version = 'm1'"))
        with pytest.raises(RegistryError):
            registry.set_status(engine, "recsys", "m2", "retired", decision="no")
        assert [m.model_version for m in registry.list_models(engine, "recsys")] == ["m2", "m1"]
    finally:
        engine.dispose()


def test_store_model_copies_top_level_files_with_a_stable_checksum(tmp_path):
    trained = tmp_path / "run" / "model"
    (trained / "checkpoints").mkdir(parents=True)
    (trained / "model.safetensors").write_bytes(b"\x00\x01weights")
    (trained / "sidecar.json").write_text('{"vocab": ["a", "b"]}')
    (trained / "checkpoints" / "step_100.pt").write_bytes(b"resume state")
    root = tmp_path / "artifacts"
    store = ArtifactStore(str(root))

    uri, checksum = registry.store_model(trained, store, "m1")
    final = Path(uri)
    assert final == root / "models" / "m1"
    assert sorted(p.relative_to(final).as_posix() for p in final.rglob("*")) == ["model.safetensors", "sidecar.json"]
    assert (final / "model.safetensors").read_bytes() == b"\x00\x01weights"
    assert not (root / "models" / "m1.partial").exists()
    assert checksum == registry.directory_checksum(final)
    assert len(checksum) == 64

    # Storing again (a retry) gives the same checksum; a change in the weights changes it.
    assert registry.store_model(trained, store, "m1") == (uri, checksum)
    (trained / "checkpoints" / "step_200.pt").write_bytes(b"more resume state")
    assert registry.store_model(trained, store, "m1")[1] == checksum
    (trained / "model.safetensors").write_bytes(b"\x00\x02weights")
    assert registry.store_model(trained, store, "m1")[1] != checksum
    # Renaming a file changes the checksum too (names are hashed, not only bytes).
    other = tmp_path / "other"
    other.mkdir()
    (other / "weights.safetensors").write_bytes(b"\x00\x01weights")
    (other / "sidecar.json").write_text('{"vocab": ["a", "b"]}')
    assert registry.store_model(other, store, "m2")[1] != checksum


def test_store_model_replaces_a_leftover_directory(tmp_path):
    trained = tmp_path / "model"
    trained.mkdir()
    (trained / "model.safetensors").write_bytes(b"w")
    leftover = tmp_path / "root" / "models" / "m1"
    leftover.mkdir(parents=True)
    (leftover / "stale.bin").write_bytes(b"from a killed attempt")
    final, _ = registry.store_model(trained, ArtifactStore(str(tmp_path / "root")), "m1")
    assert sorted(p.name for p in Path(final).iterdir()) == ["model.safetensors"]
