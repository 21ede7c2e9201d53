//! The damage campaign of `salvage` (issue 25): damaged copies of an
//! undamaged original — every version's fixtures, or a generated large
//! snapshot — salvaged through the library and judged against the original
//! (see `damage_campaign/check.rs` for the invariants, `damage.rs` for the
//! damage classes). Per class it measures the share of the original's
//! revisions (after its compact revision) and of its live keys recovered.
//!
//! `damage_campaign` runs a deterministic sample (one case per class per
//! fixture) in the test command; with `DAMAGE_FULL=1` it is the full run
//! that `tools/damage-campaign.sh` drives:
//! - `DAMAGE_PER_CLASS=N` cases per class per input (full run default 20);
//! - `DAMAGE_INPUTS=a.db,b.db` instead of the fixtures (a generated snapshot);
//! - `DAMAGE_CLASSES=substr,...` only the classes whose name contains one;
//! - `DAMAGE_GO_EVERY=N` Go bbolt's check of each line on every N-th output (0: none);
//! - `DAMAGE_SEED=N`, `DAMAGE_SHOW=1` (every case on its own line), `DAMAGE_ASSERT=0`.
//!
//! `salvaged_outputs_restore_and_serve` restores damaged fixtures' outputs
//! with every version's stock restore and has that etcd serve them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]

#[path = "damage_campaign/check.rs"]
mod check;
#[path = "damage_campaign/damage.rs"]
mod damage;
#[path = "damage_campaign/map.rs"]
mod map;
#[path = "damage_campaign/table.rs"]
mod table;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use etcdsnap_testkit::{free_port, scratch, BboltVersion, EtcdServer, EtcdVersion};

use check::{Original, Verdict};
use damage::{Case, Damage};
use map::FileMap;
use table::Table;

/// Writes `original` with `case`'s damage to `to`.
fn damaged_copy(original: &Path, case: &Case, to: &Path) {
    std::fs::copy(original, to).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(to).unwrap();
    match &case.damage {
        Damage::Patch(patches) => {
            for (off, bytes) in patches {
                f.write_all_at(bytes, *off as u64).unwrap();
            }
        }
        Damage::Truncate(len) => f.set_len(*len).unwrap(),
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Every version's snapshot and raw db.
fn fixtures() -> Vec<(String, PathBuf)> {
    EtcdVersion::ALL
        .iter()
        .flat_map(|v| [(format!("{v} snapshot"), v.fixture_snapshot()), (format!("{v} raw"), v.fixture_raw_db())])
        .collect()
}

/// Options of one campaign run.
struct Run {
    per_class: usize,
    seed: u64,
    classes: Option<Vec<String>>,
    go_every: usize,
    show: bool,
}

/// Every case of every class on `input`, judged; outputs named `out-N.db` in `dir`.
fn campaign(name: &str, input: &Path, run: &Run, dir: &Path, table: &mut Table) {
    let orig = Original::open(input);
    let map = FileMap::new(orig.image());
    let cases = damage::cases(&orig.file, orig.image_len, &map, run.per_class, run.seed ^ fnv(name));
    let damaged = dir.join("damaged.db");
    let output = dir.join("out.db");
    let mut salvaged = 0usize;
    for case in cases {
        if run.classes.as_ref().is_some_and(|cs| !cs.iter().any(|c| case.class.contains(c.as_str()))) {
            continue;
        }
        damaged_copy(input, &case, &damaged);
        let start = Instant::now();
        let verdict = check::run(&orig, &damaged, &output, &case.damage.ranges());
        let took = start.elapsed();
        if let Verdict::Salvaged(_) = &verdict {
            salvaged += 1;
            if run.go_every > 0 && salvaged.is_multiple_of(run.go_every) {
                for line in BboltVersion::ALL {
                    line.check_ok(&output);
                }
            }
        }
        if run.show {
            println!("{name} | {} | {} | {} | {took:?}", case.class, case.what, table::summary(&verdict));
        }
        table.add(name, &case, &verdict, took);
    }
    let _ = std::fs::remove_file(&damaged);
    let _ = std::fs::remove_file(&output);
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

#[test]
fn damage_campaign() {
    let full = std::env::var("DAMAGE_FULL").is_ok_and(|s| s == "1");
    let run = Run {
        per_class: env_usize("DAMAGE_PER_CLASS", if full { 20 } else { 1 }),
        seed: env_usize("DAMAGE_SEED", 20_240_501) as u64,
        classes: std::env::var("DAMAGE_CLASSES").ok().map(|s| s.split(',').map(str::to_owned).collect()),
        go_every: env_usize("DAMAGE_GO_EVERY", if full { 0 } else { 4 }),
        show: std::env::var("DAMAGE_SHOW").is_ok_and(|s| s == "1"),
    };
    let inputs: Vec<(String, PathBuf)> = match std::env::var("DAMAGE_INPUTS") {
        Ok(list) if full => list.split(',').map(|p| (p.to_owned(), PathBuf::from(p))).collect(),
        _ => fixtures(),
    };
    let dir = scratch(if full { "damage-campaign-full" } else { "damage-campaign" });
    let mut table = Table::default();
    for (name, path) in &inputs {
        campaign(name, path, &run, &dir, &mut table);
    }
    table.print();
    if !full || std::env::var("DAMAGE_ASSERT").map_or(true, |s| s != "0") {
        table.assert_sound();
    }
}

/// Damaged fixtures' outputs, restored by every version's stock restore
/// (hash checked) and served by that version's etcd: the revision is the
/// bumped one and every live key the report counts is there.
#[test]
fn salvaged_outputs_restore_and_serve() {
    let dir = scratch("damage-campaign-serve");
    let picks = [
        (EtcdVersion::V3_4_23, false, "zero leaf-key"),
        (EtcdVersion::V3_5_35, true, "stale root copy, metas zeroed"),
        (EtcdVersion::V3_7_3, false, "truncated"),
    ];
    for (i, (from, raw, class)) in picks.iter().enumerate() {
        let input = if *raw { from.fixture_raw_db() } else { from.fixture_snapshot() };
        let orig = Original::open(&input);
        let map = FileMap::new(orig.image());
        let case = damage::cases(&orig.file, orig.image_len, &map, 1, 7)
            .into_iter()
            .find(|c| c.class == *class)
            .unwrap_or_else(|| panic!("{from}: no case of class {class}"));
        let damaged = dir.join(format!("damaged-{i}.db"));
        damaged_copy(&input, &case, &damaged);
        let output = dir.join(format!("salvaged-{i}.db"));
        let Verdict::Salvaged(s) = check::run(&orig, &damaged, &output, &case.damage.ranges()) else {
            panic!("{from} {class}: not salvaged");
        };
        assert!(s.violations.is_empty(), "{from} {class}: {:?}", s.violations);
        for line in BboltVersion::ALL {
            line.check_ok(&output);
        }
        let report = etcdsnap_mvcc::salvage::salvage(
            &damaged,
            &output,
            &etcdsnap_mvcc::salvage::SalvageOptions {
                output: etcdsnap_io::CreateOptions { overwrite: true, remove_stale: false },
                ..Default::default()
            },
        )
        .unwrap();
        // etcd 3.6+ refuses a db whose storageVersion is newer than its own
        // ("version 3.7.0 is not supported": a downgrade needs `etcdutl
        // migrate`); 3.4 and 3.5 do not read it.
        for to in EtcdVersion::ALL.into_iter().filter(|to| to >= from || *to < EtcdVersion::V3_6_16) {
            let data = dir.join(format!("data-{i}-{to}"));
            let (c, p) = (free_port(), free_port());
            etcdsnap_testkit::restore(to, &output, &data, p);
            let server = EtcdServer::start(to, &data, c, p);
            let st = server.ctl_json(&["endpoint", "status"]);
            let ctx = format!("{from} {class} ({}) served by {to}", case.what);
            assert_eq!(st[0]["Status"]["header"]["revision"].as_i64(), Some(report.output.new_revision), "{ctx}");
            let got = server.ctl_json(&["get", "", "--prefix", "--keys-only"]);
            assert_eq!(got["count"].as_u64(), Some(report.live_keys), "{ctx}");
        }
    }
}
