//! Arbitrary bytes as a WAL segment: decode every record (as the last segment and
//! as a middle one) and each entry's payload; nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for last in [true, false] {
        let mut d = etcdsnap_wal::SegmentDecoder::new(data, last, 0);
        while let Ok(Some(f)) = d.next_frame() {
            if let Some(e) = f.entry {
                let _ = e.payload().summary();
            }
        }
    }
});
