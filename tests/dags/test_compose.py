"""docker-compose.yml is a valid Compose file and wires the stack the operations guide describes.

Validated offline by the Compose CLI itself (``docker-compose config``: Debian's v1 package, which
scripts/test.sh installs when missing, or the ``docker compose`` v2 plugin); no Docker engine needed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from recsys_tasks.config import RecsysConfig

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"

AIRFLOW_SERVICES = {
    "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
    "airflow-triggerer", "airflow-worker", "airflow-worker-gpu",
}


def _compose_cli() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    pytest.skip("neither docker-compose nor the docker compose plugin is installed (scripts/test.sh installs docker-compose with apt-get when run as root)")


@pytest.fixture(scope="module")
def resolved() -> dict:
    """The file as Compose resolves it: anchors merged, ${VAR:-default} substituted (defaults only)."""
    env = {"PATH": str(Path(shutil.which("docker-compose") or shutil.which("docker") or "/usr/bin").parent) + ":/usr/bin:/bin"}
    proc = subprocess.run(
        [*_compose_cli(), "-f", str(COMPOSE), "--project-directory", str(REPO), "config"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return yaml.safe_load(proc.stdout)


def test_stack_has_every_service(resolved):
    expected = AIRFLOW_SERVICES | {"postgres", "warehouse", "warehouse-init", "redis", "minio", "minio-init"}
    assert set(resolved["services"]) == expected


def test_celery_executor_and_shared_config(resolved):
    for name in AIRFLOW_SERVICES:
        env = resolved["services"][name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:") or "@redis:6379" in env["AIRFLOW__CELERY__BROKER_URL"]
        assert "@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], name
        assert env["AIRFLOW_CONN_RECSYS_WAREHOUSE"].endswith("@warehouse:5432/shop"), name
        assert env["RECSYS_GPU_QUEUE"] == "gpu" and env["RECSYS_GPU_POOL"] == "recsys_gpu", name
        assert env["RECSYS_CONFIG"] == "/opt/recsys/config/compose.yaml", name
        # The UI login file airflow-init writes is read by the api-server from this volume.
        assert "/opt/recsys/var" in map(_volume_target, resolved["services"][name]["volumes"]), name


def _volume_target(volume: str | dict) -> str:
    """Compose v2 prints volumes as mappings, v1 as ``source:target[:mode]`` strings."""
    return str(volume["target"]) if isinstance(volume, dict) else volume.split(":")[1]


def _volume_source(volume: str | dict) -> str:
    return str(volume["source"]) if isinstance(volume, dict) else volume.split(":")[0]


def _mounted_config(resolved: dict) -> Path:
    """The config file the Airflow services read: ``RECSYS_CONFIG`` inside the ``./config`` mount."""
    worker = resolved["services"]["airflow-worker"]
    mount = next(v for v in worker["volumes"] if _volume_target(v) == "/opt/recsys/config")
    path = Path(worker["environment"]["RECSYS_CONFIG"]).relative_to("/opt/recsys/config")
    return REPO / _volume_source(mount) / path


def test_artifacts_live_in_the_minio_bucket(resolved):
    """Workers hand each other s3:// URIs into MinIO; the bucket exists before any worker starts."""
    services = resolved["services"]
    minio = services["minio"]
    assert minio["image"].startswith("minio/minio:RELEASE."), "pin a MinIO release, never :latest"
    assert "mc" in minio["healthcheck"]["test"] and "ready" in minio["healthcheck"]["test"]
    assert "/data" in map(_volume_target, minio["volumes"])
    assert set(resolved["volumes"]) >= {_volume_source(v) for v in minio["volumes"]}

    init = services["minio-init"]
    assert init["image"].startswith("minio/mc:RELEASE.")
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    script = " ".join(init["command"])
    assert "http://minio:9000" in script and "mc mb --ignore-existing recsys/" in script

    config_file = _mounted_config(resolved)
    cfg = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    RecsysConfig.from_file(config_file)  # the library accepts it (known keys, a known protocol)
    bucket, _, prefix = cfg["artifact_root"].removeprefix("s3://").partition("/")
    assert cfg["artifact_root"].startswith("s3://") and prefix, cfg["artifact_root"]
    assert f"mc mb --ignore-existing recsys/{bucket}" in script, f"minio-init must create {bucket}"
    assert cfg["artifact_storage_options"] == {"endpoint_url": "http://minio:9000"}
    assert not {"key", "secret", "password"} & {k.lower() for k in cfg["artifact_storage_options"]}
    assert "local_cache_dir" not in cfg  # each worker's own disk

    for name in ("airflow-worker", "airflow-worker-gpu"):
        depends = services[name]["depends_on"]
        assert depends.get("minio", {}).get("condition") == "service_healthy", name
        assert depends.get("minio-init", {}).get("condition") == "service_completed_successfully", name


def test_airflow_services_get_the_store_credentials(resolved):
    minio = resolved["services"]["minio"]["environment"]
    for name in AIRFLOW_SERVICES:
        env = resolved["services"][name]["environment"]
        assert env["AWS_ACCESS_KEY_ID"] == minio["MINIO_ROOT_USER"], name
        assert env["AWS_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"], name
        assert env["AWS_DEFAULT_REGION"], name


def test_workers_listen_on_their_queues(resolved):
    cpu = resolved["services"]["airflow-worker"]["command"]
    gpu = resolved["services"]["airflow-worker-gpu"]["command"]
    cpu = cpu if isinstance(cpu, str) else " ".join(cpu)
    gpu = gpu if isinstance(gpu, str) else " ".join(gpu)
    assert cpu.startswith("celery worker") and "-q default" in cpu
    assert gpu.startswith("celery worker") and "-q gpu" in gpu


def test_gpu_worker_reserves_nvidia_gpus_and_cuda_torch(resolved):
    gpu = resolved["services"]["airflow-worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert {"driver": "nvidia", "count": "all", "capabilities": ["gpu"]} in devices
    assert gpu["build"]["args"]["TORCH_VARIANT"].startswith("cu")
    assert resolved["services"]["airflow-worker"]["build"]["args"]["TORCH_VARIANT"] == "cpu"
    assert "deploy" not in resolved["services"]["airflow-worker"]


def test_init_creates_the_gpu_pool_and_the_warehouse_is_loaded(resolved):
    init = resolved["services"]["airflow-init"]
    script = " ".join(init["command"])
    script = script.replace("$$", "$").replace("${", "$").replace("}", "")  # v1 keeps the $$ escapes
    assert "airflow db migrate" in script and 'airflow pools set "$RECSYS_GPU_POOL" "$RECSYS_GPU_COUNT"' in script
    synth = resolved["services"]["warehouse-init"]["command"]
    assert synth[:4] == ["python", "-m", "recsys_tasks.cli", "synth"] and "--replace" in synth
    assert init["depends_on"]["warehouse-init"]["condition"] == "service_completed_successfully"
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert resolved["services"][name]["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully", name


def test_env_example_documents_every_variable():
    """Every ${VAR} the compose file reads is explained in .env.example."""
    import re

    used = set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", COMPOSE.read_text(encoding="utf-8")))
    documented = set(re.findall(r"^#?\s*([A-Z_][A-Z0-9_]*)=", (REPO / ".env.example").read_text(encoding="utf-8"), re.M))
    assert used - documented == set()


def test_dockerfile_builds_from_airflow_3_3_2():
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert "apache/airflow:3.3.2-python3.11" in text
    assert "-r requirements.txt" in text and "ARG TORCH_VARIANT" in text
