"""The wheel is the product: it holds every package and every SQL file, and runs outside the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import sqlalchemy as sa

from recsys_tasks.data.migrations import head_revision

REPO = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(REPO).parts) for init in (REPO / "recsys_tasks").rglob("__init__.py")
    }
    assert on_disk - listed == set(), "add these packages to [tool.setuptools] packages in pyproject.toml"


def test_wheel_installs_and_runs_sql_outside_the_checkout(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("recsys_tasks-*.whl")
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    # The installed copy comes first on the path; dependencies come from this environment.
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, *args], cwd=tmp_path, env=env, check=True, capture_output=True, text=True
    )
    where = run("-c", "import recsys_tasks.sqlfiles as s; print(s.__file__); print(s.SQL_DIR)").stdout.split()
    assert where[0].startswith(str(target)) and where[1] == str(target / "recsys_tasks" / "sql")
    assert "--url" in run("-m", "recsys_tasks.cli", "--help").stdout + run("-m", "recsys_tasks.cli", "query", "--help").stdout

    # The output schema's migrations, then the registry listing (sql/select_models.sql), from the wheel.
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    run("-c", f"from recsys_tasks.data.warehouse import create_engine, ensure_output_schema as e; e(create_engine({url!r}), 'recsys')")
    assert "model_version" in run("-m", "recsys_tasks.cli", "models", "--url", url).stdout
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"ATTACH DATABASE '{tmp_path / 'warehouse.recsys.db'}' AS recsys")
            assert conn.exec_driver_sql("SELECT count(*) FROM recsys.model_registry").scalar() == 0
            # The Alembic revisions (recsys_tasks/data/migrations) ran from the wheel, to the newest one.
            assert conn.exec_driver_sql("SELECT version_num FROM recsys.alembic_version").scalar() == head_revision()
    finally:
        engine.dispose()
