//! `etcdsnap salvage` on damaged copies of every version's fixtures, through
//! the CLI (the damage campaign, `damage_campaign.rs` and
//! `tools/damage-campaign.sh`, runs every damage class through the library):
//! undamaged, a zeroed `key`-bucket leaf page (a torn write), both meta pages
//! zeroed, the file cut short. Each time: every record of the output above the
//! compact revision is the original's, byte for byte; the lost revisions are
//! exactly the original's minus the recovered ones; the output passes
//! `verify` and Go bbolt's check; one is restored and served by etcd.
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
