//! The streaming builder against a model: the input is a program that builds a
//! random tree of nested buckets (a `BTreeMap` model), which is then fed in
//! sorted order to `etcdsnap_bolt::builder::Builder`, interleaved with
//! deliberately wrong calls that must fail without changing anything. The file
//! must check clean with no free page, read back equal to the model through
//! cursors and lookups, and compact (`compact::compact`) to the same bytes.
//!
//! Program format (every read past the end yields 0):
//!
//! * byte 0: bits 0-1 page size (1, 4, 16, 64 KiB), bit 2 no inline buckets,
//!   bits 3-7 txid − 1;
//! * byte 1: fill percent: 0..=250 maps to 0.1..=1.0; 251 NaN, 252 2.0, 253 −1.0,
//!   254 0.0, 255 1.0 (the builder clamps as bbolt does);
//! * then ops, `op % 10`: 0-2 put key/value in the current bucket (at the top
//!   level: open a bucket instead); 3 a run of sequential keys (multi-level
//!   trees); 4-5 open (or re-enter) a nested bucket; 6 close it; 7 schedule a
//!   wrong call (bytes `step`, `shift`, `kind`) before emission step
//!   `step << (shift % 4 * 3)`; 8 set the bucket's sequence; 9 a chain of
//!   empty nested buckets.
//!
//! Keys are mostly 1-8 bytes, sometimes up to 64, rarely up to 32768 (the
//! maximum); values 0-15 bytes, up to ~4 KiB, or a few pages sized around the
//! page boundary.
#![no_main]

use std::collections::BTreeMap;
use std::io::Cursor;
use std::ops::Bound;

use etcdsnap_bolt::builder::{BuildOptions, Builder};
use etcdsnap_bolt::{Bucket, Db};
use libfuzzer_sys::fuzz_target;

/// Keys in the whole model, so one input stays well under the 10 s timeout.
const MAX_KEYS: usize = 5_000;
/// Key and value bytes in the whole model.
const MAX_BYTES: usize = 3 << 20;
/// Keys longer than 64 bytes in the whole model.
const MAX_LARGE_KEYS: usize = 24;
/// Deepest bucket nesting the program builds (the checker follows 256).
const MAX_NESTING: usize = 48;
/// Wrong calls per input.
const MAX_MISUSES: usize = 64;

const PAGE_SIZES: [u32; 4] = [1024, 4096, 16384, 65536];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Value(Vec<u8>),
    Bucket(Model),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Model {
    sequence: u64,
    entries: BTreeMap<Vec<u8>, Node>,
}

impl Model {
    fn at_mut(&mut self, path: &[Vec<u8>]) -> &mut Model {
        let mut m = self;
        for name in path {
            m = match m.entries.get_mut(name) {
                Some(Node::Bucket(b)) => b,
                _ => unreachable!("the path only names buckets"),
            };
        }
        m
    }

    /// (buckets, keys) below this bucket.
    fn counts(&self) -> (u64, u64) {
        let (mut buckets, mut keys) = (0, 0);
        for n in self.entries.values() {
            match n {
                Node::Value(_) => keys += 1,
                Node::Bucket(b) => {
                    let (bb, kk) = b.counts();
                    buckets += 1 + bb;
                    keys += kk;
                }
            }
        }
        (buckets, keys)
    }
}

struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn done(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.byte();
        }
        u64::from_le_bytes(b)
    }
}

/// `len` bytes: the first few from the input, the rest a pattern seeded by them.
fn filler(inp: &mut Input<'_>, len: usize, from_input: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    for _ in 0..len.min(from_input) {
        v.push(inp.byte());
    }
    let mut x = u32::from(v.last().copied().unwrap_or(0x5a)) | 1;
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push(x as u8);
    }
    v
}

struct Gen {
    page_size: usize,
    keys: usize,
    bytes: usize,
    large_keys: usize,
}

impl Gen {
    fn key(&mut self, inp: &mut Input<'_>) -> Vec<u8> {
        let l = inp.byte();
        let len = match l {
            0..=199 => 1 + usize::from(l % 8),
            200..=249 => 9 + usize::from(inp.byte() % 56),
            _ if self.large_keys >= MAX_LARGE_KEYS => 1 + usize::from(l % 8),
            255 => 32768,
            _ => 1 + usize::from(inp.u16()) % 32768,
        };
        if len > 64 {
            self.large_keys += 1;
        }
        self.bytes += len;
        filler(inp, len, 8)
    }

    fn value(&mut self, inp: &mut Input<'_>, key_len: usize) -> Vec<u8> {
        let l = inp.byte();
        let len = match l {
            0..=159 => usize::from(l % 16),
            160..=239 => usize::from(inp.byte()) * 17,
            _ => {
                // 1-4 pages, near the size where header + element + key + value
                // fill whole pages exactly.
                let pages = 1 + usize::from(inp.byte() % 4);
                let delta = isize::from(inp.byte() as i8);
                let exact = pages * self.page_size - 32 - key_len.min(pages * self.page_size - 32);
                exact.saturating_add_signed(delta)
            }
        };
        if self.bytes + len > MAX_BYTES {
            return Vec::new();
        }
        self.bytes += len;
        filler(inp, len, 4)
    }

    fn full(&self) -> bool {
        self.keys >= MAX_KEYS || self.bytes >= MAX_BYTES
    }
}

/// Puts `key` = `value` into `m` unless `key` names a bucket there.
fn put(m: &mut Model, key: Vec<u8>, value: Vec<u8>, keys: &mut usize) {
    match m.entries.get(&key) {
        Some(Node::Bucket(_)) => {}
        Some(Node::Value(_)) => {
            m.entries.insert(key, Node::Value(value));
        }
        None => {
            *keys += 1;
            m.entries.insert(key, Node::Value(value));
        }
    }
}

/// Opens bucket `name` in `m` (creating it); false when `name` is a plain key.
fn open(m: &mut Model, name: &[u8]) -> bool {
    match m.entries.entry(name.to_vec()).or_insert_with(|| Node::Bucket(Model::default())) {
        Node::Bucket(_) => true,
        Node::Value(_) => false,
    }
}

/// A wrong call scheduled before emission step `step`.
#[derive(Debug, Clone, Copy)]
struct Misuse {
    step: u32,
    kind: u8,
}

fn build_model(inp: &mut Input<'_>, gen: &mut Gen, misuses: &mut Vec<Misuse>) -> Model {
    let mut root = Model::default();
    let mut path: Vec<Vec<u8>> = Vec::new();
    while !inp.done() && !gen.full() {
        let op = inp.byte() % 10;
        match op {
            0..=2 | 4 | 5 if path.is_empty() || op >= 4 => {
                let name = gen.key(inp);
                let sequence = if inp.byte() & 1 == 1 { inp.u64() } else { 0 };
                if path.len() < MAX_NESTING {
                    let m = root.at_mut(&path);
                    if open(m, &name) {
                        if let Some(Node::Bucket(b)) = m.entries.get_mut(&name) {
                            b.sequence = sequence;
                        }
                        path.push(name);
                    }
                }
            }
            0..=2 => {
                let key = gen.key(inp);
                let value = gen.value(inp, key.len());
                put(root.at_mut(&path), key, value, &mut gen.keys);
            }
            3 => {
                let n = 1 + usize::from(inp.byte()) * 4;
                let plen = 1 + usize::from(inp.byte() % 6);
                let prefix = filler(inp, plen, 6);
                let vlen = usize::from(inp.byte() % 64);
                let wide = inp.byte() & 1 == 1;
                if path.is_empty() {
                    continue;
                }
                let m = root.at_mut(&path);
                for i in 0..n.min(MAX_KEYS.saturating_sub(gen.keys)) {
                    let mut key = prefix.clone();
                    key.extend_from_slice(&(i as u32).to_be_bytes());
                    if wide {
                        key.resize(key.len() + 40, b'k');
                    }
                    let value = vec![(i as u8) ^ 0xa5; vlen];
                    gen.bytes += key.len() + value.len();
                    put(m, key, value, &mut gen.keys);
                }
            }
            6 => {
                path.pop();
            }
            7 => {
                // Steps mostly among the first 256 (inside buckets, where order
                // checks apply), sometimes far (up to ~130 000: the top level).
                let (step, shift, kind) = (u32::from(inp.byte()), inp.byte() % 4 * 3, inp.byte());
                let step = step << shift;
                if misuses.len() < MAX_MISUSES {
                    misuses.push(Misuse { step, kind });
                }
            }
            8 => {
                let s = inp.u64();
                if !path.is_empty() {
                    root.at_mut(&path).sequence = s;
                }
            }
            _ => {
                let depth = 1 + usize::from(inp.byte() % 8);
                let nlen = 1 + usize::from(inp.byte() % 4);
                let name = filler(inp, nlen, 4);
                let mut sub = path.clone();
                for _ in 0..depth {
                    if sub.len() >= MAX_NESTING || !open(root.at_mut(&sub), &name) {
                        break;
                    }
                    sub.push(name.clone());
                }
            }
        }
    }
    root
}

/// A key smaller than `k` (not necessarily non-empty).
fn smaller(k: &[u8]) -> Vec<u8> {
    let mut v = k.to_vec();
    match v.last_mut() {
        Some(b) if *b > 0 => *b -= 1,
        _ => {
            v.pop();
        }
    }
    v
}

struct Emitter<'w> {
    b: Builder<&'w mut Cursor<Vec<u8>>>,
    misuses: Vec<Misuse>,
    next: usize,
    step: u32,
}

impl Emitter<'_> {
    /// Runs the wrong calls due at this step; each must fail and change nothing.
    fn misuse(&mut self, at_root: bool, last: Option<&[u8]>) {
        while let Some(m) = self.misuses.get(self.next).copied() {
            if m.step > self.step {
                break;
            }
            self.next += 1;
            self.wrong_call(m.kind, at_root, last);
        }
        self.step = self.step.saturating_add(1);
    }

    fn wrong_call(&mut self, kind: u8, at_root: bool, last: Option<&[u8]>) {
        let last_or_empty = last.map(<[u8]>::to_vec).unwrap_or_default();
        let (what, r) = match kind % 8 {
            0 => ("duplicate put", self.b.put(&last_or_empty, b"dup")),
            1 => ("out-of-order put", self.b.put(&smaller(&last_or_empty), b"ooo")),
            2 => ("empty-key put", self.b.put(b"", b"empty")),
            3 if at_root => ("put in root", self.b.put(b"\xff\xff\xff\xff", b"root")),
            3 => ("empty bucket name", self.b.create_bucket(b"", 1)),
            4 if at_root => ("close with no open bucket", self.b.close_bucket()),
            4 | 5 => ("duplicate bucket", self.b.create_bucket(&last_or_empty, 2)),
            6 => ("key too large", self.b.put(&[0xffu8; 32769], b"big")),
            _ => ("out-of-order bucket", self.b.create_bucket(&smaller(&last_or_empty), 3)),
        };
        assert!(r.is_err(), "{what} (kind {kind}, at root {at_root}, last {last:?}) was accepted");
        if let Err(e) = r {
            std::hint::black_box(e.to_string());
        }
    }

    fn bucket(&mut self, m: &Model, at_root: bool) {
        let mut last: Option<&[u8]> = None;
        for (k, n) in &m.entries {
            self.misuse(at_root, last);
            match n {
                Node::Value(v) => self.b.put(k, v).unwrap_or_else(|e| panic!("put {k:?}: {e}")),
                Node::Bucket(c) => {
                    self.b.create_bucket(k, c.sequence).unwrap_or_else(|e| panic!("create_bucket {k:?}: {e}"));
                    self.bucket(c, false);
                    self.misuse(false, c.entries.keys().next_back().map(Vec::as_slice));
                    self.b.close_bucket().unwrap_or_else(|e| panic!("close_bucket {k:?}: {e}"));
                }
            }
            last = Some(k);
        }
        if at_root {
            // Whatever is left runs at the top level, after the last bucket.
            self.step = u32::MAX;
            self.misuse(true, last);
        }
    }
}

/// The model key after `k` in `m`.
fn model_next<'m>(m: &'m Model, k: &[u8]) -> Option<&'m [u8]> {
    m.entries.range::<[u8], _>((Bound::Excluded(k), Bound::Unbounded)).next().map(|(k, _)| k.as_slice())
}

fn compare(db: &Db<'_>, b: &Bucket<'_>, m: &Model, inline_allowed: bool) {
    let path = b.path().to_vec();
    assert_eq!(b.sequence(), m.sequence, "sequence of {path:?}");
    if !inline_allowed {
        assert!(!b.is_inline(), "{path:?} is inline with inline buckets off");
    }
    let entries: Vec<_> = b.cursor().map(|r| r.unwrap_or_else(|e| panic!("iterating {path:?}: {e}"))).collect();
    assert_eq!(entries.len(), m.entries.len(), "entry count of {path:?}");
    // first/next_entry agree with the iterator.
    let mut c = b.cursor();
    let mut e = c.first();
    for want in &entries {
        match e {
            Ok(Some(got)) => assert_eq!(got, *want, "first/next in {path:?}"),
            other => panic!("first/next in {path:?} gave {other:?}, want {want:?}"),
        }
        e = c.next_entry();
    }
    assert!(matches!(e, Ok(None)), "first/next in {path:?} went past the end: {e:?}");

    // Every key through Bucket::entry; get and seek on a spread of ~64 keys
    // (lookups dominate the run time under the sanitizers).
    let stride = (entries.len() / 64).max(1);
    for (i, (got, (k, n))) in entries.iter().zip(&m.entries).enumerate() {
        assert_eq!(got.key, k.as_slice(), "key order in {path:?}");
        let found = b.entry(k).unwrap_or_else(|e| panic!("entry {k:?} in {path:?}: {e}"));
        assert_eq!(found, Some(*got), "Bucket::entry({k:?}) in {path:?}");
        let sampled = i % stride == 0 || i + 1 == entries.len();
        if sampled {
            // Seeking just past the key lands on the model's next key.
            let mut after = k.clone();
            after.push(0);
            let mut c = b.cursor();
            let sought = c.seek(&after).unwrap_or_else(|e| panic!("seek in {path:?}: {e}"));
            assert_eq!(sought.map(|e| e.key), model_next(m, k), "seek past {k:?} in {path:?}");
        }
        match n {
            Node::Value(v) => {
                assert!(!got.is_bucket(), "{k:?} in {path:?} is a bucket, want a value");
                assert_eq!(got.value, v.as_slice(), "value of {k:?} in {path:?}");
                if sampled {
                    assert_eq!(b.get(k).ok().flatten(), Some(v.as_slice()), "get {k:?} in {path:?}");
                }
            }
            Node::Bucket(cm) => {
                assert!(got.is_bucket(), "{k:?} in {path:?} is a value, want a bucket");
                assert!(b.get(k).ok().flatten().is_none(), "get of bucket {k:?} in {path:?}");
                let child = b.child(*got).unwrap_or_else(|e| panic!("child {k:?} of {path:?}: {e}"));
                let mut full = path.clone();
                full.push(k.clone());
                assert!(matches!(db.bucket(&full), Ok(Some(_))), "Db::bucket({full:?})");
                compare(db, &child, cm, inline_allowed);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input { data, pos: 0 };
    let h = inp.byte();
    let page_size = PAGE_SIZES[usize::from(h & 3)];
    let inline_buckets = h & 4 == 0;
    let txid = 1 + u64::from(h >> 3);
    let fill_percent = match inp.byte() {
        251 => f64::NAN,
        252 => 2.0,
        253 => -1.0,
        254 => 0.0,
        255 => 1.0,
        f => 0.1 + 0.9 * f64::from(f) / 250.0,
    };
    let opts = BuildOptions { page_size, fill_percent, txid, inline_buckets };

    let mut gen = Gen { page_size: page_size as usize, keys: 0, bytes: 0, large_keys: 0 };
    let mut misuses = Vec::new();
    let model = build_model(&mut inp, &mut gen, &mut misuses);
    misuses.sort_by_key(|m| m.step);

    let mut out = Cursor::new(Vec::new());
    let b = Builder::new(&mut out, opts).unwrap_or_else(|e| panic!("Builder::new({opts:?}): {e}"));
    let mut em = Emitter { b, misuses, next: 0, step: 0 };
    em.bucket(&model, true);
    let summary = em.b.finish().unwrap_or_else(|e| panic!("finish: {e}"));
    let file = out.into_inner();

    let (buckets, keys) = model.counts();
    assert_eq!((summary.buckets, summary.keys), (buckets, keys), "summary counts");
    assert_eq!(summary.bytes, file.len() as u64, "summary bytes vs. file length");
    assert_eq!(summary.meta.txid, txid);

    let db = Db::open(&file).unwrap_or_else(|e| panic!("Db::open: {e}"));
    assert_eq!(db.page_size(), page_size as usize);
    let report = db.check();
    assert!(report.is_ok(), "check found {} problems, first: {:?}", report.problem_count, report.problems.first());
    assert_eq!(report.stats.free_pages, 0, "free pages in a built file");
    assert_eq!((report.stats.buckets, report.stats.keys), (buckets, keys), "check counts");
    if !inline_buckets {
        assert_eq!(report.stats.inline_buckets, 0, "inline buckets with inline buckets off");
    }
    let root = db.root().unwrap_or_else(|e| panic!("root: {e}"));
    compare(&db, &root, &model, inline_buckets);

    // Compacting the built file with the same options rebuilds it byte for byte.
    let mut again = Cursor::new(Vec::new());
    let s2 = etcdsnap_bolt::compact::compact(&db, &mut again, opts).unwrap_or_else(|e| panic!("compact: {e}"));
    assert_eq!(s2, summary, "compact summary");
    assert!(again.into_inner() == file, "compact of a built file is not byte-identical");
});
