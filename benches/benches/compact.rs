//! Builder throughput: `compact::compact` of one bbolt file into a `Vec` (no I/O).
//!
//!     cargo bench -p etcdsnap-benches --bench compact
//!     ETCDSNAP_BENCH_FILE=/path/to/snapshot.db cargo bench -p etcdsnap-benches --bench compact
//!
//! Same input as the `scan` bench (`ETCDSNAP_BENCH_FILE`, else the generated
//! 200 000-key file in `target/bench-data/`). A snapshot's SHA-256 trailer is
//! cut off first (it lies past the high-water mark, so the builder never reads
//! it; hashing is not measured here). Throughput is the input size in bytes.
//! The output buffer is allocated once and reused, so the figures are the
//! walk plus the builder, without page faults of fresh memory or any I/O:
//!
//! * `walk+build`: `compact::compact` with the input's page size, fill 1.0;
//! * `walk+build fill 0.9`: as etcd's defrag fills pages;
//! * `walk only`: the same walk into a visitor that only touches the lengths,
//!   so `walk+build − walk only` is the builder's own cost.

// Criterion harness code: sizes and counts it made itself, not file input.
#![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::indexing_slicing)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::io::Cursor;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etcdsnap_benches::bench_file;
use etcdsnap_bolt::builder::BuildOptions;
use etcdsnap_bolt::walk::{walk, Visitor};
use etcdsnap_bolt::{BucketHeader, Db};
use etcdsnap_io::MappedFile;

/// Counts entries and bytes without reading them (the walk's own cost).
#[derive(Default)]
struct Lengths {
    entries: u64,
    bytes: u64,
}

impl<'a> Visitor<'a> for Lengths {
    fn enter_bucket(&mut self, _path: &[Vec<u8>], _header: BucketHeader) -> etcdsnap_bolt::Result<()> {
        self.entries += 1;
        Ok(())
    }

    fn value(&mut self, _path: &[Vec<u8>], key: &'a [u8], value: &'a [u8]) -> etcdsnap_bolt::Result<()> {
        self.entries += 1;
        self.bytes += (key.len() + value.len()) as u64;
        Ok(())
    }
}

/// One compaction into `buf` (cleared first, capacity kept); returns the bytes written.
fn compact_into(db: &Db<'_>, buf: &mut Vec<u8>, opts: BuildOptions) -> u64 {
    buf.clear();
    let mut out = Cursor::new(std::mem::take(buf));
    let summary = etcdsnap_bolt::compact::compact(db, &mut out, opts).unwrap();
    *buf = out.into_inner();
    summary.bytes
}

fn compact(c: &mut Criterion) {
    let path = bench_file().unwrap_or_else(|e| panic!("{e}"));
    let file = MappedFile::open(&path).expect("map the benchmark file");
    // etcd's trailer rule: size % 512 == 32 means 32 bytes of SHA-256 at the end.
    let image: &[u8] = if file.len() % 512 == 32 { &file[..file.len() - 32] } else { &file[..] };
    let len = image.len() as u64;
    let db = Db::open(image).expect("open");
    let opts = BuildOptions { page_size: db.page_size() as u32, ..BuildOptions::default() };

    // Sanity, once, before timing: the copy checks clean and keeps every key.
    let mut buf = Vec::with_capacity(image.len());
    let written = compact_into(&db, &mut buf, opts);
    {
        let copy = Db::open(&buf).expect("open the copy");
        let report = copy.check();
        assert!(report.is_ok(), "compacted copy has problems: {:?}", report.problems.first());
        let source = db.check();
        assert_eq!(report.stats.keys, source.stats.keys, "compaction lost keys");
        eprintln!(
            "{}: {len} bytes in, {written} bytes out, {} buckets, {} keys, page size {}",
            path.display(),
            report.stats.buckets,
            report.stats.keys,
            db.page_size()
        );
    }

    let mut g = c.benchmark_group("compact");
    g.throughput(Throughput::Bytes(len));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("walk+build", |b| b.iter(|| black_box(compact_into(&db, &mut buf, opts))));
    let defrag = BuildOptions { fill_percent: 0.9, ..opts };
    g.bench_function("walk+build fill 0.9", |b| b.iter(|| black_box(compact_into(&db, &mut buf, defrag))));
    g.bench_function("walk only", |b| {
        b.iter(|| {
            let mut l = Lengths::default();
            walk(&db, &mut l).unwrap();
            black_box((l.entries, l.bytes))
        })
    });
    g.finish();
}

criterion_group!(benches, compact);
criterion_main!(benches);
