//! Fuzz target: `inboxgate::fuzzing::config_loader` on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| inboxgate::fuzzing::config_loader(data));
