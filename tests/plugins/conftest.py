"""Fixtures for the Recommendations UI plugin: a filled output schema on PostgreSQL and on SQLite."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ui_seed import Filled, fill

from recsys_tasks.config import RecsysConfig
from recsys_tasks.data.warehouse import create_engine
from recsys_tasks.insights import create_reader_engine

# The plugin package is imported the way Airflow imports it: from the plugins folder on sys.path.
PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
if str(PLUGINS) not in sys.path:
    sys.path.insert(0, str(PLUGINS))


@pytest.fixture(params=["postgresql", "sqlite"])
def filled(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Filled]:
    """The same hand-made outputs in a PostgreSQL schema and in the embedded SQLite warehouse."""
    root = tmp_path / "artifacts"
    root.mkdir()
    if request.param == "postgresql":
        schema = request.getfixturevalue("pg_schema")
        url = request.getfixturevalue("pg_database_url")
        cfg = RecsysConfig.from_mapping(
            {"artifact_root": str(root), "warehouse": {"output_schema": schema, "source_schema": schema}}
        )
    else:
        url = request.getfixturevalue("sqlite_url")
        # A catalogue with its own column names, mapped in the config.
        cfg = RecsysConfig.from_mapping(
            {"artifact_root": str(root),
             "warehouse": {"items_table": "catalogue", "item_columns": {"item_id": "sku", "title": "name"}}}
        )
    writer = create_engine(url, output_schema=cfg.warehouse.output_schema)
    docs_index = fill(writer, cfg, root)
    reader = create_reader_engine(url, output_schema=cfg.warehouse.output_schema)
    yield Filled(reader, writer, cfg, docs_index)
    reader.dispose()
    writer.dispose()
