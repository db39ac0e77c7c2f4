//! Fuzz target: see [`foolock_fuzz::checks::check_state_file`].
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    foolock_fuzz::checks::check_state_file(data);
});
