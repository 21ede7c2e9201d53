//! Bit-flip campaign: flips one bit at a time in the structure a bbolt reader
//! reaches (both meta pages, page headers, branch and leaf element arrays, bucket
//! headers, inline bucket pages) of the raw `member/snap/db` written by every etcd
//! version under `testdata/`, and asks whether `verify` (trailer-less, so only
//! structure can tell) reports a problem.
//!
//! The sampled test (`sampled_flips_are_detected`) runs in the normal test
//! command: a deterministic sample per version, ≥ 99 % detected, no panic, and
//! every sampled flip that one of Go bbolt 1.3.6 / 1.4.3 / 1.5.0 rejects (exit 1)
//! or panics on (exit 3) is rejected by us too. The full run (`full_campaign`,
//! ignored) flips every bit and prints the detection rate per structure class:
//! `tools/flip-campaign.sh` runs it.
//!
//! Bytes left out of the campaign, because a flip there is undetectable in
//! principle (the result is another valid file that means something else, or the
//! same thing):
//! - key and value payload bytes (any bytes are a valid key or value at the bbolt
//!   level; the MVCC layer decodes the `key` bucket's values and catches some);
//! - a bucket header's `sequence` (`NextSequence`'s counter: every u64 is valid;
//!   etcd never calls `NextSequence`, so it is 0, but a non-zero one is still a
//!   valid bbolt file). Counted as class `bucket-sequence` and reported apart;
//! - unused bytes: the rest of a meta page after the checksum, the tail of a page
//!   after its last element's data, pages that no tree reaches (free pages).
//!
//! See DIFFERENCES.md, "Undetectable bit flips".
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
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use etcdsnap_mvcc::verify::{verify, VerifyOptions};

/// Where a structural byte is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Class {
    /// Meta pages 0 and 1: page header and the meta struct up to the checksum.
    Meta,
    /// Header of a branch page.
    BranchHeader,
    /// Header of a leaf page.
    LeafHeader,
    /// Header of the freelist page (files with a persisted freelist).
    FreelistHeader,
    /// Branch element array (`pos`, `ksize`, `pgid`).
    BranchElements,
    /// Leaf element array (`flags`, `pos`, `ksize`, `vsize`) of pages.
    LeafElements,
    /// A bucket header's `root` (paged or inline).
    BucketRoot,
    /// The page header of an inline bucket's page image.
    InlinePageHeader,
    /// The leaf element array of an inline bucket's page image.
    InlineElements,
    /// A bucket header's `sequence`: undetectable in principle.
    BucketSequence,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Meta => "meta",
            Class::BranchHeader => "branch-header",
            Class::LeafHeader => "leaf-header",
            Class::FreelistHeader => "freelist-header",
            Class::BranchElements => "branch-elements",
            Class::LeafElements => "leaf-elements",
            Class::BucketRoot => "bucket-root",
            Class::InlinePageHeader => "inline-page-header",
            Class::InlineElements => "inline-elements",
            Class::BucketSequence => "bucket-sequence",
        }
    }

    /// Whether some flip of this class can be told apart from a valid file.
    fn detectable(self) -> bool {
        self != Class::BucketSequence
    }
}

fn u16_at(d: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(d[o..o + 2].try_into().unwrap())
}
fn u32_at(d: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(d[o..o + 4].try_into().unwrap())
}
fn u64_at(d: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(d[o..o + 8].try_into().unwrap())
}

/// Every structural byte of a healthy file, with its class (read with plain
/// indexing: the input is a trusted fixture that checks clean).
fn structure(d: &[u8]) -> Vec<(usize, Class)> {
    let ps = u32_at(d, 24) as usize;
    let mut out = Vec::new();
    for m in 0..2 {
        out.extend((m * ps..m * ps + 80).map(|o| (o, Class::Meta)));
    }
    let active = if u64_at(d, ps + 64) > u64_at(d, 64) { ps } else { 0 };
    let root = u64_at(d, active + 32);
    let freelist = u64_at(d, active + 48);
    if freelist != u64::MAX {
        let o = freelist as usize * ps;
        out.extend((o..o + 16).map(|o| (o, Class::FreelistHeader)));
    }
    tree(d, ps, root, &mut out);
    out.sort();
    out.dedup();
    out
}

fn tree(d: &[u8], ps: usize, id: u64, out: &mut Vec<(usize, Class)>) {
    let p = id as usize * ps;
    let flags = u16_at(d, p + 8);
    let count = u16_at(d, p + 10) as usize;
    if flags == 0x01 {
        out.extend((p..p + 16).map(|o| (o, Class::BranchHeader)));
        for i in 0..count {
            let e = p + 16 + 16 * i;
            out.extend((e..e + 16).map(|o| (o, Class::BranchElements)));
            tree(d, ps, u64_at(d, e + 8), out);
        }
    } else {
        assert_eq!(flags, 0x02, "page {id}");
        out.extend((p..p + 16).map(|o| (o, Class::LeafHeader)));
        leaf_elements(d, ps, p, count, Class::LeafElements, out);
    }
}

/// The element array of a leaf (page or inline image at `p`) and the buckets it holds.
fn leaf_elements(d: &[u8], ps: usize, p: usize, count: usize, class: Class, out: &mut Vec<(usize, Class)>) {
    for i in 0..count {
        let e = p + 16 + 16 * i;
        out.extend((e..e + 16).map(|o| (o, class)));
        if u32_at(d, e) & 1 == 0 {
            continue;
        }
        let v = e + u32_at(d, e + 4) as usize + u32_at(d, e + 8) as usize;
        out.extend((v..v + 8).map(|o| (o, Class::BucketRoot)));
        out.extend((v + 8..v + 16).map(|o| (o, Class::BucketSequence)));
        let root = u64_at(d, v);
        if root != 0 {
            tree(d, ps, root, out);
        } else {
            let ip = v + 16;
            out.extend((ip..ip + 16).map(|o| (o, Class::InlinePageHeader)));
            leaf_elements(d, ps, ip, u16_at(d, ip + 10) as usize, Class::InlineElements, out);
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn versions() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("testdata"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("etcd-"))
        .collect();
    v.sort();
    assert!(v.len() >= 5, "expected fixtures of five etcd versions, found {v:?}");
    v
}

/// The Go bbolt checkers: (name, binary). Missing binaries fail the test.
fn oracles() -> Vec<(&'static str, PathBuf)> {
    let dir = std::env::var_os("ETCDSNAP_ORACLES").map(PathBuf::from).unwrap_or_else(|| root().join(".oracles"));
    let list = [
        ("go-1.3.6", "bin/boltoracle"),
        ("go-1.4.3", "bbolt-1.4.3/boltoracle"),
        ("go-1.5.0", "bbolt-1.5.0/boltoracle"),
    ];
    list.iter()
        .map(|(n, p)| {
            let bin = dir.join(p);
            assert!(bin.exists(), "{} missing: run tools/install-oracles.sh", bin.display());
            (*n, bin)
        })
        .collect()
}

/// Go's verdict on a file: 0 OK, 1 problems, 3 panicked (2 = could not open: a rejection too).
fn go_check(bin: &Path, file: &Path) -> i32 {
    let out = Command::new(bin).arg("check").arg(file).output().unwrap();
    out.status.code().unwrap_or(-1)
}

/// A deterministic xorshift generator for the sample.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[derive(Debug, Default, Clone)]
struct Tally {
    flips: u64,
    verify: u64,
    check: u64,
    /// Per oracle: (rejected, panicked).
    go: BTreeMap<&'static str, (u64, u64)>,
    go_runs: u64,
}

struct Result {
    by_class: BTreeMap<Class, Tally>,
    panics: Vec<String>,
    /// Flips some Go checker rejects and `verify` does not.
    missed_go: Vec<String>,
    /// Flips `verify` does not report, in detectable classes.
    missed: Vec<String>,
    slowest: Duration,
}

/// Flips each `(offset, bit)` of `data` in turn; runs the oracles on every
/// `oracle_every`-th flip (0 = never).
fn campaign(name: &str, data: &mut [u8], flips: &[(usize, Class, u8)], oracle_every: usize) -> Result {
    let oracles = if oracle_every > 0 { oracles() } else { Vec::new() };
    let scratch = root().join("target/test-scratch/flip-campaign");
    std::fs::create_dir_all(&scratch).unwrap();
    let tmp = scratch.join(format!("{name}.db"));
    let mut r = Result {
        by_class: BTreeMap::new(),
        panics: Vec::new(),
        missed_go: Vec::new(),
        missed: Vec::new(),
        slowest: Duration::ZERO,
    };
    for (n, &(off, class, bit)) in flips.iter().enumerate() {
        data[off] ^= 1 << bit;
        let what = format!("{name} offset {off} (page {}) bit {bit} [{}]", off / 4096, class.name());
        let start = Instant::now();
        let outcome = std::panic::catch_unwind(|| {
            let v = !verify(data, VerifyOptions::default()).is_ok();
            let c = match etcdsnap_bolt::Db::open(data) {
                Ok(db) => !db.check().is_ok(),
                Err(_) => true,
            };
            (v, c)
        });
        r.slowest = r.slowest.max(start.elapsed());
        let t = r.by_class.entry(class).or_default();
        t.flips += 1;
        match outcome {
            Err(_) => r.panics.push(what.clone()),
            Ok((v, c)) => {
                t.verify += u64::from(v);
                t.check += u64::from(c);
                if !v && class.detectable() {
                    r.missed.push(what.clone());
                }
                if oracle_every > 0 && n % oracle_every == 0 {
                    std::fs::write(&tmp, &*data).unwrap();
                    t.go_runs += 1;
                    for (oname, bin) in &oracles {
                        let code = go_check(bin, &tmp);
                        let e = t.go.entry(oname).or_default();
                        if code != 0 {
                            e.0 += 1;
                            if !v {
                                r.missed_go.push(format!("{what}: {oname} exit {code}"));
                            }
                        }
                        if code == 3 {
                            e.1 += 1;
                        }
                    }
                }
            }
        }
        data[off] ^= 1 << bit;
    }
    let _ = std::fs::remove_file(&tmp);
    r
}

fn pct(n: u64, d: u64) -> f64 {
    if d == 0 {
        100.0
    } else {
        100.0 * n as f64 / d as f64
    }
}

fn print(name: &str, r: &Result) {
    println!("{name}");
    println!(
        "  {:<20} {:>7} {:>8} {:>8} {:>6} {:>14} {:>14} {:>14}",
        "class", "flips", "verify%", "check%", "go-n", "go-1.3.6 rej/pan", "go-1.4.3 rej/pan", "go-1.5.0 rej/pan"
    );
    let mut total = Tally::default();
    let mut detectable = Tally::default();
    for (class, t) in &r.by_class {
        let go: Vec<String> = ["go-1.3.6", "go-1.4.3", "go-1.5.0"]
            .iter()
            .map(|o| {
                let (rej, pan) = t.go.get(o).copied().unwrap_or_default();
                if t.go_runs == 0 {
                    "-".to_owned()
                } else {
                    format!("{:.1}/{:.1}", pct(rej, t.go_runs), pct(pan, t.go_runs))
                }
            })
            .collect();
        println!(
            "  {:<20} {:>7} {:>8.2} {:>8.2} {:>6} {:>14} {:>14} {:>14}",
            class.name(),
            t.flips,
            pct(t.verify, t.flips),
            pct(t.check, t.flips),
            t.go_runs,
            go[0],
            go[1],
            go[2]
        );
        total.flips += t.flips;
        total.verify += t.verify;
        total.check += t.check;
        if class.detectable() {
            detectable.flips += t.flips;
            detectable.verify += t.verify;
            detectable.check += t.check;
        }
    }
    println!(
        "  {:<20} {:>7} {:>8.2} {:>8.2}",
        "ALL",
        total.flips,
        pct(total.verify, total.flips),
        pct(total.check, total.flips)
    );
    println!(
        "  {:<20} {:>7} {:>8.2} {:>8.2}   (without bucket-sequence)",
        "DETECTABLE",
        detectable.flips,
        pct(detectable.verify, detectable.flips),
        pct(detectable.check, detectable.flips)
    );
    println!(
        "  panics {}, slowest flip {:?}, missed where Go rejects {}",
        r.panics.len(),
        r.slowest,
        r.missed_go.len()
    );
}

fn fixture(version: &str) -> Vec<u8> {
    let p = root().join("testdata").join(version).join("member/snap/db");
    let d = std::fs::read(&p).unwrap();
    assert!(verify(&d, VerifyOptions::default()).is_ok(), "{} must verify clean", p.display());
    d
}

fn all_flips(d: &[u8]) -> Vec<(usize, Class, u8)> {
    structure(d).into_iter().flat_map(|(o, c)| (0..8u8).map(move |b| (o, c, b))).collect()
}

fn assert_result(name: &str, r: &Result) {
    assert!(r.panics.is_empty(), "{name}: panics on {:?}", r.panics);
    assert!(r.missed_go.is_empty(), "{name}: Go rejects, we accept: {:#?}", r.missed_go);
    assert!(r.slowest < Duration::from_secs(10), "{name}: a flip took {:?}", r.slowest);
    let (flips, detected) =
        r.by_class.iter().filter(|(c, _)| c.detectable()).fold((0, 0), |(f, d), (_, t)| (f + t.flips, d + t.verify));
    let rate = pct(detected, flips);
    assert!(rate >= 99.0, "{name}: {rate:.2}% of {flips} flips detected; missed: {:#?}", r.missed);
}

/// The structure walk finds what a healthy etcd file holds: both metas, every
/// class the campaign claims to cover, and no payload.
#[test]
fn structure_covers_every_class() {
    for v in versions() {
        let d = fixture(&v);
        let s = structure(&d);
        let mut seen: BTreeMap<Class, usize> = BTreeMap::new();
        for (_, c) in &s {
            *seen.entry(*c).or_default() += 1;
        }
        for c in [
            Class::Meta,
            Class::BranchHeader,
            Class::LeafHeader,
            Class::BranchElements,
            Class::LeafElements,
            Class::BucketRoot,
            Class::InlinePageHeader,
            Class::InlineElements,
            Class::BucketSequence,
        ] {
            assert!(seen.get(&c).copied().unwrap_or(0) > 0, "{v}: no {} bytes", c.name());
        }
        assert_eq!(seen[&Class::Meta], 160, "{v}");
    }
}

/// A deterministic sample of flips per etcd version; the oracles judge a few of them.
#[test]
fn sampled_flips_are_detected() {
    const PER_VERSION: usize = 400;
    const ORACLE_EVERY: usize = 10;
    for v in versions() {
        let mut d = fixture(&v);
        let all = all_flips(&d);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ v.len() as u64);
        let sample: Vec<_> = (0..PER_VERSION).map(|_| all[(rng.next() % all.len() as u64) as usize]).collect();
        let r = campaign(&v, &mut d, &sample, ORACLE_EVERY);
        print(&v, &r);
        assert_result(&v, &r);
    }
}

/// Every bit of the structure of every version's raw db (tools/flip-campaign.sh).
/// FLIP_ORACLE_EVERY=N runs the Go checkers on every N-th flip (default 0: none);
/// FLIP_VERSIONS=etcd-3.5.1,... limits the versions; FLIP_ASSERT=1 asserts as the
/// sampled test does.
#[test]
#[ignore = "full campaign, minutes: run tools/flip-campaign.sh"]
fn full_campaign() {
    let every: usize = std::env::var("FLIP_ORACLE_EVERY").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let only: Option<Vec<String>> =
        std::env::var("FLIP_VERSIONS").ok().map(|s| s.split(',').map(str::to_owned).collect());
    let strict = std::env::var("FLIP_ASSERT").is_ok_and(|s| s == "1");
    for v in versions() {
        if only.as_ref().is_some_and(|o| !o.contains(&v)) {
            continue;
        }
        let mut d = fixture(&v);
        let all = all_flips(&d);
        let r = campaign(&v, &mut d, &all, every);
        print(&v, &r);
        if std::env::var("FLIP_SHOW_MISSED").is_ok_and(|s| s == "1") {
            for m in &r.missed {
                println!("  missed: {m}");
            }
        }
        if strict {
            assert_result(&v, &r);
        }
    }
}
