#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ipsecgw::fuzzing::ike_decode(data));
