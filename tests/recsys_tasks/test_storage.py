"""The artifact store on a local directory and on a real S3-compatible server (moto, on 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys_tasks import registry
from recsys_tasks.config import ConfigError, RecsysConfig
from recsys_tasks.storage import ArtifactStore, read_parquet


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> ArtifactStore:
    if request.param == "local":
        return ArtifactStore(str(tmp_path / "artifacts"))
    s3 = request.getfixturevalue("s3_root")
    return ArtifactStore(s3["artifact_root"], storage_options=s3["artifact_storage_options"], cache_dir=str(tmp_path / "cache"))


def test_a_write_appears_whole_or_not_at_all(store):
    target = store.root / "run" / "report.html"
    with pytest.raises(RuntimeError, match="killed"):
        with store.writing(target) as tmp:
            tmp.write_text("half a report")
            raise RuntimeError("killed mid-write")
    assert not target.exists()
    store.write_text(target, "<html>whole</html>")
    assert target.read_text() == "<html>whole</html>"
    assert [p.name for p in target.parent.iterdir()] == ["report.html"], "no temporary file is left behind"


def test_trees_round_trip_and_parquet_reads_from_the_store(store, tmp_path):
    src = tmp_path / "docs"
    (src / "validations").mkdir(parents=True)
    (src / "index.html").write_text("index")
    (src / "validations" / "v1.html").write_text("v1")
    target = store.root / "run" / "data_docs"
    store.put_tree(src, target)
    back = tmp_path / "back"
    store.get_tree(target, back)
    assert sorted(p.relative_to(back).as_posix() for p in back.rglob("*") if p.is_file()) == ["index.html", "validations/v1.html"]

    table = pa.table({"user_id": ["007", "u2"], "value": [1.5, None]})
    with store.writing(store.root / "run" / "events.parquet") as tmp:
        pq.write_table(table, tmp)
    uri = ArtifactStore.uri(store.root / "run" / "events.parquet")
    assert read_parquet(store.path(uri)).equals(table), "a URI handed between tasks reads back the same table"

    store.remove(store.root / "run")
    assert not (store.root / "run").exists()


def test_a_model_in_the_store_is_verified_and_cached_on_load(store, tmp_path, pg_engine, pg_schema):
    trained = tmp_path / "trained"
    trained.mkdir()
    (trained / "model.safetensors").write_bytes(b"\x00weights" * 100)
    (trained / "model.json").write_text('{"kind": "transformer"}')
    uri, checksum = registry.store_model(trained, store, "m1")
    assert uri == str(store.root / "models" / "m1")
    record = _registered(pg_engine, pg_schema, uri, checksum)

    local = record.verified_dir(store)
    assert (local / "model.safetensors").read_bytes() == b"\x00weights" * 100
    assert registry.directory_checksum(local) == checksum

    # A flipped byte in the store (or the cache) is caught before anything uses the model.
    if not store.local:
        (local / "model.safetensors").write_bytes(b"\x01weights" * 100)  # a damaged cached copy is fetched again
        assert registry.directory_checksum(record.verified_dir(store)) == checksum
        fresh = ArtifactStore(str(store.root), storage_options=store.storage_options, cache_dir=str(tmp_path / "host2"))
        store.write_text(store.root / "models" / "m1" / "model.json", '{"kind": "edited"}')
        with pytest.raises(registry.ModelIntegrityError, match="do not match the registry"):
            record.verified_dir(fresh)
    store.remove(store.root / "models" / "m1")
    with pytest.raises(registry.ModelIntegrityError, match="the directory is missing"):
        record.verified_dir(ArtifactStore(str(store.root), storage_options=store.storage_options, cache_dir=str(tmp_path / "h3")))


def _registered(engine, schema, uri: str, checksum: str) -> registry.ModelRecord:
    from datetime import date, datetime, timezone

    from recsys_tasks.data.warehouse import ensure_output_schema

    ensure_output_schema(engine, schema)
    return registry.register_model(
        engine, schema, model_version="m1", parent_version=None, kind="transformer", dag_id="d", run_id="r",
        as_of=date(2026, 1, 2), data_start=datetime(2026, 1, 1, tzinfo=timezone.utc),
        data_end=datetime(2026, 1, 2, tzinfo=timezone.utc), artifact_uri=uri, checksum=checksum, config={},
    )


def test_an_unknown_storage_protocol_is_refused_at_configuration_time():
    with pytest.raises(ConfigError, match="artifact_root.*nosuchfs://bucket.*fsspec"):
        RecsysConfig.from_mapping({"artifact_root": "nosuchfs://bucket/prefix"})
    assert RecsysConfig.from_mapping({"artifact_root": "s3://bucket/prefix"}).artifact_root == "s3://bucket/prefix"


def test_local_roots_resolve_to_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = ArtifactStore("var/artifacts")
    assert store.local and Path(store.root) == tmp_path / "var" / "artifacts"
    assert ArtifactStore(f"file://{tmp_path}/x").root == tmp_path / "x"
    assert "secret" not in repr(ArtifactStore("s3://b/p", storage_options={"secret": "secret"}))
