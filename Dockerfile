# Port's server image. Build: docker build -t port .
# Once:  docker run -v port-data:/data port db upgrade
# Run:   docker run -v port-data:/data port repo scan --all   (the default command)
# PostgreSQL instead of SQLite in /data: -e PORT_DATABASE_URL=postgresql://user:pw@host/db
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/port
COPY pyproject.toml README.md ./
COPY manifests ./manifests
COPY indexer ./indexer
COPY port ./port
RUN /opt/port/bin/pip install --no-cache-dir .

FROM python:3.11-slim
# git for the indexer; tini reaps git's children and forwards signals.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client tini ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /home/port --uid 10001 port \
    && mkdir /data && chown port /data
COPY --from=build /opt/port /opt/port
ENV PATH=/opt/port/bin:$PATH \
    PORT_DATA_DIR=/data \
    PYTHONUNBUFFERED=1
USER port
VOLUME ["/data"]
ENTRYPOINT ["tini", "--", "port"]
CMD ["repo", "scan", "--all"]
