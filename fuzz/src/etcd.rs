//! The etcd layer of the fuzz targets: everything `etcdsnap` runs on an
//! untrusted snapshot or db (trailer, verify, status, HashKV, the key space)
//! must return, never panic or hang. When `verify` finds no problem, the
//! read paths must succeed and agree with its counts.

use etcdsnap_bolt::Db;
use etcdsnap_mvcc::hashkv::{hash_kv, TombstoneRule};
use etcdsnap_mvcc::index::Index;
use etcdsnap_mvcc::keyspace::{all_revisions, at_revision, bounds, Selection};
use etcdsnap_mvcc::status::status;
use etcdsnap_mvcc::trailer;
use etcdsnap_mvcc::verify::{verify, VerifyOptions};

/// A small real etcd 3.5.1 snapshot (trailer included): `etcdsnap rewrite` of
/// `testdata/etcd-3.5.1/snapshot.db` keeping `/tenant-1/registry/pods/` and
/// `compact_rev_key` (see `README.md`).
pub const ETCD_SEED: &[u8] = include_bytes!("../seeds/etcd-small.db");

/// Runs every etcd-level read of `file` (a snapshot or raw db); `extra_rev`
/// is one more revision to read at.
pub fn exercise_etcd(file: &[u8], extra_rev: i64) {
    let t = trailer::verify(file);
    std::hint::black_box(&t);
    let report = verify(file, VerifyOptions { require_trailer: false });
    for f in report.findings.iter().take(8) {
        std::hint::black_box(&f.message);
    }

    let (image, _) = trailer::split(file);
    let Ok(db) = Db::open(image) else {
        assert!(!report.is_ok(), "verify passed a file that does not open");
        return;
    };
    let st = status(&db);
    let h_skip = hash_kv(&db, 0, TombstoneRule::Skip);
    let h_incl = hash_kv(&db, 0, TombstoneRule::Include);
    let latest = at_revision(&db, 0, &Selection::default());
    let b = bounds(&db);
    let _ = Index::build(&db).map(|ix| std::hint::black_box(ix.keep(extra_rev).len()));
    let _ = all_revisions(&db, &Selection { prefix: b"/".to_vec(), key: None }).map(|v| v.len());
    if let Ok((compact, current)) = b {
        for rev in [compact, compact.saturating_add(1), current, extra_rev] {
            if let Ok(h) = hash_kv(&db, rev, TombstoneRule::Include) {
                assert!(h.revision <= h.current_revision && (rev == 0 || h.revision == rev));
            }
            if let Ok(keys) = at_revision(&db, rev, &Selection::default()) {
                let r = keys.rev();
                assert!(keys.iter().zip(keys.iter().skip(1)).all(|(a, b)| a.kv.key < b.kv.key), "key space not sorted");
                assert!(keys.iter().all(|v| v.at.rev.main <= r && !v.at.tombstone));
            }
        }
    }

    if report.is_ok() {
        // A file verify passes must read back, with the same figures.
        let st = st.unwrap_or_else(|e| panic!("verify passed but status failed: {e}"));
        let h_skip = h_skip.unwrap_or_else(|e| panic!("verify passed but hash_kv failed: {e}"));
        let h_incl = h_incl.unwrap_or_else(|e| panic!("verify passed but hash_kv (include) failed: {e}"));
        let keys = latest.unwrap_or_else(|e| panic!("verify passed but at_revision failed: {e}"));
        let rev = keys.rev();
        assert_eq!(st.revisions, report.stats.revisions, "status and verify disagree on revisions");
        assert_eq!(st.tombstones, report.stats.tombstones, "status and verify disagree on tombstones");
        assert_eq!(st.markers, report.stats.markers, "status and verify disagree on markers");
        assert_eq!(st.leases, report.stats.leases, "status and verify disagree on leases");
        assert_eq!(st.live_keys, report.stats.live_keys, "status and verify disagree on live keys");
        assert_eq!(keys.len() as u64, report.stats.live_keys, "key space and verify disagree on live keys");
        assert_eq!(h_skip.current_revision, rev);
        assert_eq!(h_skip.compact_revision, h_incl.compact_revision);
        if st.revisions > 0 {
            assert_eq!(st.revision, report.stats.revision, "status and verify disagree on the latest revision");
        }
    }
}
