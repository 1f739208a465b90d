#!/bin/sh
# Envoy's generated API (xds-protos, which ext_proc needs) ships an old copy of
# opentelemetry/proto/* that overwrites opentelemetry-proto's files when both are installed, and
# the OTLP exporter then fails to import. Reinstall the real opentelemetry-proto over it.
# Usage: scripts/restore-otel-protos.sh PYTHON   (the interpreter of the environment to repair)
set -eu
python="$1"
version=$("$python" -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')
"$python" -m pip install --quiet --force-reinstall --no-deps "opentelemetry-proto==$version"
