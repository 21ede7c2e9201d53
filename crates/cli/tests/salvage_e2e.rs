//! `etcdsnap salvage` on damaged copies of every version's fixtures, through
//! the CLI (the damage campaign, `damage_campaign.rs` and
//! `tools/damage-campaign.sh`, runs every damage class through the library):
//! undamaged, a zeroed `key`-bucket leaf page (a torn write), both meta pages
//! zeroed, the file cut short. Each time: every record of the output above the
//! compact revision is the original's, byte for byte; the lost revisions are
//! exactly the original's minus the recovered ones; the output passes
//! `verify` and Go bbolt's check; one is restored and served by etcd. Lease
//! records lost while keys reference them are written anew and served.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use etcdsnap_bolt::inspect::{self, Item};
use etcdsnap_bolt::{Db, Metas};
use etcdsnap_testkit::{free_port, scratch, EtcdServer, EtcdVersion};
use serde_json::Value;

/// The `key` bucket of a file: bucket key → value.
fn key_records(file: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let data = std::fs::read(file).unwrap();
    let (image, _) = etcdsnap_mvcc::trailer::split(&data);
    let db = Db::open(image).unwrap();
    let b = db.bucket(&[b"key"]).unwrap().unwrap();
    b.cursor().map(|e| e.unwrap()).map(|e| (e.key.to_vec(), e.value.to_vec())).collect()
}

fn main_rev(bk: &[u8]) -> i64 {
    i64::from_be_bytes(bk[..8].try_into().unwrap())
}

/// The leaf pages of the `key` bucket the active meta's tree reaches.
fn key_leaves(data: &[u8]) -> Vec<u64> {
    let m = Metas::read(data).unwrap();
    let ps = m.page_size as usize;
    let root = inspect::page(data, ps, m.active().root.root).unwrap();
    let header = root
        .items
        .iter()
        .find_map(|it| match it {
            Item::Leaf { key, value, .. } if *key == b"key" => Some(value.to_vec()),
            _ => None,
        })
        .unwrap();
    let mut stack = vec![u64::from_le_bytes(header[..8].try_into().unwrap())];
    let mut leaves = Vec::new();
    while let Some(id) = stack.pop() {
        let v = inspect::page(data, ps, id).unwrap();
        if v.header.flags == 0x02 {
            leaves.push(id);
        }
        for it in &v.items {
            if let Item::Branch { pgid, .. } = it {
                stack.push(*pgid);
            }
        }
    }
    leaves.sort_unstable();
    leaves
}

fn salvage(input: &Path, output: &Path) -> (Option<i32>, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_etcdsnap"))
        .args(["salvage", "--json", "-q"])
        .arg(input)
        .arg(output)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("salvage {}: not JSON ({e}): {}", input.display(), String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code(), v)
}

/// Expands `[[a, b], …]` ranges.
fn expand(v: &Value) -> BTreeSet<i64> {
    v.as_array().unwrap().iter().flat_map(|r| r[0].as_i64().unwrap()..=r[1].as_i64().unwrap()).collect()
}

/// Checks one salvage of a damaged copy of `original`; returns the share of
/// the original's revisions after the compact revision recovered.
fn check(ctx: &str, original: &Path, damaged: &Path, output: &Path) -> f64 {
    let (code, r) = salvage(damaged, output);
    let orig = key_records(original);
    let got = key_records(output);
    let compact = r["compact_revision"].as_i64().unwrap();
    let latest = r["latest_revision"].as_i64().unwrap();
    let new_rev = r["new_revision"].as_i64().unwrap();
    // Every record is the original's, byte for byte (the bump's marker aside).
    for (k, v) in &got {
        if main_rev(k) == new_rev && v.is_empty() {
            continue;
        }
        assert_eq!(orig.get(k), Some(v), "{ctx}: record at revision {} is not the original's", main_rev(k));
    }
    // Lost = the original's main revisions in (compact, latest] minus the recovered ones, exactly.
    let orig_mains: BTreeSet<i64> = orig.keys().map(|k| main_rev(k)).filter(|&m| m > compact && m <= latest).collect();
    let got_mains: BTreeSet<i64> = got.keys().map(|k| main_rev(k)).filter(|&m| m > compact && m <= latest).collect();
    let lost = expand(&r["lost"]);
    assert_eq!(lost, orig_mains.difference(&got_mains).copied().collect::<BTreeSet<_>>(), "{ctx}: lost set");
    assert_eq!(expand(&r["recovered"]), got_mains, "{ctx}: recovered set");
    assert_eq!(
        code,
        Some(
            if lost.is_empty()
                && r["unreadable_pages"].as_array().unwrap().is_empty()
                && r["keys_with_history_gaps"].as_array().unwrap().is_empty()
            {
                0
            } else {
                1
            }
        ),
        "{ctx}: exit code: {r}"
    );
    // The output checks, ours and Go bbolt's.
    let v = Command::new(env!("CARGO_BIN_EXE_etcdsnap")).arg("verify").arg(output).output().unwrap();
    assert!(v.status.success(), "{ctx}: verify: {}", String::from_utf8_lossy(&v.stdout));
    etcdsnap_testkit::boltoracle_check_ok(output);
    let all: BTreeSet<i64> = orig.keys().map(|k| main_rev(k)).filter(|&m| m > compact).collect();
    got_mains.len() as f64 / all.len().max(1) as f64
}

#[test]
fn damaged_fixtures_salvage_to_exact_accounts() {
    let dir = scratch("salvage");
    for version in EtcdVersion::ALL {
        for (kind, original) in [("raw", version.fixture_raw_db()), ("snapshot", version.fixture_snapshot())] {
            let bytes = std::fs::read(&original).unwrap();
            let (image, _) = etcdsnap_mvcc::trailer::split(&bytes);
            let ps = Metas::read(image).unwrap().page_size as usize;
            let leaves = key_leaves(image);
            let mid = leaves[leaves.len() / 2];
            let last = *leaves.last().unwrap();
            let mut cases: Vec<(String, Vec<u8>)> = vec![("undamaged".into(), bytes.clone())];
            for (what, page) in [("middle", mid), ("last", last)] {
                let mut d = bytes.clone();
                d[page as usize * ps..(page as usize + 1) * ps].fill(0);
                cases.push((format!("zeroed {what} key page {page}"), d));
            }
            let mut d = bytes.clone();
            d[..2 * ps].fill(0);
            cases.push(("both metas zeroed".into(), d));
            cases.push(("cut at 70%".into(), bytes[..bytes.len() * 7 / 10].to_vec()));
            for (name, data) in cases {
                let ctx = format!("{version} {kind} {name}");
                let damaged = dir.join("damaged.db");
                std::fs::write(&damaged, &data).unwrap();
                let out = dir.join(format!("out-{version}-{kind}.db"));
                let _ = std::fs::remove_file(&out);
                let share = check(&ctx, &original, &damaged, &out);
                if name == "undamaged" || name == "both metas zeroed" {
                    assert!((share - 1.0).abs() < f64::EPSILON, "{ctx}: recovered {share}");
                    assert!(
                        key_records(&out).iter().filter(|(_, v)| !v.is_empty()).count()
                            >= key_records(&original).len() - 1
                    );
                }
                eprintln!("{ctx}: {:.1}% of the revisions after the compaction recovered", share * 100.0);
            }
        }
    }
}

/// A salvaged snapshot (a key page zeroed) restored by `etcdsnap restore` and served by etcd 3.6.16.
#[test]
fn salvaged_output_restores_and_serves() {
    let version = EtcdVersion::V3_6_16;
    let dir = scratch("salvage-serve");
    let original = version.fixture_snapshot();
    let mut bytes = std::fs::read(&original).unwrap();
    let (image, _) = etcdsnap_mvcc::trailer::split(&bytes);
    let ps = Metas::read(image).unwrap().page_size as usize;
    let leaves = key_leaves(image);
    let page = leaves[leaves.len() / 3] as usize;
    bytes[page * ps..(page + 1) * ps].fill(0);
    let damaged = dir.join("damaged.db");
    std::fs::write(&damaged, &bytes).unwrap();
    let out = dir.join("salvaged.db");
    let (_, r) = salvage(&damaged, &out);
    let (c, p) = (free_port(), free_port());
    let url = format!("http://127.0.0.1:{p}");
    let data = dir.join("data");
    let o = Command::new(env!("CARGO_BIN_EXE_etcdsnap"))
        .arg("restore")
        .arg(&out)
        .args([
            "--initial-cluster",
            &format!("default={url}"),
            "--initial-advertise-peer-urls",
            &url,
            "-q",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let server = EtcdServer::start(version, &data, c, p);
    let st = server.ctl_json(&["endpoint", "status"]);
    assert_eq!(st[0]["Status"]["header"]["revision"].as_i64(), r["new_revision"].as_i64());
    let got = server.ctl_json(&["get", "", "--prefix", "--keys-only"]);
    assert_eq!(got["count"].as_u64(), r["live_keys"].as_u64(), "{r}");
}

/// A copy of `original` whose `lease` bucket lost every record (the bucket
/// stays, empty): what a torn write of its page leaves once bbolt's tree is
/// repaired around it.
fn without_lease_records(original: &Path, out: &Path) {
    let data = std::fs::read(original).unwrap();
    let (image, _) = etcdsnap_mvcc::trailer::split(&data);
    let db = Db::open(image).unwrap();
    let mut bytes = std::io::Cursor::new(Vec::new());
    let mut b = etcdsnap_bolt::builder::Builder::new(&mut bytes, Default::default()).unwrap();
    for top in db.root().unwrap().cursor().map(|e| e.unwrap()) {
        let bucket = db.bucket(&[top.key]).unwrap().unwrap();
        b.create_bucket(top.key, bucket.sequence()).unwrap();
        if top.key != b"lease" {
            for e in bucket.cursor().map(|e| e.unwrap()) {
                b.put(e.key, e.value).unwrap();
            }
        }
        b.close_bucket().unwrap();
    }
    b.finish().unwrap();
    std::fs::write(out, bytes.into_inner()).unwrap();
}

/// Keys whose lease records were lost keep their leases: salvage writes a
/// lease record for each id the kept keys reference (TTL `--lost-lease-ttl`),
/// so the output verifies, and etcd 3.5.35 serves the leases with the keys
/// attached, each granted that TTL.
#[test]
fn lost_lease_records_are_written_anew() {
    let version = EtcdVersion::V3_5_35;
    let dir = scratch("salvage-lost-leases");
    let original = version.fixture_snapshot();
    let damaged = dir.join("no-leases.db");
    without_lease_records(&original, &damaged);
    // The original's live keys with a lease, by lease id.
    let mut latest: BTreeMap<Vec<u8>, (i64, bool)> = BTreeMap::new();
    for (bk, v) in key_records(&original) {
        if v.is_empty() {
            continue;
        }
        let kv = etcdsnap_mvcc::kv::KvRef::parse(&v).unwrap();
        latest.insert(kv.key.to_vec(), (kv.lease, bk.len() == 18));
    }
    let mut attached: BTreeMap<i64, BTreeSet<Vec<u8>>> = BTreeMap::new();
    for (k, (lease, tombstone)) in latest {
        if lease != 0 && !tombstone {
            attached.entry(lease).or_default().insert(k);
        }
    }
    assert!(!attached.is_empty(), "the fixture has keys with leases");
    let out = dir.join("salvaged.db");
    let o = Command::new(env!("CARGO_BIN_EXE_etcdsnap"))
        .args(["salvage", "--json", "-q", "--lost-lease-ttl", "1800"])
        .arg(&damaged)
        .arg(&out)
        .output()
        .unwrap();
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let missing: BTreeSet<i64> = r["leases_missing"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(missing, attached.keys().copied().collect::<BTreeSet<_>>(), "{r}");
    assert_eq!(r["lost_lease_ttl"].as_i64(), Some(1800));
    let v = Command::new(env!("CARGO_BIN_EXE_etcdsnap")).arg("verify").arg(&out).output().unwrap();
    assert!(v.status.success(), "{}{}", String::from_utf8_lossy(&v.stdout), String::from_utf8_lossy(&v.stderr));

    let (c, p) = (free_port(), free_port());
    let url = format!("http://127.0.0.1:{p}");
    let data = dir.join("data");
    let o = Command::new(env!("CARGO_BIN_EXE_etcdsnap"))
        .arg("restore")
        .arg(&out)
        .args(["--initial-cluster", &format!("default={url}"), "--initial-advertise-peer-urls", &url, "-q"])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let server = EtcdServer::start(version, &data, c, p);
    let listed = server.ctl_json(&["lease", "list"]);
    let ids: BTreeSet<i64> = listed["leases"].as_array().unwrap().iter().map(|l| l["id"].as_i64().unwrap()).collect();
    for (id, keys) in &attached {
        assert!(ids.contains(id), "lease {id:x} not served: {listed}");
        let t = server.ctl_json(&["lease", "timetolive", &format!("{id:x}"), "--keys"]);
        assert_eq!(t["granted-ttl"].as_i64(), Some(1800), "{t}");
        let served: BTreeSet<Vec<u8>> = t["keys"]
            .as_array()
            .unwrap_or_else(|| panic!("lease {id:x}: {t}"))
            .iter()
            .map(|k| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, k.as_str().unwrap()).unwrap())
            .collect();
        assert_eq!(&served, keys, "lease {id:x}");
    }
}

/// A data dir whose db is behind its WAL (its `consistent_index` lowered by
/// 89, as when the db lost its last commits) and has a key page zeroed:
/// salvage of the data dir reports the WAL's entries after the db — what a
/// restart would have replayed — as `wal verify` counts them.
#[test]
fn data_dir_salvage_reports_the_wal_after_the_db() {
    let version = EtcdVersion::V3_5_35;
    let dir = scratch("salvage-data-dir");
    let data = dir.join("data");
    let member = version.fixture_dir().join("member");
    for sub in ["snap", "wal"] {
        std::fs::create_dir_all(data.join("member").join(sub)).unwrap();
        for e in std::fs::read_dir(member.join(sub)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), data.join("member").join(sub).join(e.file_name())).unwrap();
        }
    }
    let db = data.join("member/snap/db");
    let mut bytes = std::fs::read(&db).unwrap();
    let ci = etcdsnap_mvcc::consistent_index::read_consistent_index(&db).unwrap().unwrap();
    let mut needle = b"consistent_index".to_vec();
    needle.extend_from_slice(&ci.to_be_bytes());
    let at: Vec<usize> =
        bytes.windows(needle.len()).enumerate().filter(|(_, w)| *w == &needle[..]).map(|(i, _)| i).collect();
    assert!(!at.is_empty(), "consistent_index {ci} not found as stored");
    for i in at {
        bytes[i + 16..i + 24].copy_from_slice(&(ci - 89).to_be_bytes());
    }
    let ps = Metas::read(&bytes).unwrap().page_size as usize;
    let leaves = key_leaves(&bytes);
    let page = leaves[leaves.len() / 2] as usize;
    bytes[page * ps..(page + 1) * ps].fill(0);
    std::fs::write(&db, &bytes).unwrap();

    let o = Command::new(env!("CARGO_BIN_EXE_etcdsnap"))
        .args(["salvage", "--json", "-q"])
        .arg(&data)
        .arg(dir.join("salvaged.db"))
        .output()
        .unwrap();
    let r: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(r["consistent_index"].as_u64(), Some(ci - 89), "{r}");
    let w = Command::new(env!("CARGO_BIN_EXE_etcdsnap"))
        .args(["wal", "verify", "--json"])
        .arg(member.parent().unwrap())
        .output()
        .unwrap();
    let wv: Value = serde_json::from_slice(&w.stdout).unwrap();
    assert_eq!(r["wal"]["last_index"], wv["last_index"], "{r}");
    assert_eq!(r["wal"]["entries_after_db"].as_u64(), Some(wv["last_index"].as_u64().unwrap() - (ci - 89)), "{r}");
    assert_eq!(r["wal"]["entries_after_db"].as_u64(), Some(89 + wv["entries_after_db"].as_u64().unwrap()), "{r}");
    assert_eq!(r["wal"]["problems"], serde_json::json!([]), "{r}");
    // The text report says it too.
    let t = Command::new(env!("CARGO_BIN_EXE_etcdsnap"))
        .args(["salvage", "--force"])
        .arg(&data)
        .arg(dir.join("salvaged.db"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&t.stdout);
    assert!(
        text.contains(&format!("{} entries after the db's consistent_index", r["wal"]["entries_after_db"])),
        "{text}"
    );
}
