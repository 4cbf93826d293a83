"""Least privilege: the real DAG runs end to end as a non-superuser login role that has only what
sql/grant_pipeline_role.postgresql.sql grants, and a missing privilege is named in the error. With
separate source and output connections it reads through a role that may only SELECT the two source
tables and writes through one that may not read them.

Roles (docs/operations.md, "Database roles and privileges"): an owner role creates the output schema
(`cli migrate`), an administrator grants the pipeline role (`cli grant-pipeline`), and the DAG connects
as the pipeline role. Roles are cluster-wide, so each test run uses its own names and drops them.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

# The harness of the end-to-end DAG test (pytest puts tests/dags on sys.path).
from test_retrain_e2e import (
    AIRFLOW,
    LOGICAL_DATE,
    TOP_K,
    _active_users,
    _airflow_env,
    _check_publication,
    _config,
    _dag_test,
    _run,
    _shop,
)

from recsys_tasks.cli import main as cli_main
from recsys_tasks.config import RecsysConfig, WarehouseConfig
from recsys_tasks.data.publication import (
    RecommendationRow,
    SimilarItemRow,
    write_publication,
    write_similar_items,
)
from recsys_tasks.data.warehouse import WarehouseError, create_engine
from recsys_tasks.stages import extract
from recsys_tasks.stages.context import RunContext
from recsys_tasks.timeutil import day_start

OLD = date(2026, 1, 1)  # a publication the run's cleanup must drop (retention.partitions_days: 7)


@pytest.fixture
def roles(pg_database_url):
    """An owner and a pipeline login role (neither superuser) and the schemas of one test; dropped after."""
    tag = uuid.uuid4().hex[:8]
    names = {"owner": f"lp_owner_{tag}", "pipeline": f"lp_pipeline_{tag}", "source": f"lp_src_{tag}", "reader": f"lp_reader_{tag}"}
    names["output"] = names["source"] + "_recsys"
    names["publisher"] = names["owner"] + "_publisher"
    admin = sa.create_engine(pg_database_url)
    database = admin.url.database
    with admin.begin() as conn:
        for role in (names["owner"], names["pipeline"], names["reader"]):
            conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE'))
        conn.execute(sa.text(f'GRANT CREATE ON DATABASE "{database}" TO "{names["owner"]}"'))  # to create its schema
        conn.execute(sa.text(f'CREATE SCHEMA "{names["source"]}"'))
    yield names
    with admin.begin() as conn:
        for schema in (names["source"], names["output"]):
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        for role in (names["reader"], names["pipeline"], names["publisher"], names["owner"]):
            if conn.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first():
                conn.execute(sa.text(f'DROP OWNED BY "{role}" CASCADE'))
                conn.execute(sa.text(f'DROP ROLE "{role}"'))
    admin.dispose()


def _as(url: str, role: str) -> str:
    return sa.engine.make_url(url).set(username=role).render_as_string(hide_password=False)


def _publish_old(url: str, schema: str) -> None:
    """An old publication and similar-items set, written by the pipeline role itself."""
    engine = create_engine(url, output_schema=schema)
    stamp = datetime(2026, 1, 1, 3, tzinfo=UTC)
    rows = [RecommendationRow(OLD, f"u{u}", 1, "i1", 1.0, "m-old", "old-run", None, stamp) for u in range(3)]
    write_publication(engine, schema, rows, as_of=OLD, run_id="old-run", model_version="m-old", top_k=1)
    write_similar_items(engine, schema, [SimilarItemRow(OLD, "i1", 1, "i2", 0.5, "m-old")], as_of=OLD)
    engine.dispose()


def test_the_dag_runs_end_to_end_as_a_least_privileged_pipeline_role(tmp_path, pg_database_url, roles):
    admin = create_engine(pg_database_url, output_schema=roles["output"])
    _shop(admin, WarehouseConfig(source_schema=roles["source"]))
    config_path = _config(tmp_path, source_schema=roles["source"], output_schema=roles["output"])
    settings = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config_path.write_text(yaml.safe_dump({**settings, "retention": {"partitions_days": 7}}), encoding="utf-8")
    owner_url, pipeline_url = _as(pg_database_url, roles["owner"]), _as(pg_database_url, roles["pipeline"])

    assert cli_main(["migrate", "--url", owner_url, "--config", str(config_path)]) == 0
    for _ in range(2):  # idempotent
        assert cli_main(["grant-pipeline", "--url", pg_database_url, "--config", str(config_path), "--role", roles["pipeline"]]) == 0
    _publish_old(pipeline_url, roles["output"])

    env = _airflow_env(tmp_path / "airflow", warehouse_url=pipeline_url, config_path=config_path)
    env["RECSYS_TASK_RETRIES"] = "0"  # a missing privilege fails at once instead of after two retries
    (tmp_path / "airflow").mkdir()
    migrate = _run([AIRFLOW, "db", "migrate"], env, tmp_path / "migrate.log")
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    _dag_test(env, tmp_path, 1)

    out = roles["output"]
    with admin.connect() as conn:
        publications = conn.execute(sa.text(f'SELECT as_of, model_version FROM "{out}".publications')).all()
        champion = conn.execute(sa.text(f"SELECT model_version FROM \"{out}\".model_registry WHERE status = 'champion'")).scalar()
        rows = conn.execute(sa.text(f'SELECT count(*) FROM "{out}".latest_recommendations')).scalar()
        partitions = conn.execute(sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :s AND c.relkind = 'r' ORDER BY 1"), {"s": out}).scalars().all()
    # Published as the pipeline role; the run's cleanup dropped the old publication and both old partitions.
    assert [(str(d), m) for d, m in publications] == [(LOGICAL_DATE, champion)] and rows > 0
    assert partitions == ["recommendations_p20260201", "similar_items_p20260201"]
    with sqlite3.connect(tmp_path / "airflow" / "airflow.db") as meta:
        states = dict(meta.execute("SELECT task_id, state FROM task_instance WHERE dag_id = 'recsys_retrain'").fetchall())
    assert states["publish"] == states["cleanup"] == "success", states

    # What the end-to-end run on PostgreSQL must show (the PostgreSQL DAG run of test_retrain_e2e.py
    # lives here, so the suite runs the DAG once rather than twice for the same checks): users with
    # item events in [interval start - history_days, interval end) all get exactly K items.
    first = _check_publication(admin, out)
    assert first["users"] == first["published_users"] == _active_users(admin, f'"{roles["source"]}".events')
    assert first["rows"] == first["users"] * TOP_K
    with admin.connect() as conn:
        champion_row = conn.execute(sa.text(f"SELECT parent_version, artifact_uri FROM \"{out}\".model_registry WHERE status = 'champion'")).one()
    assert champion_row.parent_version is None and Path(champion_row.artifact_uri, "model.safetensors").is_file()
    # The same logical date again (a new run): point in time, its challenger is judged against and
    # warm-started from the champion of the day before (none yet), never from the first run's model.
    _dag_test(env, tmp_path, 2)
    second = _check_publication(admin, out)
    assert (second["users"], second["rows"]) == (first["users"], first["rows"])
    assert second["models"] == 2
    with admin.connect() as conn:
        parents = conn.execute(sa.text(f'SELECT count(*) FROM "{out}".model_registry WHERE parent_version IS NOT NULL')).scalar()
        periods = conn.execute(sa.text(f'SELECT champion_from FROM "{out}".champion_timeline')).all()
    assert parents == 0, "the rerun must not warm-start from a model trained for the same date"
    assert [str(p.champion_from)[:10] for p in periods] == [LOGICAL_DATE]

    pipeline = create_engine(pipeline_url, output_schema=out)
    try:
        # Ownership of the two partitioned tables only: the registry stays out of its reach.
        with pytest.raises(WarehouseError, match="must be owner of table model_registry"), pipeline.begin() as conn:
            conn.execute(sa.text(f'DROP TABLE "{out}".model_registry'))
        # A missing privilege is named, with the role that lacks it.
        with admin.begin() as conn:
            conn.execute(sa.text(f'REVOKE SELECT ON "{roles["source"]}".events FROM "{roles["pipeline"]}"'))
        cfg = RecsysConfig.from_file(config_path)
        end = day_start(date.fromisoformat(LOGICAL_DATE))
        ctx = RunContext("recsys_retrain", "revoked", end - timedelta(days=1), end, pipeline_url, cfg)
        try:
            with pytest.raises(WarehouseError, match=rf"role {roles['pipeline']}\).*permission denied for table events"):
                extract.run(ctx)
        finally:
            ctx.dispose()
    finally:
        pipeline.dispose()
        admin.dispose()


def _postgres_connection(url: str, role: str, extra: dict[str, str]) -> str:
    """An ``AIRFLOW_CONN_*`` value: a postgres-type connection (resolved through PostgresHook) as ``role``."""
    server = sa.engine.make_url(url)
    return json.dumps({"conn_type": "postgres", "host": server.host, "port": server.port, "login": role,
                       "schema": server.database, "extra": extra})


def test_the_dag_reads_through_a_read_only_source_connection_and_writes_through_another(tmp_path, pg_database_url, roles):
    """Source: a role with SELECT on the two source tables only; output: the pipeline role, whose source
    grants are revoked. Both are postgres-type connections, and the source schema is reached only through
    the source connection's libpq ``options`` extra (search_path): the run succeeds only if extras pass."""
    src, out = roles["source"], roles["output"]
    admin = create_engine(pg_database_url, output_schema=out)
    _shop(admin, WarehouseConfig(source_schema=src))
    grant_config = _config(tmp_path, source_schema=src, output_schema=out)  # grant-pipeline grants on src
    assert cli_main(["migrate", "--url", _as(pg_database_url, roles["owner"]), "--config", str(grant_config)]) == 0
    assert cli_main(["grant-pipeline", "--url", pg_database_url, "--config", str(grant_config), "--role", roles["pipeline"]]) == 0
    with admin.begin() as conn:
        conn.execute(sa.text(f'GRANT USAGE ON SCHEMA "{src}" TO "{roles["reader"]}"'))
        conn.execute(sa.text(f'GRANT SELECT ON "{src}".events, "{src}".items TO "{roles["reader"]}"'))
        conn.execute(sa.text(f'REVOKE SELECT ON "{src}".events, "{src}".items FROM "{roles["pipeline"]}"'))
        conn.execute(sa.text(f'REVOKE USAGE ON SCHEMA "{src}" FROM "{roles["pipeline"]}"'))
        may = conn.execute(sa.text(
            "SELECT has_table_privilege(:reader, :events, 'SELECT'), has_schema_privilege(:reader, :out, 'USAGE'), "
            "has_table_privilege(:pipeline, :events, 'SELECT')"),
            {"reader": roles["reader"], "pipeline": roles["pipeline"], "events": f'"{src}".events', "out": out},
        ).one()
    assert tuple(may) == (True, False, False), "the roles must be split for this test to mean anything"

    (tmp_path / "split").mkdir()
    config_path = _config(tmp_path / "split", source_schema=None, output_schema=out)  # src via search_path only
    env = _airflow_env(tmp_path / "airflow", warehouse_url="sqlite:///nowhere.db", config_path=config_path)
    del env["AIRFLOW_CONN_RECSYS_WAREHOUSE"]  # neither connection may fall back to it
    env.update(
        AIRFLOW_CONN_RECSYS_SOURCE=_postgres_connection(pg_database_url, roles["reader"], {
            "sslmode": "disable", "application_name": "recsys_source", "options": f"-c search_path={src}",
        }),
        AIRFLOW_CONN_RECSYS_OUTPUT=_postgres_connection(pg_database_url, roles["pipeline"], {"sslmode": "disable"}),
        RECSYS_SOURCE_CONN_ID="recsys_source",
        RECSYS_OUTPUT_CONN_ID="recsys_output",
        RECSYS_TASK_RETRIES="0",
    )
    (tmp_path / "airflow").mkdir()
    migrate = _run([AIRFLOW, "db", "migrate"], env, tmp_path / "migrate.log")
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    _dag_test(env, tmp_path, 1)
    published = _check_publication(admin, out)
    assert published["users"] == _active_users(admin, f'"{src}".events') and published["rows"] == published["users"] * TOP_K

    # The hourly refresh reads the new events and the catalogue through the source connection too.
    with admin.begin() as conn:
        user, item = conn.execute(sa.text(f'SELECT user_id, item_id FROM "{out}".latest_recommendations ORDER BY user_id, rank LIMIT 1')).one()
        conn.execute(sa.text(
            f'INSERT INTO "{src}".events (event_id, user_id, item_id, event_type, event_ts, session_id) '
            "VALUES ('refresh-1', :user, :item, 'view', TIMESTAMPTZ '2026-02-01 05:30:00+00', 'refresh-s')"),
            {"user": user, "item": item},
        )
        before = set(conn.execute(sa.text(f'SELECT run_id FROM "{out}".recommendations WHERE user_id = :u'), {"u": user}).scalars())
    proc = _run([AIRFLOW, "dags", "test", "recsys_refresh", "2026-02-01T06:00:00+00:00"], env, tmp_path / "refresh.log")
    assert proc.returncode == 0 and "state=success" in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-4000:]
    with admin.connect() as conn:
        after = set(conn.execute(sa.text(f'SELECT run_id FROM "{out}".recommendations WHERE user_id = :u'), {"u": user}).scalars())
    assert len(after) == 1 and after != before, (before, after)  # that user's rows were rewritten by the refresh
    with sqlite3.connect(tmp_path / "airflow" / "airflow.db") as meta:
        states = dict(meta.execute("SELECT dag_id || '.' || task_id, state FROM task_instance").fetchall())
    assert states["recsys_retrain.extract"] == states["recsys_retrain.publish"] == states["recsys_refresh.refresh"] == "success", states
    admin.dispose()

def test_grant_pipeline_refuses_a_schema_that_was_not_migrated(tmp_path, pg_database_url, roles, capsys):
    config_path = tmp_path / "recsys.yaml"
    config_path.write_text(yaml.safe_dump({"warehouse": {"output_schema": roles["output"]}}), encoding="utf-8")
    code = cli_main(["grant-pipeline", "--url", pg_database_url, "--config", str(config_path), "--role", roles["pipeline"]])
    assert code == 2
    assert f"the output schema {roles['output']} does not exist" in capsys.readouterr().err


def test_grant_pipeline_hands_partitions_made_before_it_to_the_publisher_group(pg_database_url, roles, tmp_path, capsys):
    """The owner published before the grant: its partitions become the publisher group's (a format('%s')
    loop in the grant script, which psycopg used to mangle into '$1'), so the pipeline can replace them."""
    config_path = _config(tmp_path, source_schema=roles["source"], output_schema=roles["output"])
    owner_url, pipeline_url = _as(pg_database_url, roles["owner"]), _as(pg_database_url, roles["pipeline"])
    admin = create_engine(pg_database_url, output_schema=roles["output"])
    _shop(admin, WarehouseConfig(source_schema=roles["source"]))
    assert cli_main(["migrate", "--url", owner_url, "--config", str(config_path)]) == 0
    _publish_old(owner_url, roles["output"])
    assert cli_main(["grant-pipeline", "--url", pg_database_url, "--config", str(config_path), "--role", roles["pipeline"]]) == 0
    with admin.connect() as conn:
        owners = conn.execute(sa.text(
            "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s"), {"s": roles["output"]}).scalars().all()
    assert owners == [roles["publisher"]]
    _publish_old(pipeline_url, roles["output"])  # a republish detaches and drops the owner's old partition
    assert cli_main(["query", "--url", pg_database_url, "--config", str(config_path), "--sql",
                     f"SELECT count(*) AS n FROM \"{roles['output']}\".recommendations WHERE user_id LIKE 'u%'"]) == 0
    assert "3" in capsys.readouterr().out
    admin.dispose()
