-- Ingest cost (issue 5). Measured with bench/ingest on the 2-core machine
-- (bench/README.md, "Ingest"): each change below raised the engine's own
-- insert rate for realistic GenAI spans.
-- * The n-gram skip indexes on the previews cost ~12 µs of CPU per row at
--   insert (and again at every merge) — a quarter of the engine's work — and
--   helped only searches for rare terms. Text search scans the previews of
--   the chosen time range instead (bench/dashboard measures it).
-- * Parts up to 256 MiB are written compact (one file for all columns):
--   a wide part is ~150 files, and creating and deleting them for every
--   insert and merge kept the kernel busy.
-- * Bodies are compressed with ZSTD(1): level 6 cost several times the CPU
--   at every insert and merge for a few percent of disk.
-- Existing parts keep their codec until merged: nothing is rewritten.

ALTER TABLE loupe.spans DROP INDEX IF EXISTS idx_input_preview;
ALTER TABLE loupe.spans DROP INDEX IF EXISTS idx_output_preview;
ALTER TABLE loupe.spans MODIFY SETTING min_bytes_for_wide_part = 268435456;
ALTER TABLE loupe.spans MODIFY COLUMN input_messages String CODEC(ZSTD(1)) TTL toDateTime(start_time) + toIntervalDay(body_retention_days);
ALTER TABLE loupe.spans MODIFY COLUMN output_messages String CODEC(ZSTD(1)) TTL toDateTime(start_time) + toIntervalDay(body_retention_days);
ALTER TABLE loupe.spans MODIFY COLUMN tool_definitions String CODEC(ZSTD(1)) TTL toDateTime(start_time) + toIntervalDay(body_retention_days);
ALTER TABLE loupe.spans MODIFY COLUMN output_schema String CODEC(ZSTD(1)) TTL toDateTime(start_time) + toIntervalDay(body_retention_days);
