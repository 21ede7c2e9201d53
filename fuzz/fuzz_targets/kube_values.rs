//! Arbitrary bytes decoded as a value kube-apiserver stored (protobuf
//! envelope, JSON, encrypted prefix): decoding must never panic, and what
//! decodes as an object reports the input's length.
#![no_main]

use etcdsnap_keys::kube::{decode, KubeValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for v in [data.to_vec(), [b"k8s\0".as_slice(), data].concat()] {
        match decode(&v) {
            Some(KubeValue::Object(o)) => assert_eq!(o.size, v.len()),
            Some(KubeValue::Encrypted { size, .. }) => assert_eq!(size, v.len()),
            None => {}
        }
    }
});
