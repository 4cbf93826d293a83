"""Retention: every keep rule, on a hand-built registry, publications and folders, on both dialects.

The world (as of 2026-02-01, partitions 7 days, snapshots 3 days, 1 newest non-champion model):

    publications   01-10 (m1, r10)  01-20 (m4, r20)  01-28 (m3, r28)  02-01 (m5, r01)
    similar items  01-10            01-20            01-28            02-01
    models (old → new)  mfar (outside models/)  mgone (dir already gone)  m1 retired
                        m2 retired (parent of m5)  m3 rejected  m4 rejected  m5 champion  m6 rejected (newest)
    run dirs       01-10/r10  01-20/r20  01-12/fresh (written just now)  01-28/r28  01-28/other  02-01/r01
    models/        zz_orphan (no registry row)  zz_new (fresh)  m9.partial (old)  m10.partial (fresh)
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from recsys_tasks import registry, retention
from recsys_tasks.cli import main as cli_main
from recsys_tasks.config import RecsysConfig
from recsys_tasks.data.publication import (
    RecommendationRow,
    SimilarItemRow,
    write_publication,
    write_similar_items,
)
from recsys_tasks.stages import cleanup as cleanup_stage
from recsys_tasks.stages.context import RunContext
from recsys_tasks.timeutil import as_date, day_start

AS_OF = date(2026, 2, 1)
DAYS = {"01-10": ("m1", "r10"), "01-20": ("m4", "r20"), "01-28": ("m3", "r28"), "02-01": ("m5", "r01")}
STAMP = datetime(2026, 2, 1, 3, 0, tzinfo=UTC)


def _day(md: str) -> date:
    return date.fromisoformat(f"2026-{md}")


def _config(root: Path, schema: str, **retention_keys) -> RecsysConfig:
    keys = {"partitions_days": 7, "snapshot_days": 3, "model_versions": 1, **retention_keys}
    return RecsysConfig.from_mapping({"artifact_root": str(root), "warehouse": {"output_schema": schema}, "retention": keys})


def _age(path: Path, hours: float = 2.0) -> None:
    """Make every file and directory under ``path`` look last written ``hours`` ago."""
    stamp = time.time() - hours * 3600
    for p in sorted(path.rglob("*"), reverse=True) + [path]:
        os.utime(p, (stamp, stamp))


def _files(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "data.bin").write_bytes(b"x")
    return path


def _build(engine: sa.Engine, schema: str, cfg: RecsysConfig) -> Path:
    """The world of the module docstring; returns the artifact root."""
    root = Path(cfg.artifact_root)
    models = root / "models"
    statuses = {"m1": "retired", "m2": "retired", "m3": "rejected", "m4": "rejected", "m6": "rejected"}
    for version in ("mfar", "mgone", "m1", "m2", "m3", "m4", "m5", "m6"):
        where = root.parent / "elsewhere" / version if version == "mfar" else models / version
        if version != "mgone":
            _files(where)
        registry.register_model(
            engine, schema, model_version=version, parent_version="m2" if version == "m5" else None, kind="transformer",
            dag_id="recsys_retrain", run_id=f"run-{version}", as_of=date(2026, 1, 5), data_start=STAMP, data_end=STAMP,
            artifact_uri=str(where), checksum="sha", config={},
        )
        time.sleep(0.01)  # distinct created_at: "newest" is the most recently registered
    registry.promote(engine, schema, "m5", decision="test champion")
    for version, status in statuses.items():
        registry.set_status(engine, schema, version, status, decision="test")
    for md, (model, run) in DAYS.items():
        day = _day(md)
        rows = [RecommendationRow(day, f"u{u}", 1, "i1", 1.0, model, run, None, STAMP) for u in range(3)]
        write_publication(engine, schema, rows, as_of=day, run_id=run, model_version=model, top_k=1)
        write_similar_items(engine, schema, [SimilarItemRow(day, "i1", 1, "i2", 0.5, model)], as_of=day)
        _files(_run_dir(cfg, day, run) / "clean")
    _files(_run_dir(cfg, _day("01-28"), "other"))
    (root / "recsys_retrain" / "notes").mkdir()
    for name in ("zz_orphan", "m9.partial"):
        _files(models / name)
    _age(root)
    for path in (_run_dir(cfg, _day("01-12"), "fresh"), models / "zz_new", models / "m10.partial"):
        _files(path)  # written just now: a run or a model copy may be using it
    return root


def _run_dir(cfg: RecsysConfig, day: date, run: str) -> Path:
    return RunContext("recsys_retrain", run, day_start(day) - timedelta(days=1), day_start(day), "", cfg).run_dir


def _state(engine: sa.Engine, schema: str, root: Path) -> dict:
    """Everything cleanup may touch: tables, registry marks and the artifact tree."""
    with engine.connect() as conn:
        days = {
            table: sorted({as_date(d).isoformat() for (d,) in conn.execute(sa.text(f'SELECT as_of FROM "{schema}".{table}'))})
            for table in ("publications", "recommendations", "similar_items")
        }
        marks = conn.execute(sa.text(f'SELECT model_version, artifact_deleted_at FROM "{schema}".model_registry')).all()
        statuses = conn.execute(sa.text(f'SELECT model_version, status FROM "{schema}".model_registry')).all()
    return {
        **days,
        "deleted_marks": sorted(v for v, at in marks if at is not None),
        "registry": sorted(statuses),
        "tree": sorted(str(p.relative_to(root.parent)) for p in root.parent.rglob("*") if p.is_dir()),
    }


def test_cleanup_deletes_only_what_expired_and_keeps_every_protected_thing(output_db, tmp_path):
    engine, schema = output_db
    cfg = _config(tmp_path / "artifacts", schema)
    root = _build(engine, schema, cfg)
    before = _state(engine, schema, root)

    report = retention.cleanup(engine, cfg, as_of=AS_OF, dag_id="recsys_retrain")

    after = _state(engine, schema, root)
    assert report.errors == []
    # Partitions and publications older than 7 days go; a publication row and its rows go together.
    assert after["publications"] == after["recommendations"] == ["2026-01-28", "2026-02-01"]
    assert after["similar_items"] == ["2026-01-28", "2026-02-01"]
    assert report.publications == report.similar_items == ["2026-01-10", "2026-01-20"]
    # Models: m1 and m4 go (named only by expired publications); the champion m5, its parent m2, m3 (named
    # by the kept publication of 01-28), the newest non-champion m6 and mfar (outside models/) stay.
    models = root / "models"
    assert sorted(p.name for p in models.iterdir()) == ["m10.partial", "m2", "m3", "m5", "m6", "zz_new"]
    assert report.models == [str(models / "m4"), str(models / "m1")]
    assert (tmp_path / "elsewhere" / "mfar").is_dir()
    # Registry rows stay; deleted directories (and the one already gone) are marked.
    assert after["registry"] == before["registry"]
    assert after["deleted_marks"] == ["m1", "m4", "mgone"]
    # Orphans: no registry row or *.partial, older than an hour.
    assert report.orphans == [str(models / "m9.partial"), str(models / "zz_orphan")]
    # Run directories older than 3 days go, except the snapshot of a kept publication and a fresh one.
    runs = root / "recsys_retrain"
    assert sorted(str(p.relative_to(runs)) for p in runs.glob("*/*")) == [
        "2026-01-12/fresh", "2026-01-28/r28", "2026-02-01/r01",
    ]
    assert (runs / "notes").is_dir() and not (runs / "2026-01-10").exists()
    assert report.run_dirs == [str(runs / "2026-01-10" / "r10"), str(runs / "2026-01-20" / "r20"), str(runs / "2026-01-28" / "other")]
    # What a rollback to a kept publication reads is still there: its snapshot.
    assert (runs / "2026-01-28" / "r28" / "clean").is_dir() and (runs / "2026-02-01" / "r01" / "clean").is_dir()

    again = retention.cleanup(engine, cfg, as_of=AS_OF, dag_id="recsys_retrain")
    assert again.to_dict() == {**{k: 0 for k in ("publications", "similar_items", "run_dirs", "models", "orphans")},
                               "as_of": "2026-02-01", "dry_run": False, "errors": []}
    assert _state(engine, schema, root) == after


def test_a_dry_run_deletes_nothing_and_lists_exactly_what_the_real_run_deletes(output_db, tmp_path):
    engine, schema = output_db
    cfg = _config(tmp_path / "artifacts", schema, dry_run=True)
    root = _build(engine, schema, cfg)
    before = _state(engine, schema, root)

    planned = retention.cleanup(engine, cfg, as_of=AS_OF, dag_id="recsys_retrain")
    assert planned.dry_run and planned.errors == []
    assert _state(engine, schema, root) == before

    done = retention.cleanup(engine, cfg, as_of=AS_OF, dag_id="recsys_retrain", dry_run=False)
    assert not done.dry_run and _state(engine, schema, root) != before
    assert {**planned.to_dict(), "dry_run": False} == done.to_dict()
    for kind in ("publications", "similar_items", "run_dirs", "models", "orphans"):
        assert getattr(planned, kind) == getattr(done, kind), kind


def test_the_newest_publication_and_similar_items_are_kept_however_old(output_db, tmp_path):
    engine, schema = output_db
    cfg = _config(tmp_path / "artifacts", schema, model_versions=None)
    root = _build(engine, schema, cfg)

    report = retention.cleanup(engine, cfg, as_of=date(2026, 6, 1), dag_id="recsys_retrain")

    after = _state(engine, schema, root)
    assert report.errors == []
    assert after["publications"] == after["recommendations"] == after["similar_items"] == ["2026-02-01"]
    with engine.connect() as conn:
        latest = conn.execute(sa.text(f'SELECT count(*) FROM "{schema}".latest_recommendations')).scalar()
    assert latest == 3, "latest_recommendations never goes empty"
    # The newest publication's snapshot stays (rollback republishes from it); the fresh run dir too.
    runs = root / "recsys_retrain"
    assert sorted(str(p.relative_to(runs)) for p in runs.glob("*/*")) == ["2026-01-12/fresh", "2026-02-01/r01"]
    # model_versions null: no model directory and no orphan is touched.
    assert report.models == report.orphans == [] and (root / "models" / "zz_orphan").is_dir()


def test_retention_off_by_default_deletes_nothing(output_db, tmp_path):
    engine, schema = output_db
    cfg = _config(tmp_path / "artifacts", schema, partitions_days=None, snapshot_days=0, model_versions=None)
    root = _build(engine, schema, cfg)
    before = _state(engine, schema, root)
    assert RecsysConfig().retention.partitions_days is None  # the default keeps everything
    report = retention.cleanup(engine, cfg, as_of=date(2027, 1, 1), dag_id="recsys_retrain")
    assert report.to_dict()["errors"] == [] and not any(report.to_dict()[k] for k in ("publications", "run_dirs", "models"))
    assert _state(engine, schema, root) == before


def test_a_failing_step_is_reported_and_the_other_steps_still_run(output_db, tmp_path, monkeypatch):
    engine, schema = output_db
    cfg = _config(tmp_path / "artifacts", schema)
    root = _build(engine, schema, cfg)

    def broken(*args, **kwargs):
        raise OSError("disk went read-only")

    monkeypatch.setattr(retention, "_expire_run_dirs", broken)  # fault injection: the run-directory step fails
    ctx = RunContext("recsys_retrain", "tonight", day_start(date(2026, 1, 31)), day_start(AS_OF),
                     engine.url.render_as_string(hide_password=False), cfg)
    try:
        result = cleanup_stage.run(ctx)  # must not raise: cleanup never fails the night
    finally:
        ctx.dispose()

    assert result["errors"] == ["run directories: OSError: disk went read-only"]
    assert result["publications"] == 2 and result["models"] == 2 and result["run_dirs"] == 0
    assert (root / "recsys_retrain" / "2026-01-10" / "r10").is_dir()
    assert not (root / "models" / "m1").exists()


def test_cli_cleanup_dry_run_changes_nothing(sqlite_url, tmp_path, capsys):
    from recsys_tasks.data.warehouse import create_engine, ensure_output_schema

    engine = create_engine(sqlite_url)
    ensure_output_schema(engine, "recsys")
    cfg = _config(tmp_path / "artifacts", "recsys")
    root = _build(engine, "recsys", cfg)
    before = _state(engine, "recsys", root)
    config_file = tmp_path / "recsys.json"
    config_file.write_text(json.dumps(cfg.model_dump(mode="json")), encoding="utf-8")

    code = cli_main(["cleanup", "--url", sqlite_url, "--config", str(config_file), "--dry-run", "--as-of", "2026-02-01"])

    assert code == 0
    assert "publications: 2" in capsys.readouterr().out
    assert _state(engine, "recsys", root) == before
    engine.dispose()


def test_an_old_sqlite_output_file_gets_the_deleted_mark_column(tmp_path, sqlite_url):
    """Files made before artifact_deleted_at existed (SQLite cannot ADD COLUMN IF NOT EXISTS in the DDL)."""
    from recsys_tasks.data.warehouse import create_engine, ensure_output_schema

    engine = create_engine(sqlite_url)
    ensure_output_schema(engine, "recsys")
    cfg = _config(tmp_path / "artifacts", "recsys")
    root = _build(engine, "recsys", cfg)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE recsys.model_registry DROP COLUMN artifact_deleted_at")
    report = retention.cleanup(engine, cfg, as_of=AS_OF, dag_id="recsys_retrain")
    assert report.errors == [] and len(report.models) == 2
    assert _state(engine, "recsys", root)["deleted_marks"] == ["m1", "m4", "mgone"]
    engine.dispose()
