//! `mvccpb` (`api/mvccpb/kv.proto`, proto3): the values of the backend `key` bucket.

/// `mvccpb.KeyValue`: one revision of a key, the value stored in the `key` bucket.
#[derive(Clone, PartialEq, prost::Message)]
pub struct KeyValue {
    /// `key` (1): the user key.
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// `create_revision` (2): revision of the last creation of this key.
    #[prost(int64, tag = "2")]
    pub create_revision: i64,
    /// `mod_revision` (3): revision of the last modification of this key.
    #[prost(int64, tag = "3")]
    pub mod_revision: i64,
    /// `version` (4): 1 on creation, incremented on each put; 0 for tombstones.
    #[prost(int64, tag = "4")]
    pub version: i64,
    /// `value` (5): the value bytes.
    #[prost(bytes = "vec", tag = "5")]
    pub value: Vec<u8>,
    /// `lease` (6): attached lease ID, 0 = none.
    #[prost(int64, tag = "6")]
    pub lease: i64,
}

/// `mvccpb.Event`: a watch event (not stored on disk).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// `type` (1): [`event::EventType`].
    #[prost(enumeration = "event::EventType", tag = "1")]
    pub r#type: i32,
    /// `kv` (2): the key-value after the event.
    #[prost(message, optional, tag = "2")]
    pub kv: Option<KeyValue>,
    /// `prev_kv` (3): the key-value before the event.
    #[prost(message, optional, tag = "3")]
    pub prev_kv: Option<KeyValue>,
}

/// Types nested in [`Event`].
pub mod event {
    /// `mvccpb.Event.EventType`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum EventType {
        /// `PUT` = 0.
        Put = 0,
        /// `DELETE` = 1.
        Delete = 1,
    }
}
