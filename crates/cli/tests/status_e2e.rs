//! `etcdsnap status --json` against the real offline tools, run here on every
//! fixture file: etcdutl 3.5.1 `snapshot status -w json` on all four files, and
//! etcdctl 3.4.23 (`ETCDCTL_API=3`) `snapshot status -w json` on the 3.4.23
//! ones. The tools read a copy, which must come back unchanged.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

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

/// Every field the tool printed, printed by us with the same value.
fn assert_same(ours: &Value, theirs: &Value, what: &str) {
    let fields = theirs.as_object().unwrap_or_else(|| panic!("{what}: not an object: {theirs}"));
    for f in ["hash", "revision", "totalKey", "totalSize"] {
        assert!(theirs[f].is_u64(), "{what}: tool output lacks {f}: {theirs}");
    }
    // etcdutl's camelCase names, ours in snake_case: every field it prints, with its value.
    for (f, v) in fields {
        let o = match f.as_str() {
            "totalKey" => "total_key",
            "totalSize" => "total_size",
            other => other,
        };
        assert_eq!(&ours[o], v, "{what}: field {f} (ours {ours}, tool {theirs})");
    }
}

/// Every fixture file (snapshot and raw db of every version) against every
/// version's own `snapshot status -w json` (etcdctl for 3.4.23, etcdutl after):
/// `etcdsnap status --as-etcd <line>` prints every field that tool prints, with
/// the same values; without `--as-etcd` the line that wrote the file is used, and
/// the output equals that version's status recorded when the fixture was made.
#[test]
fn status_equals_every_versions_tool_on_every_fixture() {
    let dir = scratch("status_e2e");
    for (i, (ver, file)) in fixture_files().into_iter().enumerate() {
        let orig = read(&file);
        for tool in EtcdVersion::ALL {
            let ours = json(&etcdsnap_ok(&[
                Path::new("status"),
                &file,
                Path::new("--json"),
                Path::new("--as-etcd"),
                Path::new(tool.minor()),
            ]));
            let t = tool_status(tool.snapshot_tool_command(), &file, &dir, &format!("{tool}-{i}"));
            assert_same(&ours, &t, &format!("{tool}'s snapshot status on {}", file.display()));
        }
        let auto = json(&etcdsnap_ok(&[Path::new("status"), &file, Path::new("--json")]));
        assert_eq!(auto["as_etcd"], ver.minor(), "{}", file.display());
        if file.ends_with("snapshot.db") {
            assert_same(&auto, &ver.expected_json("status.json"), &format!("expected/status.json of {ver}"));
        }
        assert!(read(&file) == orig, "{} changed", file.display());
        assert_eq!(auto["revision"], 1473);
        assert_eq!(auto["finished_compact_revision"], 1147);
        let raw = !file.ends_with("snapshot.db");
        assert_eq!(auto["trailer"], if raw { "absent" } else { "present" }, "{}", file.display());
    }
}
