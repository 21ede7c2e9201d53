//! `bolt surgery …` end to end: each surgery on a damaged real file (etcd
//! 3.5.1's db, or one Go bbolt 1.3.6 wrote with `boltoracle gen`) writes a new
//! file that Go bbolt 1.3.6, 1.4.3 and 1.5.0 check clean and read as expected;
//! refusals exit 2 naming the page; the input is never changed.
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
use std::process::{Command, Output};

use etcdsnap_bolt::check::PageUse;
use etcdsnap_bolt::meta::{meta_page, Meta};
use etcdsnap_bolt::{Db, PageType, Pgid};
use etcdsnap_testkit::{boltoracle, scratch, testdata, BboltVersion};
use serde_json::Value;

fn etcdsnap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etcdsnap")).args(args).output().unwrap()
}

fn ok(args: &[&str]) -> Value {
    let o = etcdsnap(args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn refused(args: &[&str]) -> String {
    let o = etcdsnap(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every Go bbolt line checks `file` clean, and so does `etcdsnap bolt check`.
fn all_check_ok(file: &Path) {
    for v in BboltVersion::ALL {
        v.check_ok(file);
    }
    let o = etcdsnap(&["bolt", "check", s(file)]);
    assert_eq!(o.status.code(), Some(0), "bolt check: {}", String::from_utf8_lossy(&o.stdout));
}

/// Go bbolt 1.3.6's check of `file` fails (exit 1 with errors, or 3 on a panic).
fn go_check_fails(file: &Path) -> String {
    let o = Command::new(boltoracle()).arg("check").arg(file).output().unwrap();
    assert_ne!(o.status.code(), Some(0), "bbolt 1.3.6 check passed the damaged {}", file.display());
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn dump(file: &Path) -> String {
    String::from_utf8(BboltVersion::V1_3_6.dump(file)).unwrap()
}

/// A file Go bbolt 1.3.6 wrote with a persisted freelist (`boltoracle gen`).
fn generated(dir: &Path, extra: &[&str]) -> PathBuf {
    let path = dir.join("gen.db");
    let o = Command::new(boltoracle()).arg("gen").arg(&path).args(extra).output().unwrap();
    assert!(o.status.success(), "boltoracle gen: {}", String::from_utf8_lossy(&o.stderr));
    path
}

/// Reachable pages of `kind` with at least `min` elements (first page of each run).
fn nodes(data: &[u8], kind: PageType, min: u16) -> Vec<(Pgid, u16)> {
    let db = Db::open(data).unwrap();
    let report = db.check();
    (0u64..)
        .zip(&report.page_use)
        .filter(|(_, u)| **u == PageUse::Tree)
        .map(|(id, _)| (id, db.pages().page(id).unwrap().header))
        .filter(|(_, h)| h.page_type() == kind && h.count >= min)
        .map(|(id, h)| (id, h.count))
        .collect()
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

#[test]
fn revert_meta_undoes_a_damaged_last_transaction() {
    let dir = scratch("surgery-revert");
    let original = testdata().join("etcd-3.5.1/member/snap/db");
    let data = std::fs::read(&original).unwrap();
    let ps = 4096;
    // Meta 1 (txid 323, the active one) is made to point at a meta page as its
    // root, with a valid checksum: the last transaction's tree is wrong.
    let mut damaged = data.clone();
    let mut m = Meta::parse(&damaged[ps..2 * ps]).unwrap();
    assert_eq!(m.txid, 323);
    m.root.root = 1;
    damaged[ps..2 * ps].copy_from_slice(&meta_page(&m, 1));
    let damaged = write(&dir, "damaged.db", &damaged);
    go_check_fails(&damaged);
    let out = dir.join("reverted.db");
    let j = ok(&["bolt", "surgery", "revert-meta", s(&damaged), s(&out), "-w", "json"]);
    assert_eq!(
        (j["target_meta"].as_u64(), j["source_meta"].as_u64(), j["txid"].as_u64()),
        (Some(1), Some(0), Some(322))
    );
    assert_eq!(j["output_ok"], true, "{j}");
    all_check_ok(&out);
    // Meta 0 held the same tree: the content is the original's.
    assert_eq!(dump(&out), dump(&original));
    let v = etcdsnap(&["verify", s(&out)]);
    assert_eq!(v.status.code(), Some(0), "{}", String::from_utf8_lossy(&v.stdout));
    assert_eq!(std::fs::read(&damaged).unwrap()[ps..2 * ps], meta_page(&m, 1)[..], "the input is unchanged");

    // A torn active meta (checksum broken): bbolt reads meta 0 already; the
    // revert makes both valid again, which our check requires.
    let mut torn = data.clone();
    torn[ps + 72] ^= 1;
    let torn = write(&dir, "torn.db", &torn);
    let o = etcdsnap(&["bolt", "check", s(&torn)]);
    assert_eq!(o.status.code(), Some(1));
    let out = dir.join("untorn.db");
    let j = ok(&["bolt", "surgery", "revert-meta", s(&torn), s(&out), "-w", "json"]);
    assert!(j["target_fault"].as_str().unwrap().starts_with("checksum error"), "{j}");
    all_check_ok(&out);

    // The older meta invalid: refused, naming it; no output.
    let mut bad = data.clone();
    bad[16] ^= 0xff; // meta 0's magic
    let bad = write(&dir, "bad.db", &bad);
    let out = dir.join("never.db");
    let err = refused(&["bolt", "surgery", "revert-meta", s(&bad), s(&out)]);
    assert!(err.contains("page 0: meta 0 is not valid (invalid database"), "{err}");
    assert!(!out.exists());
}

#[test]
fn clear_leaf_elements_removes_exactly_those_keys() {
    let dir = scratch("surgery-clear-leaf");
    let original = testdata().join("etcd-3.5.1/member/snap/db");
    let data = std::fs::read(&original).unwrap();
    // A leaf of the `key` bucket (17-byte revision keys).
    let (leaf, count) = nodes(&data, PageType::Leaf, 4)
        .into_iter()
        .find(|(id, _)| {
            let v = etcdsnap_bolt::inspect::page(&data, 4096, *id).unwrap();
            v.items.iter().all(|it| matches!(it, etcdsnap_bolt::inspect::Item::Leaf { key, .. } if key.len() == 17))
        })
        .unwrap();
    let view = etcdsnap_bolt::inspect::page(&data, 4096, leaf).unwrap();
    let gone: Vec<String> = view.items[1..3]
        .iter()
        .map(|it| match it {
            etcdsnap_bolt::inspect::Item::Leaf { key, .. } => key.iter().map(|b| format!("{b:02x}")).collect(),
            _ => unreachable!(),
        })
        .collect();
    let out = dir.join("cleared.db");
    let id = leaf.to_string();
    let j = ok(&[
        "bolt",
        "surgery",
        "clear-page-elements",
        s(&original),
        s(&out),
        "--page",
        &id,
        "--from",
        "1",
        "--to",
        "3",
        "-w",
        "json",
    ]);
    assert_eq!((j["removed"].as_u64(), j["count"].as_u64()), (Some(2), Some(u64::from(count))));
    assert_eq!(j["page_type"], "leaf");
    assert_eq!(j["freelist_abandoned"], serde_json::json!([]));
    all_check_ok(&out);
    // The Go dump is the original's without those two `key` entries.
    let key_bucket = "6b6579";
    let expect: Vec<String> = dump(&original)
        .lines()
        .filter(|l| !gone.iter().any(|k| l.starts_with(&format!("K {key_bucket} {k} "))))
        .map(|l| if l.starts_with("END ") { String::new() } else { l.to_string() })
        .collect();
    let got: Vec<String> =
        dump(&out).lines().map(|l| if l.starts_with("END ") { String::new() } else { l.to_string() }).collect();
    assert_eq!(got.len(), dump(&original).lines().count() - 2);
    assert_eq!(got, expect);

    // Out of range, a meta page, an existing output: refused, naming the page.
    let err = refused(&[
        "bolt",
        "surgery",
        "clear-page-elements",
        s(&original),
        s(&out),
        "--page",
        &id,
        "--from",
        "1",
        "--to",
        "2",
    ]);
    assert!(err.contains("exists"), "{err}");
    let n = count.to_string();
    let err = refused(&[
        "bolt",
        "surgery",
        "clear-page-elements",
        s(&original),
        s(&dir.join("x.db")),
        "--page",
        &id,
        "--from",
        &n,
        "--to",
        "-1",
    ]);
    assert!(err.contains(&format!("page {leaf}: the start index ({n}) is out of range")), "{err}");
    let err = refused(&[
        "bolt",
        "surgery",
        "clear-page-elements",
        s(&original),
        s(&dir.join("x.db")),
        "--page",
        "1",
        "--from",
        "0",
        "--to",
        "-1",
    ]);
    assert!(err.contains("page 1: can't clear elements in a meta page"), "{err}");
    assert!(!dir.join("x.db").exists());
}

#[test]
fn clear_branch_elements_abandons_the_freelist_of_a_go_file() {
    let dir = scratch("surgery-clear-branch");
    let gen = generated(&dir, &["--page-size", "4096", "--keys", "5000"]);
    let data = std::fs::read(&gen).unwrap();
    assert!(Db::open(&data).unwrap().meta().has_freelist());
    let (branch, count) = nodes(&data, PageType::Branch, 3)[0];
    let id = branch.to_string();
    // Emptying a branch is refused.
    let err = refused(&[
        "bolt",
        "surgery",
        "clear-page-elements",
        s(&gen),
        s(&dir.join("x.db")),
        "--page",
        &id,
        "--from",
        "0",
        "--to",
        "-1",
    ]);
    assert!(err.contains(&format!("page {branch}: clearing every element would leave an empty branch")), "{err}");
    let out = dir.join("cleared.db");
    let j = ok(&[
        "bolt",
        "surgery",
        "clear-page-elements",
        s(&gen),
        s(&out),
        "--page",
        &id,
        "--from",
        "1",
        "--to",
        "2",
        "-w",
        "json",
    ]);
    assert_eq!(j["page_type"], "branch");
    assert_eq!(j["removed"].as_u64(), Some(1));
    assert!(j["orphans_pages"].as_bool().unwrap());
    assert!(!j["freelist_abandoned"].as_array().unwrap().is_empty(), "{j}");
    assert_eq!(std::fs::metadata(&out).unwrap().len(), data.len() as u64, "pre-allocated tail kept");
    all_check_ok(&out);
    let keys = |d: &str| d.lines().filter(|l| l.starts_with("K ")).count();
    assert!(keys(&dump(&out)) < keys(&dump(&gen)));
    let _ = count;
}

#[test]
fn freelist_rebuild_replaces_a_freelist_listing_live_pages() {
    let dir = scratch("surgery-freelist");
    let gen = generated(&dir, &["--page-size", "4096", "--keys", "5000"]);
    let data = std::fs::read(&gen).unwrap();
    let db = Db::open(&data).unwrap();
    let freelist = db.meta().freelist;
    let (live, _) = nodes(&data, PageType::Leaf, 1)[0];
    // The freelist's first id replaced by a live leaf: "reachable freed".
    let mut damaged = data.clone();
    let at = freelist as usize * 4096 + 16;
    damaged[at..at + 8].copy_from_slice(&live.to_le_bytes());
    let damaged = write(&dir, "damaged.db", &damaged);
    let go = go_check_fails(&damaged);
    assert!(go.contains(&format!("page {live}: reachable freed")), "{go}");
    let out = dir.join("rebuilt.db");
    let j = ok(&["bolt", "surgery", "freelist", "rebuild", s(&damaged), s(&out), "-w", "json"]);
    assert_eq!(j["previous"], "persisted");
    assert_eq!(j["output_ok"], true, "{j}");
    all_check_ok(&out);
    assert_eq!(dump(&out), dump(&gen));

    // Abandoned, then rebuilt from the sentinel (bbolt's own sequence).
    let abandoned = dir.join("abandoned.db");
    let j = ok(&["bolt", "surgery", "freelist", "abandon", s(&gen), s(&abandoned), "-w", "json"]);
    assert_eq!(j["metas"], serde_json::json!([0, 1]));
    all_check_ok(&abandoned);
    let info = ok(&["bolt", "info", s(&abandoned), "-w", "json"]);
    assert_eq!(info["freelist"], "none");
    let again = dir.join("again.db");
    let j = ok(&["bolt", "surgery", "freelist", "rebuild", s(&abandoned), s(&again), "-w", "json"]);
    assert_eq!(j["previous"], "none");
    all_check_ok(&again);
    assert_eq!(dump(&again), dump(&gen));
}

#[test]
fn freelist_rebuild_of_an_etcd_snapshot_keeps_it_restorable() {
    let dir = scratch("surgery-freelist-snapshot");
    let snap = testdata().join("etcd-3.5.1/snapshot.db");
    let out = dir.join("rebuilt.db");
    let j = ok(&["bolt", "surgery", "freelist", "rebuild", s(&snap), s(&out), "-w", "json"]);
    assert_eq!(j["previous"], "none");
    assert!(j["trailer_out"].is_string(), "a snapshot keeps a (new) trailer: {j}");
    all_check_ok(&out);
    let v = etcdsnap(&["verify", "--require-trailer", s(&out)]);
    assert_eq!(v.status.code(), Some(0), "{}", String::from_utf8_lossy(&v.stdout));
    assert_eq!(dump(&out), dump(&snap));
}

#[test]
fn freelist_rebuild_writes_an_overflowed_freelist_go_reads() {
    let dir = scratch("surgery-freelist-heavy");
    let gen = generated(&dir, &["--page-size", "1024", "--keys", "2000", "--free-heavy"]);
    let abandoned = dir.join("abandoned.db");
    ok(&["bolt", "surgery", "freelist", "abandon", s(&gen), s(&abandoned), "-w", "json"]);
    let out = dir.join("rebuilt.db");
    let j = ok(&["bolt", "surgery", "freelist", "rebuild", s(&abandoned), s(&out), "-w", "json"]);
    assert!(j["free_pages"].as_u64().unwrap() >= 0xFFFF, "{j}");
    let data = std::fs::read(&out).unwrap();
    let page = j["page"].as_u64().unwrap() as usize;
    assert_eq!(u16::from_le_bytes([data[page * 1024 + 10], data[page * 1024 + 11]]), 0xFFFF);
    all_check_ok(&out);
}

#[test]
fn rebuild_refuses_a_damaged_tree() {
    let dir = scratch("surgery-freelist-damaged");
    let mut data = std::fs::read(testdata().join("etcd-3.5.1/member/snap/db")).unwrap();
    let (leaf, _) = nodes(&data, PageType::Leaf, 1)[0];
    data[leaf as usize * 4096 + 8] = 0x40;
    let damaged = write(&dir, "damaged.db", &data);
    let out = dir.join("never.db");
    let err = refused(&["bolt", "surgery", "freelist", "rebuild", s(&damaged), s(&out)]);
    assert!(err.contains(&format!("page {leaf}: the tree is damaged")), "{err}");
    assert!(!out.exists());
    // The output may not be the input.
    let copy = write(&dir, "copy.db", &std::fs::read(testdata().join("etcd-3.5.1/member/snap/db")).unwrap());
    let err = refused(&["bolt", "surgery", "freelist", "rebuild", s(&copy), s(&copy)]);
    assert!(err.contains("input"), "{err}");
}
