//! Our reader against Go bbolt (1.3.6; on the etcd fixtures also 1.4.3 and 1.5.0): on every fixture written by real etcd and on
//! files written by Go bbolt with every page size and both freelist modes, our
//! check is clean where Go's is, and our dump equals Go's byte for byte.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

mod support;

use std::ffi::OsStr;
use std::path::Path;

use etcdsnap_bolt::{dump::dump, Db, Freelist};

fn our_dump(path: &Path) -> Vec<u8> {
    let data = std::fs::read(path).unwrap();
    let db = Db::open(&data).unwrap();
    let mut out = Vec::new();
    dump(&db, &mut out).unwrap();
    out
}

fn assert_same_as_go(path: &Path) {
    let data = std::fs::read(path).unwrap();
    let db = Db::open(&data).unwrap();
    let report = db.check();
    assert!(report.is_ok(), "{}: {:?}", path.display(), report.problems);
    let (code, go_check) = support::run_oracle(&[OsStr::new("check"), path.as_os_str()]);
    assert_eq!((code, go_check.as_slice()), (0, &b"OK\n"[..]), "{}", path.display());
    let (code, go_dump) = support::run_oracle(&[OsStr::new("dump"), path.as_os_str()]);
    assert_eq!(code, 0);
    let ours = our_dump(path);
    assert!(ours == go_dump, "{}: dump differs from Go bbolt's", path.display());
    assert!(go_dump.ends_with(b"\n") && go_dump.starts_with(b"B "), "implausible dump");
}

#[test]
fn etcd_fixtures_read_like_go_bbolt() {
    for f in support::etcd_fixtures() {
        assert_same_as_go(&f);
    }
}

/// Every fixture (3.4.23 … 3.7.3, snapshot and raw db) checks clean and dumps
/// the same with the bbolt of every etcd line: 1.3.6, 1.4.3, 1.5.0.
#[test]
fn etcd_fixtures_read_like_every_go_bbolt_line() {
    let lines = support::oracle_lines();
    for f in support::etcd_fixtures() {
        let ours = our_dump(&f);
        for (line, bin) in &lines {
            let check = std::process::Command::new(bin).arg("check").arg(&f).output().unwrap();
            assert_eq!(
                (check.status.code(), check.stdout.as_slice()),
                (Some(0), &b"OK\n"[..]),
                "bbolt {line} check {}",
                f.display()
            );
            let dump = std::process::Command::new(bin).arg("dump").arg(&f).output().unwrap();
            assert_eq!(dump.status.code(), Some(0), "bbolt {line} dump {}", f.display());
            assert!(dump.stdout == ours, "{}: our dump differs from Go bbolt {line}'s", f.display());
        }
    }
}

#[test]
fn go_written_files_of_every_page_size_read_like_go_bbolt() {
    let dir = support::scratch("oracle-gen");
    for page_size in ["1024", "4096", "16384", "65536"] {
        for no_sync in [false, true] {
            let f = dir.join(format!("gen-{page_size}-{no_sync}.db"));
            let mut args = vec![OsStr::new("gen"), f.as_os_str(), OsStr::new("--page-size"), OsStr::new(page_size)];
            args.extend([OsStr::new("--keys"), OsStr::new("3000")]);
            if no_sync {
                args.push(OsStr::new("--no-freelist-sync"));
            }
            let (code, _) = support::run_oracle(&args);
            assert_eq!(code, 0);
            let data = std::fs::read(&f).unwrap();
            let db = Db::open(&data).unwrap();
            assert_eq!(db.page_size().to_string(), page_size);
            match db.freelist().unwrap() {
                Freelist::NotPersisted => assert!(no_sync),
                Freelist::Persisted { ids, .. } => assert!(!no_sync && !ids.is_empty()),
            }
            assert_same_as_go(&f);
        }
    }
}

#[test]
fn overflowed_freelist_count_is_read() {
    let dir = support::scratch("oracle-free-heavy");
    let f = dir.join("free-heavy.db");
    let args =
        [OsStr::new("gen"), f.as_os_str(), OsStr::new("--page-size"), OsStr::new("1024"), OsStr::new("--free-heavy")];
    assert_eq!(support::run_oracle(&args).0, 0);
    let data = std::fs::read(&f).unwrap();
    let db = Db::open(&data).unwrap();
    let Freelist::Persisted { page, ids, .. } = db.freelist().unwrap() else { panic!("freelist expected") };
    let header = etcdsnap_bolt::PageHeader::parse(db.pages().raw(page).unwrap()).unwrap();
    assert_eq!(header.count, 0xFFFF, "the generator must exercise the 0xFFFF count rule");
    assert!(ids.len() > 0xFFFF);
    assert_eq!(db.check().stats.free_pages, ids.len() as u64);
    assert_same_as_go(&f);
}
