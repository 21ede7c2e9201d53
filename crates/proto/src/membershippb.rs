//! `membershippb` (`api/membershippb/membership.proto`, proto3, 3.5+): membership raft requests.

/// `membershippb.RaftAttributes`: raft-related attributes of a member.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RaftAttributes {
    /// `peer_urls` (1).
    #[prost(string, repeated, tag = "1")]
    pub peer_urls: Vec<String>,
    /// `is_learner` (2).
    #[prost(bool, tag = "2")]
    pub is_learner: bool,
}

/// `membershippb.Attributes`: non-raft attributes of a member.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Attributes {
    /// `name` (1).
    #[prost(string, tag = "1")]
    pub name: String,
    /// `client_urls` (2).
    #[prost(string, repeated, tag = "2")]
    pub client_urls: Vec<String>,
}

/// `membershippb.Member`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Member {
    /// `ID` (1).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// `raft_attributes` (2).
    #[prost(message, optional, tag = "2")]
    pub raft_attributes: Option<RaftAttributes>,
    /// `member_attributes` (3).
    #[prost(message, optional, tag = "3")]
    pub member_attributes: Option<Attributes>,
}

/// `membershippb.ClusterVersionSetRequest` (InternalRaftRequest field 1300).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClusterVersionSetRequest {
    /// `ver` (1): the cluster version, e.g. `3.5.0`.
    #[prost(string, tag = "1")]
    pub ver: String,
}

/// `membershippb.ClusterMemberAttrSetRequest` (InternalRaftRequest field 1301).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ClusterMemberAttrSetRequest {
    /// `member_ID` (1).
    #[prost(uint64, tag = "1")]
    pub member_id: u64,
    /// `member_attributes` (2).
    #[prost(message, optional, tag = "2")]
    pub member_attributes: Option<Attributes>,
}

/// `membershippb.DowngradeInfoSetRequest` (InternalRaftRequest field 1302).
#[derive(Clone, PartialEq, prost::Message)]
pub struct DowngradeInfoSetRequest {
    /// `enabled` (1).
    #[prost(bool, tag = "1")]
    pub enabled: bool,
    /// `ver` (2): the downgrade target version.
    #[prost(string, tag = "2")]
    pub ver: String,
}
