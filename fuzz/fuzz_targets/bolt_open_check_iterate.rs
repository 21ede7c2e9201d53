//! Arbitrary bytes as a bbolt file: open, check, walk every bucket, seek.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Seek keys come from the input itself (its last bytes), so the fuzzer can
    // steer them towards keys that exist in the file.
    let tail = data.len().saturating_sub(48);
    let keys: Vec<&[u8]> = data.get(tail..).unwrap_or(&[]).chunks(12).collect();
    etcdsnap_fuzz::exercise(data, &keys);
});
