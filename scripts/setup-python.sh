#!/usr/bin/env bash
# Creates .venv with the official OpenTelemetry Python SDK and OTLP exporters
# (gRPC, HTTP/protobuf and HTTP/JSON) from PyPI, for the collector's interop tests
# (collector/tests/python_interop.rs). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# One release train, pinned: the JSON exporter (beta) pins the shared
# exporter packages to its own release.
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
  "opentelemetry-sdk==1.45.1" \
  "opentelemetry-exporter-otlp-proto-grpc==1.45.1" \
  "opentelemetry-exporter-otlp-proto-http==1.45.1" \
  "opentelemetry-exporter-otlp-json-http==0.66b1"
.venv/bin/python -c "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc, opentelemetry.exporter.otlp.proto.http, opentelemetry.exporter.otlp.json.http; print('otel python ready')"
