//! Arbitrary bytes as an etcd snapshot or db file: trailer, verify, status,
//! HashKV and the key space must return, never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The last 8 bytes double as a revision to read at.
    let rev = data.len().checked_sub(8).and_then(|i| data.get(i..)).map_or(0, |b| {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        i64::from_le_bytes(a) % 4096
    });
    etcdsnap_fuzz::etcd::exercise_etcd(data, rev);
});
