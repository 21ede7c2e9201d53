//! etcd's `HashKV`: CRC-32C over the `key` bucket as a compaction at the
//! compact revision would leave it, up to a revision.
//!
//! One pass, memory per key rather than per revision: [`KvHasher`] keeps the
//! running CRC of every entry at or below the compact revision and, per key,
//! where its latest such entry starts and ends in that running CRC. Whether an
//! entry is kept is only known once the compact revision is passed, so the
//! kept entries' CRCs are cut out of the running one then (CRC is linear:
//! `crc(A‖B) = shift(crc(A), |B|) ⊕ crc(B)`) and chained in revision order.

use etcdsnap_bolt::Db;

use crate::error::{MvccError, Result};
use crate::kv::KvRef;
use crate::revision::BucketKey;
use crate::schema::{read_meta, KEY};

/// How a tombstone stored at exactly the compact revision is hashed, and
/// whether the compact revision itself may be hashed.
///
/// etcd v3.5.16 / v3.4.34 and later keep such tombstones on disk when
/// compacting, and skip them when hashing so that old and new members agree
/// (etcd PRs #18274, #18474, #18475). Earlier releases hash them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TombstoneRule {
    /// Skip them, and hash at the compact revision on request: etcd ≥ 3.5.16,
    /// ≥ 3.4.34, 3.6 and 3.7 (the second part seen on 3.5.35, 3.6.16, 3.7.3).
    #[default]
    Skip,
    /// Hash them, and refuse the compact revision itself: etcd ≤ 3.5.15,
    /// ≤ 3.4.33 (both parts seen on 3.4.23 and 3.5.1).
    Include,
}

/// etcd's `KeyValueHash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyValueHash {
    /// The hash (`hash`).
    pub hash: u32,
    /// The compact revision in effect (`compact_revision`).
    pub compact_revision: i64,
    /// The revision hashed up to (`hash_revision`).
    pub revision: i64,
    /// The current revision of the store (`header.revision`).
    pub current_revision: i64,
}

/// Computes `HashKV` at `rev` (0: the current revision) as an etcd started on
/// this file would answer it, in one pass over the `key` bucket.
pub fn hash_kv(db: &Db<'_>, rev: i64, rule: TombstoneRule) -> Result<KeyValueHash> {
    let compact = read_meta(db)?.compact_rev();
    let bucket = db.bucket(&[KEY])?;
    let last = match &bucket {
        Some(b) => b.cursor().last_entry()?.map_or(0, |e| BucketKey::lenient_main(e.key)),
        None => 0,
    };
    // etcd raises the current revision to at least the compact revision (#17780).
    let current = last.max(compact);
    // etcd 3.5.35, 3.6 and 3.7's hashByRev refuse `rev < compactRev`; 3.4.23
    // and 3.5.1 (the releases that also hash the tombstone at the compact
    // revision) refuse `rev <= compactRev`, the compact revision itself.
    if rev > 0 && (rev < compact || (rule == TombstoneRule::Include && rev == compact)) {
        return Err(MvccError::Compacted { rev, compact });
    }
    if rev > current {
        return Err(MvccError::FutureRev { rev, current });
    }
    let rev = if rev == 0 { current } else { rev };
    let mut h = KvHasher::new(compact, rule);
    if let Some(b) = bucket {
        for e in b.cursor() {
            let e = e?;
            let bk = BucketKey::parse(e.key).map_err(|err| MvccError::value(KEY, e.key, err.to_string()))?;
            if bk.rev.main > rev {
                break; // keys are in revision order
            }
            h.add(e.key, e.value)?;
        }
    }
    Ok(KeyValueHash { hash: h.finish(), compact_revision: compact, revision: rev, current_revision: current })
}

/// A live key's latest entry so far (a put): when it lies at or below the
/// compact revision, where it sits in the running CRC (the CRC
/// before and after it, its length) and its ordinal.
#[derive(Debug, Clone, Copy)]
struct Latest {
    ordinal: u64,
    before: u32,
    after: u32,
    len: u32,
    /// At or below the compact revision.
    prefix: bool,
}

/// etcd's `HashKV` over `key`-bucket entries fed in bucket (revision) order,
/// for a store compacted at `compact`; the caller stops feeding above the
/// revision hashed. Memory per live key: a 40-byte record and a 4-byte slot
/// (plus slot-table slack); nothing per revision, and nothing for a deleted
/// key.
#[derive(Debug)]
pub struct KvHasher {
    compact: i64,
    rule: TombstoneRule,
    keys: crate::keytable::KeyHasher,
    /// Each live key's latest entry (a tombstone removes the key).
    latest: crate::keytable::KeyTable<Latest>,
    /// CRC of `key` (the bucket name) and every hashed entry so far.
    crc: u32,
    /// `crc` when the first entry above `compact` came (`None`: not yet).
    prefix_end: Option<u32>,
    /// Bytes hashed above `compact`.
    suffix_len: u64,
    ordinal: u64,
    /// The bucket's whole stream — its name, every entry added, hashed or
    /// not, and the bytes [`pass`](Self::pass)ed — as `snapshot status`
    /// hashes it: its CRC is `shift(whole_sync ⊕ crc_sync, since) ⊕ crc`,
    /// where `whole_sync` and `crc_sync` are the two CRCs when an entry was
    /// last left out of `crc`, and `since` the bytes hashed after it. Until
    /// then both are the name's CRC and the stream's CRC is `crc` itself.
    whole_sync: u32,
    crc_sync: u32,
    since: u64,
    whole_len: u64,
}

impl KvHasher {
    /// A hasher for a store compacted at `compact` (0: never).
    pub fn new(compact: i64, rule: TombstoneRule) -> Self {
        Self {
            compact,
            rule,
            keys: crate::keytable::KeyHasher::new(),
            latest: crate::keytable::KeyTable::new(),
            crc: etcdsnap_proto::crc32c::checksum(KEY),
            prefix_end: None,
            suffix_len: 0,
            ordinal: 0,
            whole_sync: etcdsnap_proto::crc32c::checksum(KEY),
            crc_sync: etcdsnap_proto::crc32c::checksum(KEY),
            since: 0,
            whole_len: KEY.len() as u64,
        }
    }

    /// Bytes of the bucket's stream that HashKV does not hash (a nested
    /// bucket's name, which `snapshot status` hashes), in their place.
    pub fn pass(&mut self, bytes: &[u8]) {
        self.leave_out(&[bytes]);
    }

    /// `parts` are in the stream, not in the hash.
    fn leave_out(&mut self, parts: &[&[u8]]) {
        let mut whole = self.stream_crc().0;
        for p in parts {
            whole = etcdsnap_proto::crc32c::append(whole, p);
            self.whole_len = self.whole_len.saturating_add(p.len() as u64);
        }
        self.whole_sync = whole;
        self.crc_sync = self.crc;
        self.since = 0;
    }

    /// `len` bytes hashed, in the stream too.
    fn hashed(&mut self, len: u64) {
        self.since = self.since.saturating_add(len);
        self.whole_len = self.whole_len.saturating_add(len);
    }

    /// CRC-32C and length of the bucket's stream so far: the name `key`,
    /// then every entry added (bucket key, value) and every byte passed, as
    /// etcdutl's `snapshot status` hash takes in the `key` bucket. A caller
    /// that also wants that hash need not run the CRC over the bucket twice.
    pub fn stream_crc(&self) -> (u32, u64) {
        let whole = if self.whole_sync == self.crc_sync {
            self.crc
        } else {
            shift(self.whole_sync ^ self.crc_sync, self.since) ^ self.crc
        };
        (whole, self.whole_len)
    }

    /// Adds one entry of the `key` bucket (bucket key, value), in bucket order.
    pub fn add(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let bk = BucketKey::parse(key).map_err(|err| MvccError::value(KEY, key, err.to_string()))?;
        let kv = KvRef::parse(value).map_err(|err| MvccError::value(KEY, key, err.to_string()))?;
        self.ordinal = self.ordinal.saturating_add(1);
        let id = self.keys.hash(kv.key);
        let put = !bk.tombstone;
        if bk.rev.main > self.compact {
            if self.prefix_end.is_none() {
                self.prefix_end = Some(self.crc);
            }
            self.crc = etcdsnap_proto::crc32c::append(etcdsnap_proto::crc32c::append(self.crc, key), value);
            self.suffix_len = self.suffix_len.saturating_add(entry_len(key, value));
            self.hashed(entry_len(key, value));
            // A later revision of the key: none of its entries at or below the
            // compact revision is kept any more.
            self.record(
                key,
                id,
                put.then_some(Latest { ordinal: self.ordinal, before: 0, after: 0, len: 0, prefix: false }),
            )?;
            return Ok(());
        }
        let before = self.crc;
        // A tombstone is never kept; one at exactly the compact revision is
        // not hashed either under the newer rule, even when nothing is kept.
        let skipped = self.rule == TombstoneRule::Skip && bk.tombstone && bk.rev.main == self.compact;
        if skipped {
            self.leave_out(&[key, value]);
        } else {
            self.crc = etcdsnap_proto::crc32c::append(etcdsnap_proto::crc32c::append(self.crc, key), value);
            self.hashed(entry_len(key, value));
        }
        let len = u32::try_from(entry_len(key, value))
            .map_err(|_| MvccError::value(KEY, key, "entry longer than 4 GiB".into()))?;
        self.record(
            key,
            id,
            put.then_some(Latest { ordinal: self.ordinal, before, after: self.crc, len, prefix: true }),
        )
    }

    /// Records a key's latest entry: `Some` for a put, `None` for a tombstone.
    fn record(&mut self, key: &[u8], id: crate::keytable::KeyId, l: Option<Latest>) -> Result<()> {
        if let Some(l) = l {
            self.latest.insert(id, l).map_err(|e| MvccError::value(KEY, key, e.to_string()))?;
        } else {
            // A tombstone: no entry of the key up to here is kept, and the key
            // is not live; no record says the same.
            self.latest.remove(&id);
        }
        Ok(())
    }

    /// Keys whose latest revision added is a put, and whether the empty key
    /// (the revision markers') is one of them: `snapshot status`'s live keys.
    pub fn live(&self) -> (u64, bool) {
        (self.latest.len() as u64, self.latest.get(&self.keys.hash(b"")).is_some())
    }

    /// The hash of everything added.
    pub fn finish(self) -> u32 {
        let prefix_end = self.prefix_end.unwrap_or(self.crc);
        // etcd's `Keep(rev)`: per key, its latest revision up to the one
        // hashed, when that is a put. Entries at or below the compact revision
        // are hashed only when kept, unless nothing is kept at all.
        if self.latest.is_empty() {
            return self.crc;
        }
        // The records at or below the compact revision, freed chunk by chunk
        // as they are copied.
        let mut kept = Vec::with_capacity(self.latest.len());
        kept.extend(self.latest.into_values().filter(|l| l.prefix));
        kept.sort_unstable_by_key(|l| l.ordinal);
        // Chain the kept entries: crc(T‖E) = shift(T ⊕ before, |E|) ⊕ after,
        // since after = shift(before, |E|) ⊕ crc(E).
        let mut t = etcdsnap_proto::crc32c::checksum(KEY);
        for l in kept.iter() {
            t = shift(t ^ l.before, u64::from(l.len)) ^ l.after;
        }
        // Then everything above the compact revision, likewise.
        shift(t ^ prefix_end, self.suffix_len) ^ self.crc
    }
}

fn entry_len(key: &[u8], value: &[u8]) -> u64 {
    (key.len() as u64).saturating_add(value.len() as u64)
}

/// The CRC-32C register `v` advanced over `n` zero bytes without the pre- and
/// post-inversion (multiplication by x^(8n) modulo the polynomial): the
/// operator of CRC's linearity, `crc(A‖B) = shift(crc(A), |B|) ⊕ crc(B)`.
fn shift(v: u32, n: u64) -> u32 {
    const SHORT: usize = 1 << 14;
    // The hardware CRC over zeros is fastest for what entries are.
    static ZEROS: [u8; SHORT] = [0; SHORT];
    if let Some(z) = usize::try_from(n).ok().and_then(|n| ZEROS.get(..n)) {
        !etcdsnap_proto::crc32c::append(!v, z)
    } else {
        mul(x_pow_8n(n), v)
    }
}

/// Reflected CRC-32C polynomial.
const POLY: u32 = 0x82F6_3B78;

/// a·b modulo the polynomial, both reflected (bit 31 is x^0).
fn mul(a: u32, mut b: u32) -> u32 {
    let mut p = 0u32;
    let mut m = 1u32 << 31;
    while m != 0 {
        if a & m != 0 {
            p ^= b;
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    p
}

/// x^(8n) modulo the polynomial, by squaring.
fn x_pow_8n(n: u64) -> u32 {
    let mut p = 1u32 << 31; // x^0
    let mut sq = 1u32 << 23; // x^8
    let mut n = n;
    while n != 0 {
        if n & 1 != 0 {
            p = mul(sq, p);
        }
        sq = mul(sq, sq);
        n >>= 1;
    }
    p
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
mod tests {
    use super::*;

    #[test]
    fn shift_is_crc_linearity() {
        let a: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        for n in [0usize, 1, 7, 300, 16384, 16385, 40000] {
            let b: Vec<u8> = (0..n).map(|i| (i * 13 % 253) as u8).collect();
            let whole = etcdsnap_proto::crc32c::append(etcdsnap_proto::crc32c::checksum(&a), &b);
            assert_eq!(
                shift(etcdsnap_proto::crc32c::checksum(&a), n as u64) ^ etcdsnap_proto::crc32c::checksum(&b),
                whole,
                "n = {n}"
            );
            assert_eq!(mul(x_pow_8n(n as u64), 0x1234_5678), shift(0x1234_5678, n as u64), "n = {n}");
        }
    }

    /// One `key`-bucket entry: (bucket key, value).
    fn entry(main: i64, key: &[u8], tombstone: bool, value: &[u8]) -> (Vec<u8>, Vec<u8>) {
        use etcdsnap_proto::Message;
        let mut at = crate::revision::Revision::new(main, 0).to_bytes().to_vec();
        let kv = if tombstone {
            at.push(b't');
            etcdsnap_proto::mvccpb::KeyValue { key: key.to_vec(), ..Default::default() }
        } else {
            etcdsnap_proto::mvccpb::KeyValue {
                key: key.to_vec(),
                create_revision: main,
                mod_revision: main,
                version: 1,
                value: value.to_vec(),
                lease: 0,
            }
        };
        (at, kv.encode_to_vec())
    }

    #[test]
    fn stream_crc_is_every_byte_in_order_hashed_or_not() {
        // Tombstones at the compact revision (4) are left out of the hash
        // under the newer rule, and a passed name never is in it: the stream
        // has all of them. Cases: none left out, one, several apart, and one
        // as the very last entry.
        let cases: [&[(i64, bool)]; 4] = [
            &[(2, false), (3, false), (5, false)],
            &[(2, false), (4, true), (5, false), (6, false)],
            &[(4, true), (5, false), (4, true), (6, false), (7, false)],
            &[(2, false), (3, false), (4, true)],
        ];
        for (n, case) in cases.iter().enumerate() {
            for rule in [TombstoneRule::Skip, TombstoneRule::Include] {
                let mut h = KvHasher::new(4, rule);
                let mut stream = KEY.to_vec();
                for (i, &(main, tomb)) in case.iter().enumerate() {
                    let value = vec![u8::try_from(i).unwrap(); 100 * i];
                    let (k, v) = entry(main, format!("/k{}", i % 2).as_bytes(), tomb, &value);
                    h.add(&k, &v).unwrap();
                    stream.extend_from_slice(&k);
                    stream.extend_from_slice(&v);
                    if i == 1 {
                        h.pass(b"nested");
                        stream.extend_from_slice(b"nested");
                    }
                }
                let want = (etcdsnap_proto::crc32c::checksum(&stream), stream.len() as u64);
                assert_eq!(h.stream_crc(), want, "case {n}, {rule:?}");
            }
        }
    }
}
