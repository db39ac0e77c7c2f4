//! Fuzz target: see [`foolock_fuzz::checks::check_query`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        foolock_fuzz::checks::check_query(text);
    }
});
