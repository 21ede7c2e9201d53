//! One damaged copy salvaged through the library and judged against the
//! undamaged original: the salvage refuses with a reason or writes an output;
//! every record of the output's `key` bucket is the original's at that
//! revision, byte for byte (the bump's marker aside); the report's recovered
//! ranges are exactly the output's revisions, and its lost ranges exactly the
//! original's revisions after the compact revision minus the recovered ones;
//! the other buckets hold no record the original does not; the output passes
//! `verify` and our bbolt check. The original and the output are compared
//! by merging their cursors (both in revision order), so a large snapshot
//! is never held in memory.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::path::Path;

use etcdsnap_bolt::Db;
use etcdsnap_io::MappedFile;
use etcdsnap_mvcc::kv::KvRef;
use etcdsnap_mvcc::revision::BucketKey;
use etcdsnap_mvcc::salvage::{salvage, RevRange, SalvageOptions, SalvageReport};
use etcdsnap_mvcc::schema::MetaInfo;
use etcdsnap_mvcc::verify::{verify, VerifyOptions};

/// What the undamaged original holds, as far as the checks need it.
pub struct Original {
    /// The original file, mapped (its image is merged with each output).
    pub file: MappedFile,
    /// Bytes of its bbolt image (the trailer after them).
    pub image_len: usize,
    pub compact: i64,
    pub latest: i64,
    /// Main revisions after the compact revision, ascending.
    pub mains: Vec<i64>,
    /// The bucket keys of the live keys' latest revisions.
    pub live: BTreeSet<Vec<u8>>,
    /// `key`-bucket records at or below the compact revision (what the
    /// compaction kept: each key's base for reads after it).
    pub below: u64,
    /// Every other top-level bucket (small in etcd).
    pub others: BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>,
}

fn main_rev(bk: &[u8]) -> i64 {
    BucketKey::parse(bk).map_or(i64::MIN, |b| b.rev.main)
}

impl Original {
    pub fn open(path: &Path) -> Original {
        let file = MappedFile::open(path).unwrap();
        let image_len = etcdsnap_mvcc::trailer::split(&file).0.len();
        let (compact, latest, mains, live, others, below) = Self::read(&file[..image_len]);
        Original { file, image_len, compact, latest, mains, live, below, others }
    }

    pub fn image(&self) -> &[u8] {
        &self.file[..self.image_len]
    }

    #[allow(clippy::type_complexity)]
    fn read(
        image: &[u8],
    ) -> (i64, i64, Vec<i64>, BTreeSet<Vec<u8>>, BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, Vec<u8>>>, u64) {
        let db = Db::open(image).unwrap();
        let mut meta = MetaInfo::default();
        let mut others = BTreeMap::new();
        for e in db.root().unwrap().cursor() {
            let e = e.unwrap();
            if e.key == b"key" {
                continue;
            }
            let b = db.bucket(&[e.key]).unwrap().unwrap();
            let recs: BTreeMap<Vec<u8>, Vec<u8>> =
                b.cursor().map(|r| r.unwrap()).map(|r| (r.key.to_vec(), r.value.to_vec())).collect();
            if e.key == b"meta" {
                for (k, v) in &recs {
                    meta.absorb(k, v).unwrap();
                }
            }
            others.insert(e.key.to_vec(), recs);
        }
        let compact = meta.compact_rev();
        let mut mains = Vec::new();
        let mut last: BTreeMap<Vec<u8>, (Vec<u8>, bool)> = BTreeMap::new();
        let mut latest = 0;
        let mut below = 0;
        for e in db.bucket(&[b"key"]).unwrap().unwrap().cursor() {
            let e = e.unwrap();
            let bk = BucketKey::parse(e.key).unwrap();
            latest = latest.max(bk.rev.main);
            below += u64::from(bk.rev.main <= compact);
            if bk.rev.main > compact && mains.last() != Some(&bk.rev.main) {
                mains.push(bk.rev.main);
            }
            if !e.value.is_empty() {
                let kv = KvRef::parse(e.value).unwrap();
                last.insert(kv.key.to_vec(), (e.key.to_vec(), bk.tombstone));
            }
        }
        let live = last.into_values().filter(|(_, tomb)| !tomb).map(|(bk, _)| bk).collect();
        (compact, latest, mains, live, others, below)
    }
}

/// How one case went.
#[derive(Debug)]
pub enum Verdict {
    Salvaged(Box<Salvaged>),
    /// An error with its kind: a refusal with a reason.
    Refused {
        kind: String,
        reason: String,
    },
    Panicked(String),
}

/// The measures of a salvaged case.
#[derive(Debug, Default)]
pub struct Salvaged {
    /// Of the original's revisions after its compact revision, recovered.
    pub revisions: (u64, u64),
    /// Of the original's live keys, with their latest revision recovered.
    pub live_keys: (u64, u64),
    /// Of the original's records at or below its compact revision, recovered.
    pub below: (u64, u64),
    /// Original revisions after the latest the report found (unknowable: etcd records the latest nowhere).
    pub unknowable_tail: u64,
    /// The report says the compact revision is unknown (the `meta` bucket lost).
    pub compact_unknown: bool,
    /// Records of other buckets the original does not hold (stale copies brought back).
    pub extra_records: u64,
    /// Records of other buckets lost.
    pub missing_records: u64,
    /// Records whose bytes differ from the original's because the damage hit
    /// their own bytes (a value's payload: nothing in bbolt or etcd checksums it).
    pub payload_damaged: u64,
    /// Records at or below the original's compact revision that it no longer
    /// holds (compacted history from free pages), output while the report
    /// says the compact revision is unknown.
    pub resurrected: u64,
    /// Lease records the salvage wrote anew (kept keys referenced a lease whose record was lost).
    pub leases_recreated: u64,
    /// Broken invariants: each one a salvage bug.
    pub violations: Vec<String>,
}

/// Salvages `damaged` into `output` and judges it against `orig`.
pub fn run(orig: &Original, damaged: &Path, output: &Path, hit: &[(usize, usize)]) -> Verdict {
    let _ = std::fs::remove_file(output);
    let opts = SalvageOptions::default();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| salvage(damaged, output, &opts)));
    std::panic::set_hook(hook);
    match r {
        Err(p) => Verdict::Panicked(
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default(),
        ),
        Ok(Err(e)) => Verdict::Refused { kind: format!("{:?}", e.kind()), reason: e.to_string() },
        Ok(Ok(report)) => Verdict::Salvaged(Box::new(judge(orig, &report, output, hit))),
    }
}

fn expand(r: &[RevRange]) -> BTreeSet<i64> {
    r.iter().flat_map(|&(a, b)| a..=b).collect()
}

/// Whether `bytes` (a slice of `image`) overlaps one of the damaged ranges.
fn damaged(image: &[u8], bytes: &[u8], hit: &[(usize, usize)]) -> bool {
    let start = bytes.as_ptr() as usize - image.as_ptr() as usize;
    hit.iter().any(|&(a, len)| a < start + bytes.len() && start < a + len)
}

fn judge(orig: &Original, r: &SalvageReport, output: &Path, hit: &[(usize, usize)]) -> Salvaged {
    let mut s = Salvaged { compact_unknown: !r.compact_revision_known, ..Salvaged::default() };
    let file = MappedFile::open(output).unwrap();
    let (image, _) = etcdsnap_mvcc::trailer::split(&file);
    let verdict = verify(&file[..], VerifyOptions { require_trailer: true });
    let problems: Vec<_> =
        verdict.findings.iter().filter(|f| f.severity == etcdsnap_mvcc::verify::Severity::Problem).collect();
    if !verdict.is_ok() {
        let first = problems.first().map_or_else(String::new, |f| format!("{:?}: {}", f.kind, f.message));
        s.violations.push(format!("verify: {first}"));
    }
    s.leases_recreated = r.leases_missing.len() as u64;
    let db = match Db::open(image) {
        Ok(db) => db,
        Err(e) => {
            s.violations.push(format!("output does not open: {e}"));
            return s;
        }
    };
    if !db.check().is_ok() {
        s.violations.push("bolt check of the output fails".into());
    }
    // Each lease the report calls missing is in the output, with the TTL it says.
    if let Ok(Some(lease)) = db.bucket(&[b"lease"]) {
        for id in &r.leases_missing {
            let rec = lease.get(&id.to_be_bytes()).ok().flatten();
            let l =
                rec.and_then(|v| <etcdsnap_proto::leasepb::Lease as etcdsnap_proto::prost::Message>::decode(v).ok());
            if l.is_none_or(|l| l.id != *id || l.ttl != r.lost_lease_ttl) {
                s.violations.push(format!("lease {id:x}: reported missing but not written anew with the TTL"));
            }
        }
    } else if !r.leases_missing.is_empty() {
        s.violations.push("leases reported missing but the output has no lease bucket".into());
    }
    // The output's key bucket, merged with the original's (both in bucket-key order).
    let odb = Db::open(orig.image()).unwrap();
    let mut ocur = odb.bucket(&[b"key"]).unwrap().unwrap().cursor().map(|e| e.unwrap()).peekable();
    let marker = r.output.new_revision;
    let mut out_mains: BTreeSet<i64> = BTreeSet::new();
    let mut live_hit = 0u64;
    let mut below_hit = 0u64;
    let key = db.bucket(&[b"key"]).ok().flatten();
    for e in key.iter().flat_map(|b| b.cursor()) {
        let e = match e {
            Ok(e) => e,
            Err(err) => {
                s.violations.push(format!("output key bucket unreadable: {err}"));
                break;
            }
        };
        let m = main_rev(e.key);
        if m == marker && e.value.is_empty() && r.output.new_revision != r.latest_revision {
            continue;
        }
        while ocur.peek().is_some_and(|o| o.key < e.key) {
            ocur.next();
        }
        match ocur.peek() {
            Some(o) if o.key == e.key && o.value == e.value => below_hit += u64::from(m <= orig.compact),
            Some(o) if o.key == e.key && damaged(orig.image(), o.value, hit) => s.payload_damaged += 1,
            Some(o) if o.key == e.key => {
                s.violations.push(format!("record at revision {m}: bytes differ from the original's"));
            }
            _ if m <= orig.compact && !r.compact_revision_known => s.resurrected += 1,
            _ => s.violations.push(format!("record at revision {m}: not in the original")),
        }
        out_mains.insert(m);
        if orig.live.contains(e.key) {
            live_hit += 1;
        }
    }
    // recovered = the output's revisions after the report's compact revision, exactly.
    let first = r.compact_revision.saturating_add(1).max(2);
    let want: BTreeSet<i64> = out_mains.range(first..).copied().collect();
    let recovered = expand(&r.recovered);
    if recovered != want {
        s.violations.push(format!(
            "report's recovered ({} revisions) is not the output's {} revisions after {}",
            recovered.len(),
            want.len(),
            r.compact_revision
        ));
    }
    // lost = the original's revisions after its compact revision, up to the
    // latest found, minus the recovered ones, exactly.
    if r.compact_revision_known && r.compact_revision != orig.compact {
        s.violations
            .push(format!("compact revision {} reported, the original's is {}", r.compact_revision, orig.compact));
    }
    let lost = expand(&r.lost);
    let upto = r.latest_revision;
    if upto > orig.latest {
        s.violations.push(format!("latest revision {upto} reported, the original's is {}", orig.latest));
    }
    let want_lost: BTreeSet<i64> =
        orig.mains.iter().copied().filter(|&m| m <= upto && !out_mains.contains(&m)).collect();
    let got_lost: BTreeSet<i64> = lost.iter().copied().filter(|&m| m > orig.compact).collect();
    if got_lost != want_lost {
        let a: Vec<_> = got_lost.difference(&want_lost).take(5).collect();
        let b: Vec<_> = want_lost.difference(&got_lost).take(5).collect();
        s.violations.push(format!("lost set: reported but present {a:?}, missing from the report {b:?}"));
    }
    if r.compact_revision_known && lost.iter().any(|&m| m <= orig.compact || m > upto) {
        s.violations.push("lost ranges outside (compact, latest]".into());
    }
    if !recovered.is_disjoint(&lost) {
        s.violations.push("a revision both recovered and lost".into());
    }
    let got = orig.mains.iter().filter(|m| out_mains.contains(m)).count() as u64;
    s.revisions = (got, orig.mains.len() as u64);
    s.live_keys = (live_hit, orig.live.len() as u64);
    s.below = (below_hit, orig.below);
    s.unknowable_tail = orig.mains.iter().filter(|&&m| m > upto).count() as u64;
    if s.violations.len() > 5 {
        let more = s.violations.len() - 5;
        s.violations.truncate(5);
        s.violations.push(format!("... and {more} more"));
    }
    // Other buckets: nothing the original does not hold, no changed bytes
    // (the meta bucket's compaction marks and the bumped ones aside).
    for (name, want) in &orig.others {
        let b = db.bucket(&[name.as_slice()]).ok().flatten();
        let got: BTreeMap<Vec<u8>, Vec<u8>> = b
            .iter()
            .flat_map(|b| b.cursor())
            .filter_map(|e| e.ok())
            .map(|e| (e.key.to_vec(), e.value.to_vec()))
            .collect();
        for (k, v) in &got {
            match want.get(k) {
                // The compaction marks the bump adds.
                None if name == b"meta" && k.ends_with(b"CompactRev") => {}
                None => s.extra_records += 1,
                Some(w) if w != v && name != b"meta" => s.violations.push(format!(
                    "bucket {}: record {} differs from the original's",
                    String::from_utf8_lossy(name),
                    etcdsnap_bolt::display_bytes(k)
                )),
                Some(_) => {}
            }
        }
        s.missing_records += want.keys().filter(|k| !got.contains_key(*k)).count() as u64;
    }
    s
}
