//! Full-scan and check throughput over one bbolt file.
//!
//!     cargo bench -p etcdsnap-benches --bench scan
//!     ETCDSNAP_BENCH_FILE=/path/to/snapshot.db cargo bench -p etcdsnap-benches --bench scan
//!
//! Without `ETCDSNAP_BENCH_FILE`, a 200 000-key file is generated once with the
//! Go oracle into `target/bench-data/`. Throughput is the file size in bytes.

// Criterion harness code: sizes and counts it made itself, not file input.
#![allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::indexing_slicing)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etcdsnap_benches::{bench_file, full_scan};
use etcdsnap_bolt::Db;
use etcdsnap_io::MappedFile;

fn scan(c: &mut Criterion) {
    let path = bench_file().unwrap_or_else(|e| panic!("{e}"));
    let file = MappedFile::open(&path).expect("map the benchmark file");
    let len = file.len() as u64;

    // Sanity: the file opens, scans and checks clean, once, before timing.
    let db = Db::open(&file).expect("open");
    let stats = full_scan(&db).expect("scan");
    let report = db.check();
    assert!(report.is_ok(), "{} has problems: {:?}", path.display(), report.problems.first());
    eprintln!(
        "{}: {len} bytes, {} buckets, {} keys, page size {}",
        path.display(),
        stats.buckets,
        stats.keys,
        db.page_size()
    );

    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Bytes(len));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(10));
    g.bench_function("open+full_scan", |b| {
        b.iter(|| {
            let db = Db::open(black_box(&file)).unwrap();
            black_box(full_scan(&db).unwrap())
        })
    });
    g.bench_function("check", |b| {
        let db = Db::open(&file).unwrap();
        b.iter(|| black_box(db.check().problem_count))
    });
    g.bench_function("open+full_scan+check", |b| {
        b.iter(|| {
            let db = Db::open(black_box(&file)).unwrap();
            let s = full_scan(&db).unwrap();
            black_box((s, db.check().problem_count))
        })
    });
    g.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
