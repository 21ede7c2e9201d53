//! A small real etcd snapshot (`seeds/etcd-small.db`) patched by a mutation
//! script (see `apply_script`), then verified, hashed and listed; with script
//! flag bit 3 the trailer is recomputed after patching, so the damage reaches
//! the bbolt and MVCC layers instead of stopping at the SHA-256 mismatch.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|script: &[u8]| {
    let seed = etcdsnap_fuzz::etcd::ETCD_SEED;
    let (mut file, keys) = etcdsnap_fuzz::apply_script_to(seed, 4096, script);
    let flags = script.first().copied().unwrap_or(0);
    if flags & 8 != 0 && file.len() == seed.len() {
        let n = file.len() - 32;
        let digest = etcdsnap_mvcc::trailer::digest(&file[..n]);
        file[n..].copy_from_slice(&digest);
    }
    let rev = keys.first().map_or(0, |k| k.iter().fold(1000i64, |r, &b| r + i64::from(b)));
    etcdsnap_fuzz::etcd::exercise_etcd(&file, rev);
    if flags & 16 != 0 {
        // The bbolt layer on the same bytes (trailer cut off).
        let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        etcdsnap_fuzz::exercise(etcdsnap_mvcc::trailer::split(&file).0, &keys);
    }
});
