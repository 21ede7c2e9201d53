//! The harness of the rewrite end-to-end tests: the `--json` report mirrored
//! field for field, running etcdsnap, offline checks of an output, the
//! fixture's expectations, and what a served etcd answers.

use super::*;

// ---------------------------------------------------------------------------
// The report, mirrored field for field from src/rewrite_cmd.rs.

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevisionsJson {
    pub(crate) read: u64,
    pub(crate) kept: u64,
    pub(crate) filtered: u64,
    pub(crate) compacted: u64,
    pub(crate) renamed: u64,
    pub(crate) cut: u64,
    pub(crate) tombstones: u64,
    pub(crate) markers: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LeasesJson {
    pub(crate) read: u64,
    pub(crate) kept: u64,
    pub(crate) dropped: u64,
    pub(crate) orphaned: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RangeJson {
    pub(crate) key: Value,
    pub(crate) range_end: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PermissionJson {
    pub(crate) role: Value,
    pub(crate) perm_type: String,
    pub(crate) key: Value,
    pub(crate) range_end: Value,
    pub(crate) now: Vec<RangeJson>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleJson {
    pub(crate) rule: String,
    pub(crate) value: Value,
    pub(crate) matched: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StaleJson {
    pub(crate) path: String,
    pub(crate) bytes: u64,
    pub(crate) removed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportJson {
    pub(crate) input: String,
    pub(crate) output: String,
    pub(crate) old_revision: i64,
    pub(crate) new_revision: i64,
    pub(crate) at_revision: Option<i64>,
    pub(crate) scheduled_compact_revision: Option<i64>,
    pub(crate) finished_compact_revision: Option<i64>,
    pub(crate) revisions: RevisionsJson,
    pub(crate) leases: LeasesJson,
    pub(crate) encrypted: BTreeMap<String, u64>,
    pub(crate) key_bound_renamed: u64,
    pub(crate) reencrypted: BTreeMap<String, u64>,
    pub(crate) plugin_calls: BTreeMap<String, BTreeMap<String, u64>>,
    pub(crate) roles_rewritten: u64,
    pub(crate) permissions_changed: Vec<PermissionJson>,
    pub(crate) rules: Vec<RuleJson>,
    pub(crate) compact_rev_key: String,
    pub(crate) compact_tombstones: Option<String>,
    pub(crate) target_version: Option<String>,
    pub(crate) status_hash: u32,
    pub(crate) status_revision: i64,
    pub(crate) status_total_key: u64,
    pub(crate) status_as_etcd: String,
    pub(crate) hashkv: u32,
    pub(crate) hashkv_compact_revision: i64,
    pub(crate) hashkv_revision: i64,
    pub(crate) trailer_in: String,
    pub(crate) trailer_sha256: Option<String>,
    pub(crate) layout: String,
    pub(crate) pages_rewritten: Option<u64>,
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) stale_temp_files: Vec<StaleJson>,
    pub(crate) elapsed_ms: u64,
}

// ---------------------------------------------------------------------------
// Running etcdsnap

pub(crate) fn etcdsnap(args: &[&str], paths: &[&Path]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_etcdsnap"));
    c.args(args).args(paths).stdin(Stdio::null());
    c.output().unwrap()
}

/// `etcdsnap rewrite IN OUT ARGS... --json`: asserts exit 0 and a silent stderr
/// (no progress when stderr is not a terminal); returns the typed report.
pub(crate) fn rewrite(input: &Path, output: &Path, args: &[&str]) -> ReportJson {
    let mut c = Command::new(env!("CARGO_BIN_EXE_etcdsnap"));
    c.arg("rewrite").arg(input).arg(output).args(args).arg("--json").stdin(Stdio::null());
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "etcdsnap rewrite {} {args:?}: {}\n{}",
        input.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty(), "stderr not empty: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.trim_end().lines().count(), 1, "one JSON object: {text}");
    let value: Value = serde_json::from_str(&text).unwrap();
    let report: ReportJson = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("report does not match the mirror: {e}\n{value}"));
    // Every field present (Option fields included) and nothing else.
    assert_eq!(serde_json::to_value(&report).unwrap(), value, "report round trip");
    assert_eq!(report.input, input.display().to_string());
    assert_eq!(report.output, output.display().to_string());
    assert_eq!(report.bytes_out, std::fs::metadata(output).unwrap().len());
    assert_eq!(report.bytes_in, std::fs::metadata(input).unwrap().len());
    assert_eq!(report.status_revision, report.new_revision);
    assert_eq!(report.hashkv_revision, report.new_revision);
    assert_eq!(report.old_revision, OLD_LATEST);
    assert_eq!(
        report.revisions.read + report.revisions.markers.len() as u64,
        report.revisions.kept + report.revisions.filtered + report.revisions.compacted
    );
    report
}

/// A refused rewrite: exit 2, a message on stderr, nothing written.
pub(crate) fn rewrite_refused(input: &Path, output: &Path, args: &[&str]) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_etcdsnap"));
    c.arg("rewrite").arg(input).arg(output).args(args).arg("--json").stdin(Stdio::null());
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(!output.exists(), "{} written by a refused rewrite", output.display());
    String::from_utf8(out.stderr).unwrap()
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|c| format!("{c:02x}")).collect()
}

/// (4) The output offline: a fresh SHA-256 trailer, `etcdsnap verify` clean,
/// every Go bbolt line's check OK (1.3.6, 1.4.3, 1.5.0), and `etcdsnap status
/// --json` equal to `version`'s own `snapshot status -w json` (etcdctl for
/// 3.4.23, etcdutl after) and to the report.
pub(crate) fn check_offline(version: EtcdVersion, output: &Path, r: &ReportJson) {
    let data = std::fs::read(output).unwrap();
    let (body, tr) = data.split_at(data.len() - 32);
    assert_eq!(body.len() % 512, 0);
    assert_eq!(Some(hex(&Sha256::digest(body))), r.trailer_sha256, "trailer");
    assert_eq!(hex(tr), hex(&Sha256::digest(body)));

    let v = etcdsnap(&["verify", "--require-trailer", "--json"], &[output]);
    assert!(v.status.success(), "verify {}: {}", output.display(), String::from_utf8_lossy(&v.stdout));
    let vj: Value = serde_json::from_slice(&v.stdout).unwrap();
    assert_eq!(vj["ok"], true, "{vj}");
    assert_eq!(vj["trailer"], "valid", "{vj}");
    assert_eq!(vj["revision"].as_i64(), Some(r.new_revision), "{vj}");

    boltoracle_check_ok(output);
    for b in BboltVersion::ALL {
        b.check_ok(output);
    }

    let s = etcdsnap(&["status", "--json", "--as-etcd", version.minor()], &[output]);
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    let ours: Value = serde_json::from_slice(&s.stdout).unwrap();
    // The tool gets a copy, so nothing it might do to the file can matter.
    let copy = output.with_extension("etcdutl-status.db");
    std::fs::copy(output, &copy).unwrap();
    let st = version
        .snapshot_tool_command()
        .args(["snapshot", "status", "-w", "json"])
        .arg(&copy)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(st.status.success(), "{version} snapshot status: {}", String::from_utf8_lossy(&st.stderr));
    let theirs: Value = serde_json::from_slice(&st.stdout).unwrap();
    let fields = theirs.as_object().unwrap();
    assert!(fields.len() >= 4, "{theirs}");
    // Every field the tool prints (camelCase) equals ours (snake_case).
    for (f, v) in fields {
        let o = match f.as_str() {
            "totalKey" => "total_key",
            "totalSize" => "total_size",
            other => other,
        };
        assert_eq!(&ours[o], v, "status {f}: ours {ours}, {version} {theirs}");
    }
    assert_eq!(theirs["hash"].as_u64(), Some(u64::from(r.status_hash)));
    assert_eq!(theirs["revision"].as_i64(), Some(r.status_revision));
    // The report counts totalKey as etcdutl of the output's own line does.
    assert_eq!(
        r.status_as_etcd,
        if r.target_version.is_some() { r.target_version.clone().unwrap() } else { version.minor().to_string() }
    );
    if r.status_as_etcd == version.minor() || r.target_version.is_none() {
        assert_eq!(theirs["totalKey"].as_u64(), Some(r.status_total_key), "{theirs}");
    }
    assert_eq!(ours["scheduled_compact_revision"].as_i64(), r.scheduled_compact_revision, "{ours}");
    assert_eq!(ours["finished_compact_revision"].as_i64(), r.finished_compact_revision, "{ours}");
    std::fs::remove_file(copy).unwrap();
}

// ---------------------------------------------------------------------------
// Expectations from the fixture's recorded `etcdctl get "" --prefix -w json`

pub(crate) fn b64d(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

pub(crate) fn b64e(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// The fixture's live keys, filtered and renamed by `f` (None: dropped), in key order.
pub(crate) fn expected_rows(version: EtcdVersion, f: impl Fn(&[u8]) -> Option<Vec<u8>>) -> Vec<KvRow> {
    let mut rows: Vec<KvRow> = kv_rows(&version.expected_json("get.json"))
        .into_iter()
        .filter_map(|mut r| {
            let k = f(&b64d(&r.key))?;
            r.key = b64e(&k);
            Some(r)
        })
        .collect();
    rows.sort_by_key(|r| b64d(&r.key));
    rows
}

pub(crate) fn assert_rows(version: EtcdVersion, got: &[KvRow], want: &[KvRow]) {
    assert!(!want.is_empty());
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{version}: served keys differ: {} vs {} keys; first difference at {first:?}: got {:?}, want {:?}",
            got.len(),
            want.len(),
            first.and_then(|i| got.get(i)).map(|r| (String::from_utf8_lossy(&b64d(&r.key)).into_owned(), r)),
            first.and_then(|i| want.get(i)).map(|r| (String::from_utf8_lossy(&b64d(&r.key)).into_owned(), r)),
        );
    }
}

// ---------------------------------------------------------------------------
// Asking the served etcd

/// (hash, compact_revision, header.revision) of `etcdctl endpoint hashkv -w json`.
pub(crate) fn served_hashkv(server: &EtcdServer) -> (u32, i64, i64) {
    let v = server.ctl_json(&["endpoint", "hashkv"]);
    let h = &v[0]["HashKV"];
    (
        u32::try_from(h["hash"].as_u64().unwrap()).unwrap(),
        h["compact_revision"].as_i64().unwrap_or(0),
        h["header"]["revision"].as_i64().unwrap(),
    )
}

pub(crate) fn assert_hashkv_matches_report(server: &EtcdServer, r: &ReportJson) {
    let (hash, compact, rev) = served_hashkv(server);
    assert_eq!(hash, r.hashkv, "{}: etcd's hashkv vs the report's", server.version());
    assert_eq!(compact, r.hashkv_compact_revision, "{}: hashkv compact_revision", server.version());
    assert_eq!(rev, r.new_revision, "{}: hashkv header.revision", server.version());
}

pub(crate) const COMPACTED: &str = "required revision has been compacted";

/// `etcdctl watch --rev REV /` must be refused as compacted (exit non-zero); killed after 20 s.
pub(crate) fn assert_watch_compacted(server: &EtcdServer, rev: i64) {
    let mut c = server.version().etcdctl_command();
    c.args(["--endpoints", &server.endpoint(), "watch", "--rev", &rev.to_string(), "/"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{}: watch --rev {rev} still running after 20 s: not refused as compacted", server.version());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success(), "{}: watch --rev {rev} exited 0: {text}", server.version());
    assert!(text.contains(COMPACTED), "{}: watch --rev {rev}: {text}", server.version());
}

pub(crate) fn assert_get_compacted(server: &EtcdServer, rev: i64) {
    let out = server.ctl(&["get", "/", "--prefix", "--rev", &rev.to_string()]);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && text.contains(COMPACTED), "{}: get --rev {rev}: {text}", server.version());
}

pub(crate) fn put_revision(server: &EtcdServer, key: &str) -> i64 {
    header_revision(&server.ctl_json(&["put", key, "after-rewrite"]))
}

pub(crate) fn served_get(server: &EtcdServer, extra: &[&str]) -> (i64, Vec<KvRow>) {
    let mut args = vec!["get", "", "--prefix"];
    args.extend_from_slice(extra);
    let v = server.ctl_json(&args);
    (header_revision(&v), kv_rows(&v))
}

/// Restores `snapshot` with the version's stock tool (hash checked) and starts etcd
/// on it; returns the server and everything the restore tool and the server logged
/// (3.4.23's `etcdctl snapshot restore` opens the mvcc store itself, so a scheduled
/// compaction is already resumed during the restore, not at the server's start).
pub(crate) fn restore_start(version: EtcdVersion, snapshot: &Path, name: &str) -> (EtcdServer, String) {
    let dir = scratch(name);
    let data = dir.join("data");
    let (client, peer) = (free_port(), free_port());
    let restore_log = restore(version, snapshot, &data, peer);
    let server = EtcdServer::start(version, &data, client, peer);
    let log = format!("{restore_log}{}", std::fs::read_to_string(server.log_path()).unwrap());
    (server, log)
}

pub(crate) const RESUMED: &str = "resume scheduled compaction";
