//! `salvage` of a damaged small real etcd snapshot (`seeds/etcd-small.db`
//! patched by a mutation script, see `apply_script_to`; flag bit 3 recomputes
//! the trailer, bit 5 zeroes the whole page the last record points into, bit
//! 6 drops the trailer so the input is a raw db). Whatever the damage, the
//! salvage either refuses with an error or writes an output that etcdsnap's
//! own `verify` passes, with a loss report whose recovered and lost ranges
//! are sorted, disjoint and inside the knowable span.
#![no_main]

use std::path::PathBuf;

use etcdsnap_mvcc::salvage::{salvage, SalvageOptions};
use etcdsnap_mvcc::verify::{verify, VerifyOptions};
use libfuzzer_sys::fuzz_target;

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("etcdsnap-fuzz-salvage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fuzz_target!(|script: &[u8]| {
    let seed = etcdsnap_fuzz::etcd::ETCD_SEED;
    let (mut file, _) = etcdsnap_fuzz::apply_script_to(seed, 4096, script);
    let flags = script.first().copied().unwrap_or(0);
    if flags & 32 != 0 {
        // The page the last record points into, zeroed (a torn write).
        let records = script.get(1..).unwrap_or_default().chunks_exact(5);
        let page = records.last().map_or(0, |r| usize::from(r[3]));
        let pages = file.len() / 4096;
        if pages > 0 {
            let p = page % pages;
            file[p * 4096..(p + 1) * 4096].fill(0);
        }
    }
    if flags & 8 != 0 && file.len() == seed.len() {
        let n = file.len() - 32;
        let digest = etcdsnap_mvcc::trailer::digest(&file[..n]);
        file[n..].copy_from_slice(&digest);
    }
    if flags & 64 != 0 && file.len() == seed.len() {
        file.truncate(seed.len() - 32);
    }
    let dir = scratch();
    let (input, output) = (dir.join("in.db"), dir.join("out.db"));
    std::fs::write(&input, &file).expect("write the input");
    let opts = SalvageOptions {
        output: etcdsnap_io::CreateOptions { overwrite: true, remove_stale: true },
        ..SalvageOptions::default()
    };
    match salvage(&input, &output, &opts) {
        Err(e) => assert!(!e.to_string().is_empty(), "an error without a message"),
        Ok(r) => {
            let out = std::fs::read(&output).expect("the output was committed");
            let v = verify(&out, VerifyOptions { require_trailer: true });
            assert!(v.is_ok(), "salvaged output fails verify: {:?}", v.findings.first());
            assert_eq!(r.output.bytes, out.len() as u64, "the report's output bytes");
            let mut all: Vec<(i64, i64)> = r.recovered.iter().chain(&r.lost).copied().collect();
            all.sort_unstable();
            for w in all.windows(2) {
                assert!(w[0].1 < w[1].0, "recovered and lost ranges overlap: {:?}", all);
            }
            for (a, b) in &all {
                assert!(a <= b && *b <= r.latest_revision, "range {a}-{b} past latest {}", r.latest_revision);
            }
        }
    }
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&output);
});
