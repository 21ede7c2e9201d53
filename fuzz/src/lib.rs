//! Shared code of the etcdsnap fuzz targets (see `README.md`).
//!
//! [`exercise`] runs everything a reader of an untrusted file would: open,
//! check, a full walk touching every key and value byte, the canonical dump,
//! cursors (first/next, seeks) and lookups. It must never panic, hang or
//! allocate without bound. When the checker finds no problem it also asserts
//! that the walk, the cursors and the lookups agree with each other: a file
//! the checker passes must read back consistently.
//!
//! [`apply_script`] turns a fuzz input into a patched copy of a small valid
//! bbolt file, so mutations start from deep inside the format (valid metas,
//! trees, nested and inline buckets, overflow pages, a freelist).

pub mod etcd;

use etcdsnap_bolt::walk::{walk, Visitor};
use etcdsnap_bolt::{Bucket, BucketHeader, Db};

/// The valid seed files (written by `seeds/gen-seed.go`, bbolt 1.3.6).
pub const FIXTURES: [&[u8]; 2] = [include_bytes!("../seeds/small-4096.db"), include_bytes!("../seeds/small-1024.db")];

/// Keys sampled during the walk and checked against lookups afterwards.
const SAMPLES: usize = 16;

/// A bucket path, a key and its value, as the walk saw them.
type Sample<'a> = (Vec<Vec<u8>>, &'a [u8], &'a [u8]);

#[derive(Default)]
struct Toucher<'a> {
    sum: u64,
    buckets: u64,
    keys: u64,
    samples: Vec<Sample<'a>>,
}

impl<'a> Visitor<'a> for Toucher<'a> {
    fn enter_bucket(&mut self, path: &[Vec<u8>], header: BucketHeader) -> etcdsnap_bolt::Result<()> {
        self.buckets += 1;
        self.sum = self.sum.wrapping_add(header.sequence).wrapping_add(path.len() as u64);
        Ok(())
    }

    fn value(&mut self, path: &[Vec<u8>], key: &'a [u8], value: &'a [u8]) -> etcdsnap_bolt::Result<()> {
        self.keys += 1;
        for &b in key.iter().chain(value) {
            self.sum = self.sum.wrapping_add(u64::from(b));
        }
        // Keep the first few keys and then a spread of later ones.
        if self.samples.len() < SAMPLES || self.keys.is_power_of_two() {
            if self.samples.len() >= SAMPLES {
                self.samples.remove(SAMPLES / 2);
            }
            self.samples.push((path.to_vec(), key, value));
        }
        Ok(())
    }
}

/// Iterates `bucket` with the manual cursor API and the iterator; returns the
/// number of entries (None after an error) of each.
fn count_both(bucket: &Bucket<'_>) -> (Option<u64>, Option<u64>) {
    let mut c = bucket.cursor();
    let mut manual = Some(0u64);
    let mut e = c.first();
    loop {
        match e {
            Ok(Some(_)) => manual = manual.map(|n| n + 1),
            Ok(None) => break,
            Err(_) => {
                manual = None;
                break;
            }
        }
        e = c.next_entry();
    }
    let mut iter = Some(0u64);
    for r in bucket.cursor() {
        match r {
            Ok(_) => iter = iter.map(|n| n + 1),
            Err(_) => {
                iter = None;
                break;
            }
        }
    }
    (manual, iter)
}

/// Seeks `key` in `bucket` and reads a few entries from there; returns whether
/// the first entry found has exactly `key`.
fn seek_some(bucket: &Bucket<'_>, key: &[u8]) -> bool {
    let mut c = bucket.cursor();
    let hit = matches!(c.seek(key), Ok(Some(e)) if e.key == key);
    let mut prev: Option<Vec<u8>> = None;
    for r in c.take(4) {
        let Ok(e) = r else { break };
        std::hint::black_box(e.value.len());
        prev = Some(e.key.to_vec());
    }
    std::hint::black_box(prev);
    let _ = bucket.get(key);
    let _ = bucket.bucket(key);
    hit
}

/// Opens `data` as a bbolt file and exercises every read path; `keys` are
/// extra keys to seek in the root bucket and the first top-level buckets.
pub fn exercise(data: &[u8], keys: &[&[u8]]) {
    let Ok(db) = Db::open(data) else { return };
    std::hint::black_box((db.meta(), db.page_size(), db.hwm(), db.metas()));
    if let Err(e) = db.freelist() {
        std::hint::black_box(e.to_string());
    }

    let report = db.check();
    for p in report.problems.iter().take(8) {
        std::hint::black_box(p.to_string());
    }
    let consistent = report.is_ok();

    let mut t = Toucher::default();
    let walked = walk(&db, &mut t);
    std::hint::black_box(t.sum);
    if let Err(e) = &walked {
        std::hint::black_box(e.to_string());
    }
    let _ = etcdsnap_bolt::dump::dump(&db, std::io::sink());

    if consistent {
        if let Err(e) = &walked {
            panic!("check passed but the walk failed: {e}");
        }
        assert_eq!(t.keys, report.stats.keys, "walk and check disagree on the key count");
        assert_eq!(t.buckets, report.stats.buckets, "walk and check disagree on the bucket count");
        for (path, key, value) in &t.samples {
            let bucket = match db.bucket(path) {
                Ok(Some(b)) => b,
                other => panic!("check passed but bucket {path:?} did not open: {other:?}"),
            };
            match bucket.get(key) {
                Ok(Some(v)) => assert_eq!(v, *value, "get returned another value than the walk"),
                other => panic!("check passed but get({key:?}) in {path:?} gave {other:?}"),
            }
            assert!(seek_some(&bucket, key), "check passed but seek({key:?}) in {path:?} missed");
        }
    }

    let Ok(root) = db.root() else { return };
    let mut buckets = vec![root.clone()];
    for e in root.cursor().take(4) {
        let Ok(e) = e else { break };
        if e.is_bucket() {
            if let Ok(b) = root.child(e) {
                buckets.push(b);
            }
        }
    }
    for b in &buckets {
        let (manual, iter) = count_both(b);
        if consistent {
            assert_eq!(manual, iter, "first/next and the iterator disagree in {:?}", b.path());
            assert!(iter.is_some(), "check passed but iterating {:?} failed", b.path());
        }
        for k in keys {
            seek_some(b, k);
        }
    }
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Recomputes the checksum of the meta page at `page_offset`, so patched meta
/// fields are not simply rejected by the checksum test.
fn fix_meta_checksum(file: &mut [u8], page_offset: usize) {
    let meta = page_offset + 16;
    let Some(sum) = file.get(meta..meta + 56).map(fnv1a64) else { return };
    if let Some(slot) = file.get_mut(meta + 56..meta + 64) {
        slot.copy_from_slice(&sum.to_le_bytes());
    }
}

fn put(file: &mut [u8], at: usize, bytes: &[u8]) {
    let end = (at + bytes.len()).min(file.len());
    if let (Some(dst), Some(src)) = (file.get_mut(at..end), bytes.get(..end.saturating_sub(at))) {
        dst.copy_from_slice(src);
    }
}

/// Builds a patched fixture from a mutation script; also returns seek keys
/// taken from the script.
///
/// Script: byte 0 = flags (bit 0: which fixture, bit 1: recompute both meta
/// checksums at the end, bit 2: truncate the file at the offset given by the
/// last record); then 5-byte records `op, off0, off1, off2, val`:
///
/// * `off` (24-bit LE) is a file offset modulo the length, or, when op bit 3
///   is set, `off2` picks a page and `off0` a byte in the first 256 of it
///   (headers, element arrays, meta fields);
/// * `op & 7`: 0-2 set the byte to `val`, 3 xor it with `val`, 4 write `val`
///   as u16 LE, 5 as u32 LE, 6 as u64 LE (counts, page ids), 7 write
///   `u64::MAX - val` (huge ids and lengths).
///
/// Any trailing bytes (fewer than 5) become an extra seek key.
pub fn apply_script(script: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let flags = script.first().copied().unwrap_or(0);
    let fixture = FIXTURES[usize::from(flags & 1)];
    let page_size = if flags & 1 == 0 { 4096 } else { 1024 };
    apply_script_to(fixture, page_size, script)
}

/// [`apply_script`] on any seed file of `page_size`-byte pages (flag bit 0 is
/// then ignored: there is one seed).
pub fn apply_script_to(fixture: &[u8], page_size: usize, script: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let flags = script.first().copied().unwrap_or(0);
    let mut file = fixture.to_vec();
    let len = file.len();
    let pages = len / page_size;
    let mut keys = Vec::new();
    let mut last_off = len;
    let records = script.get(1..).unwrap_or(&[]);
    let mut chunks = records.chunks_exact(5);
    for r in &mut chunks {
        let (op, val) = (r[0], r[4]);
        let raw = usize::from(r[1]) | usize::from(r[2]) << 8 | usize::from(r[3]) << 16;
        let off = if op & 8 != 0 { (usize::from(r[3]) % pages) * page_size + usize::from(r[1]) } else { raw % len };
        last_off = off;
        match op & 7 {
            0..=2 => put(&mut file, off, &[val]),
            3 => {
                if let Some(b) = file.get_mut(off) {
                    *b ^= val;
                }
            }
            4 => put(&mut file, off, &u16::from(val).to_le_bytes()),
            5 => put(&mut file, off, &u32::from(val).to_le_bytes()),
            6 => put(&mut file, off, &u64::from(val).to_le_bytes()),
            _ => put(&mut file, off, &(u64::MAX - u64::from(val)).to_le_bytes()),
        }
        // The first records' bytes double as short seek keys.
        if keys.len() < 8 {
            keys.push(r[1..].to_vec());
        }
    }
    if !chunks.remainder().is_empty() && keys.len() < 8 {
        keys.push(chunks.remainder().to_vec());
    }
    if flags & 2 != 0 {
        fix_meta_checksum(&mut file, 0);
        fix_meta_checksum(&mut file, page_size);
    }
    if flags & 4 != 0 {
        file.truncate(last_off);
    }
    (file, keys)
}
