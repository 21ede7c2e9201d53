//! `bolt page` and `bolt page-item` on a real etcd db: every leaf element the
//! pages show of the `key` bucket is what the tree holds (`bolt dump`), item
//! by item; damage is reported, not a panic; a damaged file's pages are read
//! with `--page-size`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::collections::BTreeMap;
use std::process::{Command, Output};

use etcdsnap_testkit::{scratch, testdata};
use serde_json::Value;

fn etcdsnap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etcdsnap")).args(args).output().unwrap()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

#[test]
fn pages_show_what_the_tree_holds() {
    let db = testdata().join("etcd-3.5.1/member/snap/db");
    let db = db.to_str().unwrap();
    // The tree's `key` bucket, from the canonical dump.
    let dump = etcdsnap(&["bolt", "dump", db, "-w", "json"]);
    let mut tree: BTreeMap<String, Value> = BTreeMap::new();
    for line in String::from_utf8_lossy(&dump.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["type"] == "key" && v["path"] == serde_json::json!(["key"]) {
            tree.insert(v["key"].to_string(), v["value"].clone());
        }
    }
    assert!(tree.len() > 100);
    let info = json(&etcdsnap(&["bolt", "info", db, "-w", "json"]));
    let hwm = info["hwm"].as_u64().unwrap();
    let mut seen = 0;
    for id in 2..hwm {
        let o = etcdsnap(&["bolt", "page", db, &id.to_string(), "-w", "json"]);
        let p = json(&o);
        // Overflow continuations have no header of their own.
        if p["header_id"].as_u64() != Some(id) || p["kind"] != "leaf" {
            continue;
        }
        for (n, item) in p["items"].as_array().unwrap().iter().enumerate() {
            let Some(want) = tree.get(&item["key"].to_string()) else { continue };
            // Free pages may hold stale copies; the reachable one is the tree's.
            let got = json(&etcdsnap(&["bolt", "page-item", db, &id.to_string(), &n.to_string(), "-w", "json"]));
            assert_eq!(got["key"], item["key"]);
            if &got["value"] == want {
                seen += 1;
            }
        }
    }
    assert!(seen >= tree.len(), "{seen} of {} key-bucket entries found in the pages", tree.len());
    // Page 0 is a meta page; a page past the end is an error naming it.
    let meta = json(&etcdsnap(&["bolt", "page", db, "0", "-w", "json"]));
    assert_eq!(meta["kind"], "meta");
    let o = etcdsnap(&["bolt", "page", db, "99999999"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no page 99999999"));
}

#[test]
fn damage_is_reported_and_dead_metas_need_a_page_size() {
    let dir = scratch("bolt-page-damage");
    let mut data = std::fs::read(testdata().join("etcd-3.5.1/member/snap/db")).unwrap();
    let ps = 4096;
    // A leaf's element count far past the page: the page is shown, with the problem.
    let leaf = 3;
    data[leaf * ps + 10..leaf * ps + 12].copy_from_slice(&u16::MAX.to_le_bytes());
    // Both meta pages' magic broken: no page size from the file.
    for m in 0..2 {
        data[m * ps + 16] ^= 0xff;
    }
    let path = dir.join("db");
    std::fs::write(&path, &data).unwrap();
    let p = path.to_str().unwrap();
    let o = etcdsnap(&["bolt", "page", p, "3"]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--page-size"));
    let o = etcdsnap(&["bolt", "page", p, "3", "--page-size", "4096", "-w", "json"]);
    assert_eq!(o.status.code(), Some(1), "a page that does not decode: exit 1");
    let v = json(&o);
    assert!(v["problem"].is_string() && v["items"].as_array().unwrap().is_empty(), "{v}");
    let o = etcdsnap(&["bolt", "page-item", p, "3", "0", "--page-size", "4096"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no element 0"));
}
