//! Byte-identical outputs across restructurings: every whole-file writer
//! (`rewrite` patched and rebuilt, `transform`, `snapshot::compact`) run on
//! every committed fixture with a spread of options, its output's SHA-256
//! compared with `testdata/expected-outputs.txt`, recorded before the
//! rewrite became a module tree (issue 21). A change of any output byte fails
//! here; when one is intended, regenerate with `UPDATE_EXPECT=1` and say why
//! in the commit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use etcdsnap_io::CreateOptions;
use etcdsnap_keys::{KeyRules, Rename};
use etcdsnap_mvcc::rewrite::{rewrite, CompactTombstones, NoProgress, Reseal, RewriteOptions};
use etcdsnap_mvcc::schema::EtcdLine;
use etcdsnap_mvcc::snapshot::{compact, CompactOptions, TrailerMode};
use etcdsnap_mvcc::transform::{transform, Decision, Entry, EntryHook};
use sha2::{Digest, Sha256};

const VERSIONS: [&str; 5] = ["3.4.23", "3.5.1", "3.5.35", "3.6.16", "3.7.3"];

/// A deterministic stand-in for a key-bound re-sealer: the value's bytes
/// after the provider prefix XORed with a digest of both keys (same length).
#[derive(Debug)]
struct XorReseal;

impl Reseal for XorReseal {
    fn check(&self, _: &[u8], value: &[u8]) -> Result<String, String> {
        let label = value.splitn(4, |&b| b == b':').take(3).collect::<Vec<_>>().join(&b':');
        Ok(String::from_utf8_lossy(&label).into_owned())
    }

    fn reseal(&self, old: &[u8], new: &[u8], rev: &[u8], value: &[u8]) -> Result<(String, Vec<u8>), String> {
        let pad: [u8; 32] = Sha256::new().chain_update(old).chain_update(new).chain_update(rev).finalize().into();
        let mut out = value.to_vec();
        for (i, b) in out.iter_mut().enumerate().skip(24) {
            *b ^= pad[i % 32];
        }
        Ok((self.check(old, value)?, out))
    }
}

/// Drops one namespace's Events, replaces ConfigMap values with their reverse.
#[derive(Debug)]
struct Scrub;

impl EntryHook for Scrub {
    fn decide(&self, e: &Entry<'_>) -> Result<Decision, String> {
        if e.new_key.windows(8).any(|w| w == b"/events/") {
            return Ok(Decision::Drop);
        }
        if !e.at.tombstone && e.new_key.windows(12).any(|w| w == b"/configmaps/") {
            return Ok(Decision::ReplaceValue(e.kv.value.iter().rev().copied().collect()));
        }
        Ok(Decision::Keep)
    }
}

fn strs(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn rules(include: &[&str], exclude: &[&str], keep: &[&str], drop: &[&str], rename: &[&str]) -> KeyRules {
    KeyRules {
        include: strs(include),
        exclude: strs(exclude),
        keep_keys: strs(keep),
        drop_keys: strs(drop),
        renames: rename.iter().map(|r| Rename::parse(r).unwrap()).collect(),
    }
}

/// The named option sets of the rewrite.
fn cases(version: &str) -> Vec<(&'static str, RewriteOptions)> {
    let d = RewriteOptions::default;
    let mv = || rules(&["/tenant-1/"], &[], &["compact_rev_key"], &[], &["/tenant-1/registry/=/registry/"]);
    // Tenant 2 holds the fixtures' aesgcm-encrypted Secrets (key-bound values).
    let mv2 = || rules(&["/tenant-2/"], &[], &["compact_rev_key"], &[], &["/tenant-2/registry/=/registry/"]);
    let mut v = vec![
        ("keep-all", d()),
        ("bump-mark", RewriteOptions { bump_revision: Some(1_000_000_000), mark_compacted: true, ..d() }),
        (
            "bump-mark-rebuilt",
            RewriteOptions { bump_revision: Some(1_000_000_000), mark_compacted: true, rebuild: true, ..d() },
        ),
        (
            "tenant-move",
            RewriteOptions {
                rules: mv(),
                bump_revision: Some(1_000_000_000),
                mark_compacted: true,
                allow_key_bound_encrypted: true,
                ..d()
            },
        ),
        (
            "tenant-move-reseal",
            RewriteOptions {
                rules: mv2(),
                bump_revision: Some(1_000_000_000),
                mark_compacted: true,
                reseal: Some(Arc::new(XorReseal)),
                ..d()
            },
        ),
        ("exclude-tenant", RewriteOptions { rules: rules(&[], &["/tenant-2/"], &[], &[], &[]), ..d() }),
        (
            "exclude-tenant-rebuilt",
            RewriteOptions { rules: rules(&[], &["/tenant-2/"], &[], &[], &[]), rebuild: true, ..d() },
        ),
        (
            "drop-key",
            RewriteOptions {
                rules: rules(&[], &[], &[], &["/tenant-3/registry/configmaps/frontend/assets-100k"], &[]),
                ..d()
            },
        ),
        ("compact-latest-bump", RewriteOptions { compact: Some(None), bump_revision: Some(1000), ..d() }),
        (
            "compact-1300-drop-tombstones",
            RewriteOptions { compact: Some(Some(1300)), compact_tombstones: CompactTombstones::Drop, ..d() },
        ),
        (
            "include-compact-orphans",
            RewriteOptions {
                rules: rules(&["/tenant-3/"], &[], &["compact_rev_key"], &[], &[]),
                compact: Some(None),
                drop_orphan_leases: true,
                ..d()
            },
        ),
        ("page-8k-fill-70", RewriteOptions { page_size: Some(8192), fill_percent: 0.7, ..d() }),
        ("no-trailer", RewriteOptions { trailer: TrailerMode::Never, bump_revision: Some(5), ..d() }),
        ("hook", RewriteOptions { hook: Some(Arc::new(Scrub)), ..d() }),
        (
            "hook-rename-compact",
            RewriteOptions {
                rules: rules(&[], &[], &[], &[], &["/tenant-2/=/t2/"]),
                hook: Some(Arc::new(Scrub)),
                compact: Some(None),
                allow_key_bound_encrypted: true,
                ..d()
            },
        ),
    ];
    if matches!(version, "3.6.16" | "3.7.3") {
        v.push(("target-3.5", RewriteOptions { target_version: Some(EtcdLine::V3_5), ..d() }));
        v.push(("target-3.5-rebuilt", RewriteOptions { target_version: Some(EtcdLine::V3_5), rebuild: true, ..d() }));
    }
    v
}

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn run_all() -> BTreeMap<String, String> {
    let mut got = BTreeMap::new();
    let scratch = support::scratch("golden", "out");
    for v in VERSIONS {
        let dir = support::fixture_dir(v);
        for (input_name, input) in [("snapshot", dir.join("snapshot.db")), ("db", dir.join("member/snap/db"))] {
            for (name, opts) in cases(v) {
                let out = scratch.join(format!("{v}-{input_name}-{name}.db"));
                let opts =
                    RewriteOptions { output: CreateOptions { overwrite: true, remove_stale: false }, ..opts.clone() };
                let r = rewrite(&input, &out, &opts, &mut NoProgress)
                    .unwrap_or_else(|e| panic!("{v} {input_name} {name}: {e}"));
                let bytes = std::fs::read(&out).unwrap();
                got.insert(format!("{v} {input_name} rewrite {name} {}", r.layout.as_str()), sha(&bytes));
                if opts.trailer == TrailerMode::LikeInput {
                    let data = std::fs::read(&input).unwrap();
                    let (t, _) = transform(&data, Vec::new(), &opts, &mut NoProgress).unwrap();
                    got.insert(format!("{v} {input_name} transform {name}"), sha(&t));
                }
            }
            let out = scratch.join(format!("{v}-{input_name}-compact.db"));
            let copts =
                CompactOptions { output: CreateOptions { overwrite: true, remove_stale: false }, ..Default::default() };
            compact(&input, &out, &copts).unwrap();
            got.insert(format!("{v} {input_name} compact default"), sha(&std::fs::read(&out).unwrap()));
        }
    }
    got
}

#[test]
fn outputs_are_byte_identical_to_the_recorded_ones() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/expected-outputs.txt");
    let got = run_all();
    let text: String = got.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap();
    let want: BTreeMap<&str, &str> = want.lines().filter_map(|l| l.rsplit_once(' ')).collect();
    let mut diffs = Vec::new();
    for (k, v) in &got {
        match want.get(k.as_str()) {
            Some(w) if *w == v => {}
            Some(w) => diffs.push(format!("{k}: {v} (recorded {w})")),
            None => diffs.push(format!("{k}: not recorded")),
        }
    }
    for k in want.keys() {
        if !got.contains_key(*k) {
            diffs.push(format!("{k}: recorded, not produced"));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} outputs differ from testdata/expected-outputs.txt:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    assert!(got.len() > 300, "only {} outputs", got.len());
}
