//! `etcdsnap status --json` against the real offline tools, run here on every
//! fixture file: etcdutl 3.5.1 `snapshot status -w json` on all four files, and
//! etcdctl 3.4.23 (`ETCDCTL_API=3`) `snapshot status -w json` on the 3.4.23
//! ones. The tools read a copy, which must come back unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod etcd_support;

use std::path::Path;
use std::process::Command;

use etcd_support::{etcdsnap_ok, fixture_files, json, read};
use etcdsnap_testkit::{scratch, tail, EtcdVersion};
use serde_json::Value;

/// Runs `tool snapshot status -w json` on a copy of `file` in `dir`; asserts the copy is unchanged.
fn tool_status(mut tool: Command, file: &Path, dir: &Path, tag: &str) -> Value {
    let copy = dir.join(format!("{tag}.db"));
    std::fs::copy(file, &copy).unwrap();
    let before = read(&copy);
    let out = tool.arg("snapshot").arg("status").arg("-w").arg("json").arg(&copy).output().unwrap();
    assert!(
        out.status.success(),
        "{tool:?} snapshot status {}: {}\n{}",
        file.display(),
        out.status,
        tail(&String::from_utf8_lossy(&out.stderr), 20)
    );
    assert!(read(&copy) == before, "{tool:?} modified its copy of {}", file.display());
    json(&out.stdout)
}

fn assert_same(ours: &Value, theirs: &Value, what: &str) {
    // etcdutl's camelCase names, ours in snake_case.
    for (f, o) in [("hash", "hash"), ("revision", "revision"), ("totalKey", "total_key"), ("totalSize", "total_size")] {
        assert!(theirs[f].is_u64(), "{what}: tool output lacks {f}: {theirs}");
        assert_eq!(ours[o], theirs[f], "{what}: field {f} (ours {ours}, tool {theirs})");
    }
}

#[test]
fn status_equals_etcdutl_and_etcdctl_on_every_fixture() {
    let dir = scratch("status_e2e");
    let utl = EtcdVersion::V3_5_1;
    for (i, (ver, file)) in fixture_files().into_iter().enumerate() {
        let ours = json(&etcdsnap_ok(&[Path::new("status"), &file, Path::new("--json")]));
        let orig = read(&file);
        let t = tool_status(Command::new(utl.etcdutl()), &file, &dir, &format!("utl-{i}"));
        assert_same(&ours, &t, &format!("etcdutl 3.5.1 on {}", file.display()));
        if ver == EtcdVersion::V3_4_23 {
            let t = tool_status(ver.etcdctl_command(), &file, &dir, &format!("ctl-{i}"));
            assert_same(&ours, &t, &format!("etcdctl 3.4.23 on {}", file.display()));
        }
        assert!(read(&file) == orig, "{} changed", file.display());
        // Our extra figures are consistent with etcd's.
        assert_eq!(ours["revision"], 1473);
        assert_eq!(ours["finished_compact_revision"], 1147);
        let raw = !file.ends_with("snapshot.db");
        assert_eq!(ours["trailer"], if raw { "absent" } else { "present" }, "{}", file.display());
    }
}
