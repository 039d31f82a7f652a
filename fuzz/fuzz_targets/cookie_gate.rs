#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ipsecgw::fuzzing::cookie_gate(data));
