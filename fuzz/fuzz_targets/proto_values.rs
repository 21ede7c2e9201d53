//! Arbitrary bytes decoded as each etcd message stored in db values (and in
//! WAL entries): decoding must never panic; what decodes re-encodes to bytes
//! that decode to the same message; for `mvccpb.KeyValue` our zero-copy
//! `KvRef` agrees with prost whenever both accept, and re-encodes identically.
#![no_main]

use etcdsnap_mvcc::kv::{encode_with_key, KvRef};
use etcdsnap_proto::{authpb, etcdserverpb, leasepb, mvccpb, raftpb, Message};
use libfuzzer_sys::fuzz_target;

fn roundtrip<M: Message + Default + PartialEq + std::fmt::Debug>(data: &[u8]) -> Option<M> {
    let m = M::decode(data).ok()?;
    let again = m.encode_to_vec();
    let m2 = M::decode(&again[..]).unwrap_or_else(|e| panic!("re-encoded {m:?} does not decode: {e}"));
    assert_eq!(m, m2, "decode(encode(m)) != m");
    assert_eq!(m2.encode_to_vec(), again, "encoding is not stable");
    Some(m)
}

fuzz_target!(|data: &[u8]| {
    let prost_kv = roundtrip::<mvccpb::KeyValue>(data);
    let ours = KvRef::parse(data);
    if let (Some(p), Ok(r)) = (&prost_kv, &ours) {
        assert_eq!(&r.to_owned(), p, "KvRef and prost disagree");
        let mut enc = Vec::new();
        encode_with_key(r, r.key, &mut enc);
        assert_eq!(enc, p.encode_to_vec(), "encode_with_key differs from prost's encoding");
        assert_eq!(KvRef::parse(&enc).map(|k| k.to_owned()).as_ref(), Ok(p));
    }
    roundtrip::<leasepb::Lease>(data);
    roundtrip::<authpb::User>(data);
    roundtrip::<authpb::Role>(data);
    roundtrip::<etcdserverpb::AlarmMember>(data);
    roundtrip::<etcdserverpb::InternalRaftRequest>(data);
    roundtrip::<raftpb::Entry>(data);
});
