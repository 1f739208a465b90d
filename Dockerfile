# syntax=docker/dockerfile:1
# One image for both `fleetroute operator` and `fleetroute serve` (the chart sets the arguments).
# Stage 1 builds the wheel and installs it with its dependencies into a virtual environment;
# stage 2 is the same slim Python base with only that environment: no compilers, no pip runs, no
# sources. tests/packaging checks this file statically.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m pip install "build==1.6.1"
COPY pyproject.toml README.md ./
COPY api ./api
COPY operator ./operator
COPY router ./router
COPY scripts/restore-otel-protos.sh ./scripts/
RUN python -m build --wheel --outdir /dist . \
    && python -m venv /opt/fleetroute \
    && /opt/fleetroute/bin/pip install /dist/*.whl \
    && scripts/restore-otel-protos.sh /opt/fleetroute/bin/python \
    && /opt/fleetroute/bin/fleetroute --help >/dev/null

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="fleetroute" \
      org.opencontainers.image.description="Kubernetes operator and router for heterogeneous LLM fleets" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://fleetroute.dev" \
      org.opencontainers.image.url="https://fleetroute.dev" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /opt/fleetroute /opt/fleetroute
ENV PATH="/opt/fleetroute/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Numeric, so that Kubernetes can verify runAsNonRoot; the chart runs as the same UID.
USER 65532:65532
ENTRYPOINT ["fleetroute"]
CMD ["--help"]
