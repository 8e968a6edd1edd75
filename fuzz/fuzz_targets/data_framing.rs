//! Fuzz target: `inboxgate::fuzzing::data_framing` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| inboxgate::fuzzing::data_framing(data));
