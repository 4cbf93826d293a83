"""Alembic migrations of the output schema: a schema made by the DDL from before migrations keeps its rows
and is stamped, not rebuilt; a fresh one ends up the same; upgrades are idempotent and safe to race."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from recsys_tasks.cli import main as cli_main
from recsys_tasks.data.migrations import (
    BASELINE,
    baseline_digest,
    current_revision,
    head_revision,
    run_script,
    upgrade_output_schema,
)
from recsys_tasks.data.publication import (
    RecommendationRow,
    SimilarItemRow,
    write_publication,
    write_similar_items,
)
from recsys_tasks.data.warehouse import create_engine, ensure_output_schema
from recsys_tasks.sqlfiles import load_sql, statement
from recsys_tasks.timeutil import now_iso

REPO = Path(__file__).resolve().parents[3]
AS_OF = date(2026, 3, 1)

#: Digests of sql/schema/create_output_tables.<dialect>.sql as deployed before migrations: schemas that
#: hold one in schema_version are stamped as revision 0001, so the files must never change again.
BASELINE_DIGESTS = {"postgresql": "ee55db284a559423", "sqlite": "f811cdfc0f6f592e"}


@pytest.fixture
def new_schema(pg_engine: sa.Engine) -> Iterator[Callable[[], str]]:
    """Names of PostgreSQL schemas that do not exist yet; each is dropped after the test."""
    names: list[str] = []

    def make() -> str:
        names.append("t_mig_" + uuid.uuid4().hex[:10])
        return names[-1]

    yield make
    with pg_engine.begin() as conn:
        for name in names:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))


def _create_with_todays_ddl(engine: sa.Engine, schema: str) -> None:
    """What ``ensure_output_schema`` did before migrations: run the DDL file, record its digest."""
    dialect = engine.dialect.name
    with engine.begin() as conn:
        if dialect == "postgresql":
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        run_script(conn, load_sql("schema/create_output_tables", dialect=dialect, schema=schema))
        version = {"version": baseline_digest(dialect), "applied_at": now_iso()}
        conn.execute(statement("upsert_schema_version", schema=schema), version)


def _publish_a_few_rows(engine: sa.Engine, schema: str) -> None:
    stamp = datetime(2026, 3, 1, 3, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(sa.text(
            f'INSERT INTO "{schema}".model_registry (model_version, kind, status, dag_id, run_id, as_of, data_start, '
            "data_end, artifact_uri, checksum, config) VALUES ('m1', 'transformer', 'champion', 'recsys_retrain', 'r1', "
            "'2026-03-01', '2026-02-28T00:00:00+00:00', '2026-03-01T00:00:00+00:00', '/models/m1', 'abc', '{}')"
        ))
        conn.execute(sa.text(
            f'INSERT INTO "{schema}".evaluations (run_id, as_of, model_version, role, segment, metric, value, users) '
            "VALUES ('r1', '2026-03-01', 'm1', 'challenger', 'all', 'ndcg@10', 0.25, 40)"
        ))
        conn.execute(sa.text(
            f'INSERT INTO "{schema}".validation_runs (run_id, as_of, interval_events, success) '
            "VALUES ('r1', '2026-03-01', 9, true)"
        ))
    rows = [
        RecommendationRow(AS_OF, f"u{u}", rank, f"i{rank}", 1.0 / rank, "m1", "r1", None, stamp)
        for u in range(3)
        for rank in (1, 2)
    ]
    write_publication(engine, schema, rows, as_of=AS_OF, run_id="r1", model_version="m1", top_k=2)
    write_similar_items(engine, schema, [SimilarItemRow(AS_OF, "i1", 1, "i2", 0.5, "m1")], as_of=AS_OF)


def _row_counts(engine: sa.Engine, schema: str) -> dict[str, int]:
    tables = sorted(set(sa.inspect(engine).get_table_names(schema=schema)) - {"alembic_version"})
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f'SELECT count(*) FROM "{schema}"."{t}"')).scalar() for t in tables}


def _uncommented(conn: sa.Connection, schema: str) -> list[str]:
    """Tables, views and columns of ``schema`` without a comment (partitions and Alembic's table aside)."""
    return conn.execute(sa.text(
        "SELECT c.relname || coalesce('.' || a.attname, '') FROM pg_catalog.pg_class AS c "
        "LEFT JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE c.relnamespace = CAST(:s AS regnamespace) AND c.relkind IN ('r', 'p', 'v') AND NOT c.relispartition "
        "AND c.relname <> 'alembic_version' "
        "AND (obj_description(c.oid, 'pg_class') IS NULL OR col_description(c.oid, a.attnum) IS NULL) ORDER BY 1"
    ), {"s": f'"{schema}"'}).scalars().all()


def _describe(conn: sa.Connection, schema: str) -> dict[str, list[tuple]]:
    """Everything the output schema defines, with its name replaced by ``S``: relations, columns, constraints,
    indexes, view bodies and comments (Alembic's own table left out)."""
    ns = {"s": f'"{schema}"'}
    queries = {
        "relations": "SELECT relname, relkind, relispartition FROM pg_class WHERE relnamespace = CAST(:s AS regnamespace)",
        "columns": (
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid), "
            "col_description(c.oid, a.attnum) FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
            "AND NOT a.attisdropped LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum "
            "WHERE c.relnamespace = CAST(:s AS regnamespace) AND c.relkind IN ('r', 'p', 'v')"
        ),
        "constraints": "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = CAST(:s AS regnamespace)",
        "indexes": "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = :name",
        "views": "SELECT viewname, definition FROM pg_views WHERE schemaname = :name",
        "comments": (
            "SELECT relname, obj_description(oid, 'pg_class') FROM pg_class WHERE relnamespace = CAST(:s AS regnamespace) "
            "AND relkind IN ('r', 'p', 'v')"
        ),
    }
    out = {}
    for what, sql in queries.items():
        rows = conn.execute(sa.text(sql), {**ns, "name": schema}).all()
        out[what] = sorted(
            tuple(str(v).replace(f'"{schema}"', "S").replace(schema, "S") for v in row)
            for row in rows
            if "alembic_version" not in str(row)
        )
    return out


def test_the_baseline_ddl_is_frozen() -> None:
    actual = {dialect: baseline_digest(dialect) for dialect in BASELINE_DIGESTS}
    assert actual == BASELINE_DIGESTS, (
        "sql/schema/create_output_tables.*.sql is revision 0001 and identifies schemas created before "
        "migrations: leave it as it is and change the schema with a new revision (docs/operations.md)"
    )
    assert head_revision() == "0003" and BASELINE == "0001"


def test_a_schema_made_by_todays_ddl_keeps_its_rows_is_stamped_and_gets_comments(pg_database_url, new_schema) -> None:
    schema = new_schema()
    engine = create_engine(pg_database_url, output_schema=schema, statement_timeout_s=3)
    reader = sa.create_engine(pg_database_url)
    try:
        _create_with_todays_ddl(engine, schema)
        _publish_a_few_rows(engine, schema)
        before = _row_counts(engine, schema)
        assert before["publications"] == 1 and before["recommendations"] == 6 and before["model_registry"] == 1
        assert current_revision(engine, schema) is None

        # An analyst reads the view while we upgrade. Re-running the DDL (CREATE OR REPLACE VIEW) would wait
        # for them and hit the statement timeout; stamping and COMMENT ON do not.
        with reader.connect() as conn:
            conn.exec_driver_sql(f'SELECT count(*) FROM "{schema}".latest_recommendations')
            started = time.monotonic()
            assert ensure_output_schema(engine, schema) is True
            assert time.monotonic() - started < 3
            conn.rollback()

        assert _row_counts(engine, schema) == before
        assert current_revision(engine, schema) == head_revision()
        with engine.connect() as conn:
            assert _uncommented(conn, schema) == []
            comments = conn.execute(sa.text(
                "SELECT obj_description(CAST(:t AS regclass), 'pg_class'), col_description(CAST(:p AS regclass), 7), "
                "col_description(CAST(:v AS regclass), 5)"
            ), {"t": f'"{schema}".recommendations', "p": f'"{schema}".publications',
                "v": f'"{schema}".latest_recommendations'}).one()
            assert comments[0].startswith("Ranked recommendations per as-of date and user")
            assert comments[1] == "When the publication was committed."  # published_at
            assert comments[2].startswith("Ranking score within the list")  # a view column, from its table
            legacy = conn.execute(statement("select_schema_version", schema=schema)).scalar()
        assert legacy == baseline_digest("postgresql")  # code from before migrations still sees a current schema
    finally:
        engine.dispose()
        reader.dispose()


def test_a_schema_from_an_older_ddl_gets_the_baseline_run_again(pg_database_url, new_schema) -> None:
    schema = new_schema()
    engine = create_engine(pg_database_url, output_schema=schema)
    try:
        _create_with_todays_ddl(engine, schema)
        with engine.begin() as conn:  # as it was before artifact_deleted_at (and the champion view over it)
            conn.execute(sa.text(f'ALTER TABLE "{schema}".model_registry DROP COLUMN artifact_deleted_at CASCADE'))
            conn.execute(sa.text(f'UPDATE "{schema}".schema_version SET version = \'older\''))
        assert ensure_output_schema(engine, schema) is True
        columns = {c["name"] for c in sa.inspect(engine).get_columns("model_registry", schema=schema)}
        assert "artifact_deleted_at" in columns
        assert "champion" in sa.inspect(engine).get_view_names(schema=schema)
        assert current_revision(engine, schema) == head_revision()
    finally:
        engine.dispose()


def test_a_fresh_schema_at_head_is_todays_ddl_plus_the_comments(pg_database_url, new_schema) -> None:
    migrated, reference = new_schema(), new_schema()
    engine = create_engine(pg_database_url, output_schema=migrated)
    try:
        assert ensure_output_schema(engine, migrated) is True
        _create_with_todays_ddl(engine, reference)
        with engine.begin() as conn:
            run_script(conn, load_sql("schema/comment_output_tables", dialect="postgresql", schema=reference))
        with engine.connect() as conn:
            got, expected = _describe(conn, migrated), _describe(conn, reference)
            assert _uncommented(conn, migrated) == []
        assert got == expected
        assert len(got["relations"]) >= 13 and len(got["comments"]) >= 13  # the comparison compared something
        assert ("evaluation_comparisons", "relative_delta") in {row[:2] for row in got["columns"]}
        assert any("5% better" in str(row) for row in got["columns"])  # a % is text, not a placeholder
    finally:
        engine.dispose()


def test_upgrading_twice_is_a_no_op(pg_database_url, new_schema) -> None:
    schema = new_schema()
    engine = create_engine(pg_database_url, output_schema=schema)
    try:
        assert ensure_output_schema(engine, schema) is True
        with engine.connect() as conn:
            before = _describe(conn, schema)
        assert ensure_output_schema(engine, schema) is False
        with engine.begin() as conn:
            assert upgrade_output_schema(conn, schema) is False
            assert conn.execute(sa.text(f'SELECT count(*) FROM "{schema}".alembic_version')).scalar() == 1
        with engine.connect() as conn:
            assert _describe(conn, schema) == before
    finally:
        engine.dispose()


def test_migrate_from_the_command_line(sqlite_url, capsys, monkeypatch) -> None:
    monkeypatch.delenv("RECSYS_CONFIG", raising=False)
    assert cli_main(["migrate", "--url", sqlite_url]) == 0
    assert cli_main(["migrate", "--url", sqlite_url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"schema recsys upgraded from revision none to {head_revision()}",
        f"schema recsys is already at revision {head_revision()}",
    ]


def test_sqlite_fresh_and_todays_ddl_both_reach_head(sqlite_url, tmp_path) -> None:
    engine = create_engine(sqlite_url, output_schema="recsys")
    try:
        assert ensure_output_schema(engine, "recsys") is True
        assert ensure_output_schema(engine, "recsys") is False
        assert current_revision(engine, "recsys") == head_revision()
        assert sa.inspect(engine).get_table_names() == []  # the version table lives in the attached output file
    finally:
        engine.dispose()

    legacy = create_engine(f"sqlite:///{tmp_path / 'legacy.db'}", output_schema="recsys")
    try:
        _create_with_todays_ddl(legacy, "recsys")
        with legacy.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO recsys.publications (as_of, run_id, model_version, users, rows, top_k) "
                "VALUES ('2026-03-01', 'r1', 'm1', 1, 2, 2)"
            ))
        assert ensure_output_schema(legacy, "recsys") is True
        assert current_revision(legacy, "recsys") == head_revision()
        assert _row_counts(legacy, "recsys")["publications"] == 1
    finally:
        legacy.dispose()


def test_concurrent_first_runs_on_a_fresh_schema_both_succeed(pg_database_url, new_schema) -> None:
    schema = new_schema()  # missing: both race to create it too
    engines = [create_engine(pg_database_url, output_schema=schema) for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list[object] = [None, None]

    def first_run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = ensure_output_schema(engines[i], schema)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=first_run, args=(i,)) for i in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert sorted(results, key=str) == [False, True], results  # one migrated, the other found it done
        assert current_revision(engines[0], schema) == head_revision()
        with engines[0].connect() as conn:
            assert conn.execute(sa.text(f'SELECT count(*) FROM "{schema}".alembic_version')).scalar() == 1
    finally:
        for engine in engines:
            engine.dispose()


def test_the_dbt_sources_describe_the_migrated_schema(pg_database_url, new_schema) -> None:
    schema = new_schema()
    engine = create_engine(pg_database_url, output_schema=schema)
    (source,) = yaml.safe_load((REPO / "docs" / "dbt" / "sources.yml").read_text(encoding="utf-8"))["sources"]
    try:
        ensure_output_schema(engine, schema)
        with engine.connect() as conn:
            described = _describe(conn, schema)
        relations = {name for name, kind, part in described["relations"] if kind in ("r", "p", "v") and part == "False"}
        comments = {(t, c): text for t, c, *_, text in described["columns"]}
        table_comments = dict(described["comments"])
        columns: dict[str, list[str]] = {}
        for t, c, *_ in described["columns"]:
            columns.setdefault(t, []).append(c)
    finally:
        engine.dispose()

    tables = {t["name"]: t for t in source["tables"]}
    assert set(tables) == relations - {"schema_version"}, "docs/dbt/sources.yml must list every published table and view"
    for name, table in tables.items():
        assert table["description"] == table_comments[name], name
        assert sorted(c["name"] for c in table["columns"]) == sorted(columns[name]), name
        for column in table["columns"]:
            assert column["description"] == comments[(name, column["name"])], f"{name}.{column['name']}"
    freshness = tables["publications"]["config"]
    assert freshness["loaded_at_field"] == "published_at"
    assert freshness["freshness"] == {
        "warn_after": {"count": 26, "period": "hour"},
        "error_after": {"count": 50, "period": "hour"},
    }
