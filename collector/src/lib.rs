//! OTLP receivers (gRPC and HTTP), the one ingest path, batching, spool and writer.
