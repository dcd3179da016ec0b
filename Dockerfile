# MetaGuard's Airflow image: every Airflow service in docker-compose.yaml runs it.
#
# A slim Python base with requirements.txt installed under constraints.txt gives
# the same package versions that the test suite runs against. The official
# apache/airflow image would bring its own provider set and constraints.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AIRFLOW_HOME=/opt/airflow \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# curl serves the api-server and scheduler health checks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*

# The same uid and group 0 as the official Airflow image, so bind mounts
# prepared for that image keep working. Folders that Airflow writes to
# (AIRFLOW_HOME for airflow.cfg, logs, secrets, MetaGuard's roots) are group
# writable, so another AIRFLOW_UID with group 0 works too.
RUN useradd --uid 50000 --gid 0 --home-dir /opt/airflow --create-home --shell /bin/bash airflow

RUN python -m venv /opt/venv
COPY requirements.txt constraints.txt /tmp/requirements/
RUN pip install -r /tmp/requirements/requirements.txt -c /tmp/requirements/constraints.txt \
    && rm -rf /tmp/requirements

# The editable install points at /opt/airflow/plugins, so the folder that
# docker-compose.yaml mounts there is the code that runs, and the `metaguard`
# command works in every container.
COPY pyproject.toml README.md /opt/airflow/
COPY plugins/metaguard /opt/airflow/plugins/metaguard
COPY dags /opt/airflow/dags
COPY expectations /opt/airflow/expectations
RUN pip install --no-deps -e /opt/airflow \
    && mkdir -p /opt/airflow/logs /opt/airflow/secrets \
        /opt/metaguard/warehouse /opt/metaguard/output /opt/metaguard/models \
    && chown -R airflow:0 /opt/airflow/logs /opt/airflow/secrets /opt/metaguard \
    && chmod -R g+rwX /opt/airflow/logs /opt/metaguard \
    && chmod 0770 /opt/airflow/secrets \
    && chmod 0775 /opt/airflow

USER 50000
WORKDIR /opt/airflow
EXPOSE 8080
CMD ["airflow", "version"]
