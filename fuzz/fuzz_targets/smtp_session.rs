//! Fuzz target: `inboxgate::fuzzing::smtp_session` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| inboxgate::fuzzing::smtp_session(data));
