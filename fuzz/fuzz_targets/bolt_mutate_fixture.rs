//! A small valid bbolt file (committed seed) patched by a mutation script
//! from the input, then opened, checked, walked and searched.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|script: &[u8]| {
    let (file, keys) = etcdsnap_fuzz::apply_script(script);
    let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    etcdsnap_fuzz::exercise(&file, &keys);
});
