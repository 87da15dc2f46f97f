//! Every decoding of MetaKocka's answers (see `integration_tests::fuzzing`) under libFuzzer.

#![no_main]

use integration_tests::fuzzing::{Vendor, decode_everything};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| decode_everything(Vendor::MetaKocka, data));
