"""A real distributed run: the DAG under a scheduler with the CeleryExecutor, on two workers sharing no disk.

The compose stack, as processes on this machine: an api-server (the execution API the tasks talk to),
a scheduler, a dag-processor, PostgreSQL for Airflow's metadata and for the warehouse, Redis as the
Celery broker, a local S3 server (moto) for the artifacts, and two Celery workers, each with its own
working directory, AIRFLOW_HOME (so its own task logs) and ``local_cache_dir``: a CPU worker on queue
``default`` and a "GPU" worker on queue ``gpu`` (``RECSYS_GPU_QUEUE=gpu`` sends train, evaluate and the
mapped publish_shard tasks there). Every file one task hands another must travel through the store.

One run of ``recsys_retrain`` with ``publish.shards: 4`` and ``warehouse.extract_shards: 4`` must succeed, each task must have run on the
worker of its queue, and the publication of the four mapped shards must equal the one-task publication
(``stages.publish.run``) of the same snapshot with the same champion.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from test_retrain_e2e import AIRFLOW, LOGICAL_DATE, _airflow_env, _check_publication, _config, _run, _shop

from recsys_tasks import stages
from recsys_tasks.config import RecsysConfig, WarehouseConfig
from recsys_tasks.data.warehouse import create_engine

#: The broker. Database 13 (the issue's number) keeps clear of the compose stack's 0; every key this
#: test writes carries its own prefix (kombu's ``global_keyprefix``) and is deleted after.
REDIS_URL = os.environ.get("RECSYS_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
DAG_ID = "recsys_retrain"
RUN_ID = f"celery__{LOGICAL_DATE}"
SHARDS = 4
RUN_TIMEOUT_S = 480
#: The tasks each queue, and so each worker, must have run.
GPU_TASKS = {"train", "evaluate", "publish_shard", "publish_similar_items"}
CPU_TASKS = {"extract", "extract_events", "validate", "decide", "plan_publish", "publish", "cleanup"}
WORKERS = {"cpu": ("default", 1), "gpu": ("gpu", 2)}  # name: (queue, concurrency)
LISTS = (
    'SELECT user_id, rank, item_id, reason, score, generated_at FROM "{s}".recommendations '
    "WHERE as_of = :d ORDER BY user_id, rank"
)


class _Processes:
    """Long-running Airflow processes, each in its own process group, all stopped by ``stop``."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: list[str], env: dict[str, str], cwd: Path) -> None:
        with (self.logs / f"{name}.log").open("wb") as out:
            self.procs[name] = subprocess.Popen(
                [AIRFLOW, *args], env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def dead(self) -> list[str]:
        return [f"{name} (exit {p.returncode})" for name, p in self.procs.items() if p.poll() is not None]

    def tail(self, name: str, chars: int = 1500) -> str:
        return (self.logs / f"{name}.log").read_text(encoding="utf-8", errors="replace")[-chars:]

    def stop(self) -> None:
        """SIGTERM every group (Celery shuts down warm), then SIGKILL what is left after 30 s."""
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
            try:  # the whole group: the task processes a worker forked must not outlive it
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


@pytest.fixture
def metadata_url(pg_database_url) -> Iterator[str]:
    """Airflow's metadata database on PostgreSQL (a real scheduler needs row locks), dropped after."""
    name = "recsys_test_celery_" + uuid.uuid4().hex[:8]
    server = sa.engine.make_url(pg_database_url)
    admin = sa.create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield server.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def warehouse(pg_database_url) -> Iterator[tuple[str, str, str]]:
    """(url, source schema, output schema) in the PostgreSQL test database; both schemas dropped after."""
    tag = uuid.uuid4().hex[:8]
    source, output = f"celery_src_{tag}", f"celery_out_{tag}"
    engine = sa.create_engine(pg_database_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{source}"'))
    yield pg_database_url, source, output
    with engine.begin() as conn:
        for schema in (source, output):
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def broker_prefix() -> Iterator[str]:
    """A key prefix of our own on the Redis broker; every key under it is deleted after."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {REDIS_URL} is not reachable ({exc}); start it or set RECSYS_TEST_REDIS_URL")
    prefix = f"recsys-test-{uuid.uuid4().hex[:8]}:"
    yield prefix
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def processes(tmp_path) -> Iterator[_Processes]:
    (tmp_path / "process-logs").mkdir()
    procs = _Processes(tmp_path / "process-logs")
    yield procs
    procs.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stack_env(env: dict[str, str], *, metadata_url: str, broker_prefix: str, api_port: int) -> dict:
    """The environment every process of the stack shares (the AWS_* variables included)."""
    return {
        **env,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": REDIS_URL,
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": broker_prefix,
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "3600",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        # The same in every process: the scheduler signs the tokens the tasks present to the api-server.
        "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex * 2,
        "AIRFLOW__API__SECRET_KEY": uuid.uuid4().hex,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        # Only the run this test triggers: no scheduled run of recsys_retrain (or recsys_refresh) joins it.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "RECSYS_GPU_QUEUE": "gpu",
        "RECSYS_TASK_RETRIES": "0",  # a failure shows at once, not after two retries five minutes apart
    }


def _start_stack(
    processes: _Processes, env: dict[str, str], *, api_port: int, config: dict, tmp_path: Path
) -> dict[str, Path]:
    """Start the api-server, scheduler, dag-processor and the two workers; the workers' homes by name."""
    home = Path(env["AIRFLOW_HOME"])
    processes.start("api-server", ["api-server", "-H", "127.0.0.1", "-p", str(api_port)], env, home)
    processes.start("scheduler", ["scheduler"], env, home)
    processes.start("dag-processor", ["dag-processor"], env, home)
    workers = {}
    for name, (queue, concurrency) in WORKERS.items():
        workers[name] = worker_home = tmp_path / f"worker-{name}"
        worker_home.mkdir()
        worker_config = worker_home / "recsys.yaml"
        worker_config.write_text(yaml.safe_dump({**config, "local_cache_dir": str(worker_home / "cache")}))
        processes.start(
            f"worker-{name}",
            ["celery", "worker", "-q", queue, "-c", str(concurrency), "-H", f"{name}@%h",
             "--skip-serve-logs"],  # two workers on one machine: no log server ports to clash
            {**env, "AIRFLOW_HOME": str(worker_home), "RECSYS_CONFIG": str(worker_config)},
            worker_home,
        )
    return workers


def _task_logs(home: Path) -> dict[tuple[str, int], Path]:
    """The task logs a worker wrote: ``(task_id, map_index) -> file`` (map_index -1: not mapped)."""
    found = {}
    for path in (home / "logs").glob(f"dag_id={DAG_ID}/run_id=*/task_id=*/**/attempt=*.log"):
        parts = dict(p.split("=", 1) for p in path.relative_to(home / "logs").parts[:-1] if "=" in p)
        found[(parts["task_id"], int(parts.get("map_index", -1)))] = path
    return found


def _diagnosis(meta: sa.Engine, processes: _Processes, workers: dict[str, Path]) -> str:
    """What a failed run needs to be understood: task states, the failed tasks' logs, the daemons' tails."""
    with meta.connect() as conn:
        states = conn.execute(
            sa.text("SELECT task_id, map_index, state FROM task_instance WHERE dag_id = :d ORDER BY 1, 2"),
            {"d": DAG_ID},
        ).all()
    failed = {(s.task_id, s.map_index) for s in states if s.state not in ("success", "skipped")}
    lines = [f"task instances: {[tuple(s) for s in states]}", f"dead processes: {processes.dead()}"]
    for worker, home in workers.items():
        for (task, index), path in sorted(_task_logs(home).items()):
            if (task, index) in failed:
                log = path.read_text(errors="replace")[-3000:]
                lines.append(f"--- {worker} worker: {task}[{index}] ---\n{log}")
    lines += [f"--- {name} ---\n" + processes.tail(name) for name in processes.procs]
    return "\n".join(lines)


def _run_dag(
    meta: sa.Engine, env: dict[str, str], processes: _Processes, workers: dict[str, Path], logs: Path
) -> sa.Row:
    """Trigger one run through the CLI once the DAG is parsed; its dag_run row once it has finished."""
    deadline = time.monotonic() + 180
    while True:  # the dag-processor has serialized the DAG
        with meta.connect() as conn:
            if conn.execute(sa.text("SELECT 1 FROM serialized_dag WHERE dag_id = :d"), {"d": DAG_ID}).first():
                break
        alive = time.monotonic() < deadline and not processes.dead()
        assert alive, "the DAG was never parsed\n" + _diagnosis(meta, processes, workers)
        time.sleep(2)
    # A manual run's data interval ends now; the as_of param makes it the day ending at LOGICAL_DATE.
    trigger = ["dags", "trigger", DAG_ID, "--run-id", RUN_ID, "--conf", json.dumps({"as_of": LOGICAL_DATE})]
    for args in (["dags", "unpause", DAG_ID], trigger):
        cli = _run([AIRFLOW, *args], env, logs / f"{args[1]}.log")
        assert cli.returncode == 0, cli.stderr[-2000:]

    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        with meta.connect() as conn:
            run = conn.execute(
                sa.text(
                    "SELECT state, data_interval_start, data_interval_end FROM dag_run WHERE run_id = :r"
                ),
                {"r": RUN_ID},
            ).one()
        if run.state in ("success", "failed"):
            break
        late = time.monotonic() > deadline
        assert not late, f"still {run.state} after {RUN_TIMEOUT_S} s\n" + _diagnosis(meta, processes, workers)
        assert not processes.dead(), _diagnosis(meta, processes, workers)
        time.sleep(3)
    assert run.state == "success", _diagnosis(meta, processes, workers)
    return run


def _lists(engine: sa.Engine, schema: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(LISTS.format(s=schema)), {"d": LOGICAL_DATE})]


def test_retrain_runs_on_two_celery_workers_and_its_shards_publish_what_one_task_publishes(
    tmp_path, s3_root, metadata_url, warehouse, broker_prefix, processes
):
    url, source, output = warehouse
    engine = create_engine(url, output_schema=output)
    _shop(engine, WarehouseConfig(source_schema=source))
    config_path = _config(tmp_path, source_schema=source, output_schema=output)
    config = {**yaml.safe_load(config_path.read_text()), **s3_root}
    config["publish"]["shards"] = SHARDS
    config["warehouse"]["extract_shards"] = SHARDS
    config_path.write_text(yaml.safe_dump(config))
    home = tmp_path / "airflow"
    home.mkdir()
    api_port = _free_port()
    env = _stack_env(
        _airflow_env(home, warehouse_url=url, config_path=config_path),
        metadata_url=metadata_url, broker_prefix=broker_prefix, api_port=api_port,
    )
    migrate = _run([AIRFLOW, "db", "migrate"], env, tmp_path / "migrate.log")
    assert migrate.returncode == 0, migrate.stderr[-2000:]

    workers = _start_stack(processes, env, api_port=api_port, config=config, tmp_path=tmp_path)
    meta = sa.create_engine(metadata_url)
    try:
        run = _run_dag(meta, env, processes, workers, tmp_path)
        with meta.connect() as conn:
            tis = conn.execute(
                sa.text("SELECT task_id, map_index, state, queue FROM task_instance WHERE run_id = :r"),
                {"r": RUN_ID},
            ).all()
            validated = conn.execute(
                sa.text("SELECT value FROM xcom WHERE run_id = :r AND task_id = 'validate' AND key = :k"),
                {"r": RUN_ID, "k": "return_value"},
            ).scalar_one()
    finally:
        meta.dispose()

    # The four mapped shards succeeded; every task was sent to the queue its DAG wiring names ...
    for mapped in ("extract_events", "publish_shard"):
        shards = sorted((t.map_index, t.state) for t in tis if t.task_id == mapped)
        assert shards == [(i, "success") for i in range(SHARDS)], (mapped, shards)
    queues = {t.task_id: t.queue for t in tis if t.state == "success"}
    assert {t: queues[t] for t in GPU_TASKS | CPU_TASKS} == {
        **dict.fromkeys(GPU_TASKS, "gpu"), **dict.fromkeys(CPU_TASKS, "default")
    }, queues
    # ... and ran on that queue's worker: its log is on that worker's disk, and only there.
    ran = {name: _task_logs(worker_home) for name, worker_home in workers.items()}
    assert not set(ran["cpu"]) & set(ran["gpu"]), "a task ran on both workers"
    assert {task for task, _ in ran["gpu"]} == GPU_TASKS, sorted(ran["gpu"])
    assert {task for task, _ in ran["cpu"]} >= CPU_TASKS, sorted(ran["cpu"])
    assert {index for task, index in ran["gpu"] if task == "publish_shard"} == set(range(SHARDS))

    published = _check_publication(engine, output)
    sharded = _lists(engine, output)
    with engine.connect() as conn:
        champion = conn.execute(sa.text(f'SELECT model_version FROM "{output}".publications')).scalar_one()

    # The same snapshot published again by one task (the library's N = 1 path) with the same champion.
    snapshot = (json.loads(validated) if isinstance(validated, str) else validated)["snapshot"]
    start, end = stages.context.run_interval(  # as the DAG's tasks did
        data_interval_start=run.data_interval_start, data_interval_end=run.data_interval_end,
        as_of=LOGICAL_DATE,
    )
    reference = RecsysConfig.from_mapping({**config, "local_cache_dir": str(tmp_path / "reference-cache")})
    ctx = stages.context.make_context(
        dag_id=DAG_ID, run_id=RUN_ID, interval_start=start, interval_end=end, warehouse_url=url,
        config=reference.with_overrides({"publish.shards": 1}),
    )
    try:
        one = stages.publish.run(ctx, snapshot)
        single = _lists(engine, output)
    finally:
        ctx.dispose()
        engine.dispose()
    assert one["model_version"] == champion
    assert (one["users"], one["rows"]) == (published["users"], published["rows"])
    assert min(r[5] for r in single) > max(r[5] for r in sharded), "one task replaced every row"
    assert [r[:4] for r in sharded] == [r[:4] for r in single], "same users, lists, order and reasons"
    assert all(abs(a[4] - b[4]) < 1e-4 for a, b in zip(sharded, single, strict=True))
