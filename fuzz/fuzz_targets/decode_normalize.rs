//! Any bytes through what an OTLP/HTTP body goes through before it is queued:
//! decompression with its cap, protobuf or JSON decoding, screening (ids,
//! value caps), normalisation, log content, validation and pricing.
//! The property: no panic, no unbounded allocation.
#![no_main]

use std::sync::OnceLock;

use collector::decode::{Encoding, decode_logs, decode_traces, decompress};
use libfuzzer_sys::fuzz_target;
use schemas::NormalizeContext;
use schemas::pricing::PriceTable;

fn prices() -> &'static PriceTable {
    static P: OnceLock<PriceTable> = OnceLock::new();
    P.get_or_init(|| PriceTable::bundled().unwrap_or_else(|_| std::process::abort()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let enc = if mode & 1 == 0 { Encoding::Protobuf } else { Encoding::Json };
    let gzip = mode & 2 != 0;
    let Ok(plain) = decompress(
        bytes::Bytes::copy_from_slice(body),
        gzip.then_some("gzip"),
        1 << 20,
    ) else {
        return;
    };
    if mode & 4 == 0 {
        if let Ok(mut req) = decode_traces(plain.clone(), enc) {
            let _ = collector::limits::screen_traces(&mut req, 256);
            let mut spans = schemas::normalize_traces(req, &NormalizeContext::default());
            schemas::finish_batch(&mut spans, prices());
        }
    } else if let Ok(mut req) = decode_logs(plain, enc) {
        let _ = collector::limits::screen_logs(&mut req, 256);
        let _ = schemas::content_from_logs(&req);
    }
});
