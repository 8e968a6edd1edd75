//! Fuzz target: `inboxgate::fuzzing::ingest` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| inboxgate::fuzzing::ingest(data));
