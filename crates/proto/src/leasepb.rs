//! `leasepb` (`server/lease/leasepb/lease.proto`, proto3): the values of the backend `lease` bucket.

use crate::etcdserverpb::{LeaseTimeToLiveRequest, LeaseTimeToLiveResponse};

/// `leasepb.Lease`: a persisted lease.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Lease {
    /// `ID` (1): the lease ID.
    #[prost(int64, tag = "1")]
    pub id: i64,
    /// `TTL` (2): granted time-to-live in seconds.
    #[prost(int64, tag = "2")]
    pub ttl: i64,
    /// `RemainingTTL` (3): checkpointed remaining TTL (3.4+), 0 if none.
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
}

/// `leasepb.LeaseInternalRequest`: peer-to-peer lease TTL query.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseInternalRequest {
    /// `LeaseTimeToLiveRequest` (1).
    #[prost(message, optional, tag = "1")]
    pub lease_time_to_live_request: Option<LeaseTimeToLiveRequest>,
}

/// `leasepb.LeaseInternalResponse`: answer to [`LeaseInternalRequest`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseInternalResponse {
    /// `LeaseTimeToLiveResponse` (1).
    #[prost(message, optional, tag = "1")]
    pub lease_time_to_live_response: Option<LeaseTimeToLiveResponse>,
}
