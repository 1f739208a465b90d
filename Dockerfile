# syntax=docker/dockerfile:1
# One image for both `fleetroute operator` and `fleetroute serve`.
FROM python:3.11.14-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY api ./api
COPY operator ./operator
COPY router ./router
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.14-slim-bookworm
LABEL org.opencontainers.image.title="fleetroute" \
      org.opencontainers.image.description="Kubernetes operator and router for heterogeneous LLM fleets" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://fleetroute.dev"
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin fleetroute
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 65532:65532
ENTRYPOINT ["fleetroute"]
CMD ["serve", "--help"]
