"""Exports GenAI chat spans with the official OpenTelemetry Python SDK.

Usage: export.py TRANSPORT ENDPOINT
  TRANSPORT: grpc | http-protobuf | http-json
Each span's service.name is `python-TRANSPORT`; exits non-zero if the export fails.
"""
import sys

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult


class Checked:
    """Wraps an exporter and remembers whether every export succeeded."""

    def __init__(self, inner):
        self.inner = inner
        self.ok = True

    def export(self, spans):
        result = self.inner.export(spans)
        self.ok = self.ok and result == SpanExportResult.SUCCESS
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


def exporter(transport, endpoint):
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression
        return OTLPSpanExporter(endpoint=endpoint, insecure=True, compression=Compression.Gzip)
    if transport == "http-protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.exporter.otlp.proto.http import Compression
        return OTLPSpanExporter(endpoint=endpoint, compression=Compression.Gzip)
    if transport == "http-json":
        from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter
        return OTLPSpanExporter(endpoint=endpoint)
    raise SystemExit(f"unknown transport {transport}")


def main():
    transport, endpoint = sys.argv[1], sys.argv[2]
    checked = Checked(exporter(transport, endpoint))
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"python-{transport}", "tenant.id": "pyco"})
    )
    provider.add_span_processor(SimpleSpanProcessor(checked))
    tracer = provider.get_tracer("loupe-interop")
    with tracer.start_as_current_span("handle_request"):
        with tracer.start_as_current_span("chat claude-haiku-4-5") as span:
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.provider.name", "anthropic")
            span.set_attribute("gen_ai.request.model", "claude-haiku-4-5")
            span.set_attribute("gen_ai.response.id", f"msg_py_{transport}")
            span.set_attribute("gen_ai.usage.input_tokens", 200)
            span.set_attribute("gen_ai.usage.output_tokens", 40)
            span.set_attribute(
                "gen_ai.input.messages",
                '[{"role":"user","parts":[{"type":"text","content":"hi from %s"}]}]' % transport,
            )
    provider.shutdown()
    if not checked.ok:
        raise SystemExit(f"{transport}: export failed")


main()
