# The image every Airflow service of docker-compose.yml runs: Apache Airflow 3.3.2 (Python 3.11)
# plus this project's pinned requirements and the recsys_tasks package, DAGs and plugins.
#
#   docker compose build                       # CPU image (torch CPU build), all services
#   TORCH_VARIANT=cu128 docker compose build airflow-worker-gpu   # the GPU worker's CUDA build
#
# TORCH_VARIANT selects the wheel index of torch: "cpu" (default, small) or a CUDA build such as
# "cu128"; the torch version is the one pinned in requirements.txt either way.
ARG AIRFLOW_IMAGE=apache/airflow:3.3.2-python3.11
FROM ${AIRFLOW_IMAGE}

ARG TORCH_VARIANT=cpu
ENV HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    PYTHONUNBUFFERED=1

USER root
RUN mkdir -p /opt/recsys/var && chown -R airflow:0 /opt/recsys
USER airflow
WORKDIR /opt/recsys

# Dependencies first, so a code change does not reinstall them. The Airflow pin keeps pip from
# swapping the image's Airflow for another version; the torch index gives the CPU or CUDA build.
COPY --chown=airflow:0 requirements.txt pyproject.toml ./
RUN pip install --no-cache-dir \
        --extra-index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}" \
        "apache-airflow==${AIRFLOW_VERSION}" apache-airflow-providers-celery \
        -r requirements.txt

COPY --chown=airflow:0 . .
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e .
