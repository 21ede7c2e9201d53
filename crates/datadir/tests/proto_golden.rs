//! Golden tests against bytes written by real etcd servers (3.4.23 … 3.7.3
//! fixtures): every message decoded from the fixtures must re-encode to exactly
//! the original bytes — except raft messages written by 3.7, whose
//! google.golang.org/protobuf encoder leaves unset proto2 fields out (an
//! `Entry` of type EntryNormal has no field 1) where gogo (≤3.6) always wrote
//! them: those must decode to the same message after re-encoding, and may only
//! gain the explicit default fields (DIFFERENCES.md).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::path::{Path, PathBuf};

use etcdsnap_proto::etcdserverpb::{AlarmMember, InternalRaftRequest, Metadata, Request};
use etcdsnap_proto::raftpb::{self, ConfChange, ConfChangeV2, Entry, EntryType, HardState};
use etcdsnap_proto::{authpb, leasepb, mvccpb, snappb, walpb, Message};

const VERSIONS: [&str; 5] = ["etcd-3.4.23", "etcd-3.5.1", "etcd-3.5.35", "etcd-3.6.16", "etcd-3.7.3"];

fn testdata(version: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata").join(version)
}

/// Decodes `bytes` as `M`, asserts that re-encoding reproduces them exactly, returns the message.
fn roundtrip_exact<M: Message + Default + PartialEq>(bytes: &[u8], what: &str) -> M {
    let m = M::decode(bytes).unwrap_or_else(|e| panic!("{what}: decode failed: {e}"));
    let again = m.encode_to_vec();
    if what.starts_with("etcd-3.7") && again != bytes {
        let m2 = M::decode(again.as_slice()).unwrap();
        assert!(m2 == m, "{what}: re-encoding does not decode to the same message ({m:?})");
        assert!(again.len() > bytes.len(), "{what}: re-encoding lost bytes");
        return m;
    }
    assert_eq!(again, bytes, "{what}: re-encoding differs from the original bytes ({m:?})");
    assert_eq!(m.encoded_len(), bytes.len(), "{what}: encoded_len");
    m
}

/// Splits a WAL segment into its record payloads (the framing is parsed by hand).
fn wal_frames(file: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off + 8 <= file.len() {
        let word = u64::from_le_bytes(file[off..off + 8].try_into().unwrap());
        if word == 0 {
            break;
        }
        let len = usize::try_from(word & 0x00ff_ffff_ffff_ffff).unwrap();
        let pad = if word >> 63 == 1 { usize::try_from((word >> 56) & 7).unwrap() } else { 0 };
        off += 8;
        assert!(off + len + pad <= file.len(), "frame at {} runs past the end", off - 8);
        assert_eq!((len + pad) % 8, 0, "frame at {} is not 8-aligned", off - 8);
        out.push(&file[off..off + len]);
        off += len + pad;
    }
    out
}

#[derive(Default, Debug)]
struct WalStats {
    records: [usize; 6],
    normal_empty: usize,
    normal_irr: usize,
    normal_v2: usize,
    irr_kinds: std::collections::BTreeMap<&'static str, usize>,
    conf_changes: usize,
    conf_changes_v2: usize,
}

fn irr_kind(r: &InternalRaftRequest) -> &'static str {
    macro_rules! first_set {
        ($($f:ident),*) => {{
            $( if r.$f.is_some() { return stringify!($f); } )*
        }};
    }
    first_set!(
        v2,
        range,
        put,
        delete_range,
        txn,
        compaction,
        lease_grant,
        lease_revoke,
        alarm,
        lease_checkpoint,
        auth_enable,
        auth_disable,
        authenticate,
        auth_status,
        auth_user_add,
        auth_user_delete,
        auth_user_get,
        auth_user_change_password,
        auth_user_grant_role,
        auth_user_revoke_role,
        auth_user_list,
        auth_role_list,
        auth_role_add,
        auth_role_delete,
        auth_role_get,
        auth_role_grant_permission,
        auth_role_revoke_permission,
        cluster_version_set,
        cluster_member_attr_set,
        downgrade_info_set,
        downgrade_version_test
    );
    "none"
}

fn check_wal(version: &str) -> WalStats {
    let path = testdata(version).join("member/wal/0000000000000000-0000000000000000.wal");
    let file = std::fs::read(&path).unwrap();
    let frames = wal_frames(&file);
    assert!(frames.len() > 100, "{version}: only {} frames", frames.len());
    let mut stats = WalStats::default();
    let mut crc = 0u32;
    for (i, frame) in frames.iter().enumerate() {
        let what = format!("{version} frame {i}");
        let rec: walpb::Record = roundtrip_exact(frame, &format!("{what} Record"));
        let ty = usize::try_from(rec.r#type).unwrap();
        stats.records[ty] += 1;
        // CRC chain: crc = CRC-32C over the data of every non-CRC record so far.
        if rec.r#type == walpb::CRC_TYPE {
            assert!(rec.data.is_none(), "{what}: CRC record with data");
            assert_eq!(rec.crc, crc, "{what}: CRC record");
            continue;
        }
        let data = rec.data.as_deref().unwrap_or(&[]);
        crc = crc32c::crc32c_append(crc, data);
        assert_eq!(rec.crc, crc, "{what}: running crc");
        match rec.r#type {
            walpb::METADATA_TYPE => {
                let md: Metadata = roundtrip_exact(data, &format!("{what} Metadata"));
                assert_ne!(md.node_id, 0);
                assert_ne!(md.cluster_id, 0);
            }
            walpb::ENTRY_TYPE => {
                let e: Entry = roundtrip_exact(data, &format!("{what} Entry"));
                check_entry(&e, &what, &mut stats);
            }
            walpb::STATE_TYPE => {
                let _: HardState = roundtrip_exact(data, &format!("{what} HardState"));
            }
            walpb::SNAPSHOT_TYPE => {
                let s: walpb::Snapshot = roundtrip_exact(data, &format!("{what} walpb.Snapshot"));
                // conf_state is written since 3.5 (for index > 0 snapshots only).
                let want_cs = s.index > 0 && version != "etcd-3.4.23";
                assert_eq!(s.conf_state.is_some(), want_cs, "{what}: {s:?}");
            }
            other => panic!("{what}: unknown record type {other}"),
        }
    }
    stats
}

fn check_entry(e: &Entry, what: &str, stats: &mut WalStats) {
    let what = format!("{what} (entry index {})", e.index);
    let data = e.data.as_deref().unwrap_or(&[]);
    match EntryType::try_from(e.r#type).unwrap() {
        EntryType::EntryNormal if data.is_empty() => stats.normal_empty += 1,
        EntryType::EntryNormal => {
            // Same order as etcd's applyEntryNormal: InternalRaftRequest first, then raw v2.
            match InternalRaftRequest::decode(data) {
                Ok(irr) => {
                    assert_eq!(irr.encode_to_vec(), data, "{what}: IRR re-encode ({irr:?})");
                    *stats.irr_kinds.entry(irr_kind(&irr)).or_default() += 1;
                    stats.normal_irr += 1;
                }
                Err(_) => {
                    let _: Request = roundtrip_exact(data, &format!("{what} v2 Request"));
                    stats.normal_v2 += 1;
                }
            }
        }
        EntryType::EntryConfChange => {
            let cc: ConfChange = roundtrip_exact(data, &format!("{what} ConfChange"));
            assert_ne!(cc.node_id, 0);
            stats.conf_changes += 1;
        }
        EntryType::EntryConfChangeV2 => {
            let _: ConfChangeV2 = roundtrip_exact(data, &format!("{what} ConfChangeV2"));
            stats.conf_changes_v2 += 1;
        }
    }
}

#[test]
fn wal_records_reencode_byte_exact() {
    for version in VERSIONS {
        let stats = check_wal(version);
        eprintln!("{version}: {stats:?}");
        assert!(stats.records[walpb::ENTRY_TYPE as usize] > 100);
        assert!(stats.records[walpb::METADATA_TYPE as usize] >= 1);
        assert!(stats.records[walpb::STATE_TYPE as usize] >= 1);
        assert!(stats.records[walpb::SNAPSHOT_TYPE as usize] >= 1);
        assert!(stats.conf_changes >= 1, "{version}: no ConfChange entry");
        assert!(stats.normal_irr > 100);
        assert!(stats.irr_kinds.contains_key("put"));
        assert!(stats.irr_kinds.contains_key("txn"));
    }
}

#[test]
fn snap_files_reencode_byte_exact() {
    for version in VERSIONS {
        let dir = testdata(version).join("member/snap");
        let mut n = 0;
        for ent in std::fs::read_dir(&dir).unwrap() {
            let path = ent.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("snap") {
                continue;
            }
            let what = path.display().to_string();
            let bytes = std::fs::read(&path).unwrap();
            let snap: snappb::Snapshot = roundtrip_exact(&bytes, &what);
            let data = snap.data.as_deref().unwrap();
            assert_eq!(snap.crc, crc32c::crc32c(data), "{what}: crc");
            let rs: raftpb::Snapshot = roundtrip_exact(data, &format!("{what} raftpb.Snapshot"));
            // File name is <term>-<index>.snap.
            let stem = path.file_stem().unwrap().to_str().unwrap();
            let (term, index) = stem.split_once('-').unwrap();
            assert_eq!(rs.metadata.term, u64::from_str_radix(term, 16).unwrap(), "{what}");
            assert_eq!(rs.metadata.index, u64::from_str_radix(index, 16).unwrap(), "{what}");
            assert!(!rs.metadata.conf_state.voters.is_empty(), "{what}: no voters");
            n += 1;
        }
        assert!(n >= 5, "{version}: only {n} .snap files");
    }
}

fn for_each_value(db: &etcdsnap_bolt::Db<'_>, bucket: &str, mut f: impl FnMut(&[u8], &[u8])) -> usize {
    let Some(b) = db.bucket(&[bucket.as_bytes()]).unwrap() else {
        return 0;
    };
    let mut n = 0;
    for ent in b.cursor() {
        let ent = ent.unwrap();
        assert!(!ent.is_bucket());
        f(ent.key, ent.value);
        n += 1;
    }
    n
}

#[test]
fn backend_values_reencode_byte_exact() {
    for version in VERSIONS {
        for file in ["snapshot.db", "member/snap/db"] {
            let path = testdata(version).join(file);
            let bytes = std::fs::read(&path).unwrap();
            let db = etcdsnap_bolt::Db::open(&bytes).unwrap();
            let what = path.display().to_string();

            let mut tombstones = 0;
            let keys = for_each_value(&db, "key", |k, v| {
                let kv: mvccpb::KeyValue = roundtrip_exact(v, &format!("{what} key {k:x?}"));
                if k.len() == 18 {
                    tombstones += 1;
                    assert_eq!(kv.version, 0);
                } else {
                    assert!(kv.version > 0);
                }
            });
            assert!(keys > 1000, "{what}: {keys} key entries");
            assert!(tombstones > 0, "{what}: no tombstones");

            let leases = for_each_value(&db, "lease", |k, v| {
                let l: leasepb::Lease = roundtrip_exact(v, &format!("{what} lease {k:x?}"));
                assert_eq!(l.id.to_be_bytes().as_slice(), k);
                assert_eq!(l.ttl, 3600);
            });
            assert!(leases >= 3, "{what}: {leases} leases");

            let users = for_each_value(&db, "authUsers", |k, v| {
                let u: authpb::User = roundtrip_exact(v, &format!("{what} user {k:x?}"));
                assert_eq!(u.name, k);
                assert_eq!(u.roles.len(), 1);
            });
            assert_eq!(users, 2, "{what}: users");

            let roles = for_each_value(&db, "authRoles", |k, v| {
                let r: authpb::Role = roundtrip_exact(v, &format!("{what} role {k:x?}"));
                assert_eq!(r.name, k);
            });
            assert_eq!(roles, 2, "{what}: roles");

            // Alarm keys are marshaled AlarmMembers (none raised in the fixtures).
            for_each_value(&db, "alarm", |k, _| {
                let _: AlarmMember = roundtrip_exact(k, &format!("{what} alarm key"));
            });
        }
    }
}

/// The worked example of the reference (`TestNew.wal` head, metadata "somedata"):
/// zero-valued non-nullable fields are emitted.
#[test]
fn hand_checked_vectors() {
    let crc_rec = walpb::Record { r#type: walpb::CRC_TYPE, crc: 0, data: None };
    assert_eq!(crc_rec.encode_to_vec(), [0x08, 0x04, 0x10, 0x00]);
    let md_rec = walpb::Record {
        r#type: walpb::METADATA_TYPE,
        crc: crc32c::crc32c(b"somedata"),
        data: Some(b"somedata".to_vec()),
    };
    assert_eq!(md_rec.crc, 0x741F_6A05);
    assert_eq!(
        md_rec.encode_to_vec(),
        [0x08, 0x01, 0x10, 0x85, 0xd4, 0xfd, 0xa0, 0x07, 0x1a, 0x08, b's', b'o', b'm', b'e', b'd', b'a', b't', b'a']
    );
    let snap = walpb::Snapshot { index: 0, term: 0, conf_state: None };
    assert_eq!(snap.encode_to_vec(), [0x08, 0x00, 0x10, 0x00]);
    assert_eq!(HardState::default().encode_to_vec(), [0x08, 0x00, 0x10, 0x00, 0x18, 0x00]);
    assert_eq!(Entry::default().encode_to_vec(), [0x08, 0x00, 0x10, 0x00, 0x18, 0x00]);
    // Present-but-empty data is kept distinct from absent data.
    let e = Entry { data: Some(Vec::new()), ..Entry::default() };
    assert_eq!(e.encode_to_vec(), [0x08, 0x00, 0x10, 0x00, 0x18, 0x00, 0x22, 0x00]);
    // ConfState: unpacked repeated uint64 and an always-emitted auto_leave.
    let cs = raftpb::ConfState { voters: vec![1, 2], learners: vec![3], auto_leave: false, ..Default::default() };
    assert_eq!(cs.encode_to_vec(), [0x08, 0x01, 0x08, 0x02, 0x10, 0x03, 0x28, 0x00]);
    assert_eq!(Metadata::default().encode_to_vec(), [0x08, 0x00, 0x10, 0x00]);
    assert_eq!(snappb::Snapshot::default().encode_to_vec(), [0x08, 0x00]);
    // proto3 messages omit zero fields.
    assert!(mvccpb::KeyValue::default().encode_to_vec().is_empty());
    assert!(InternalRaftRequest::default().encode_to_vec().is_empty());
    // Compare.range_end is field 64 (two-byte tag 0x82 0x04).
    let c = etcdsnap_proto::etcdserverpb::Compare { range_end: b"z".to_vec(), ..Default::default() };
    assert_eq!(c.encode_to_vec(), [0x82, 0x04, 0x01, b'z']);
    // A oneof member is emitted even when zero.
    let c = etcdsnap_proto::etcdserverpb::Compare {
        target_union: Some(etcdsnap_proto::etcdserverpb::compare::TargetUnion::Version(0)),
        ..Default::default()
    };
    assert_eq!(c.encode_to_vec(), [0x20, 0x00]);
    // Unpacked input still decodes; packed input for a proto2 repeated field decodes too.
    let packed = [0x0a, 0x02, 0x01, 0x02, 0x28, 0x00];
    assert_eq!(raftpb::ConfState::decode(&packed[..]).unwrap().voters, vec![1, 2]);
}
