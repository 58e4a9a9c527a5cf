# Port's server image. Build: docker build -t port .
# Run:   docker run -p 8080:8080 -v port-data:/data port        (serves the API; migrates first)
# CLI:   docker run --rm -v port-data:/data port repo add https://github.com/acme/stardist
# PostgreSQL instead of SQLite in /data: -e PORT_DATABASE_URL=postgresql://user:pw@host/db
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/port
COPY pyproject.toml README.md constraints.txt ./
COPY manifests ./manifests
COPY indexer ./indexer
COPY port ./port
RUN /opt/port/bin/pip install --no-cache-dir -c constraints.txt .

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
    PORT_HOST=0.0.0.0 \
    PYTHONUNBUFFERED=1
USER port
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=2)"
ENTRYPOINT ["tini", "--", "port"]
CMD ["serve"]
