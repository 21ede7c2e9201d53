//! `etcdserverpb` (`api/etcdserverpb/{raft_internal,rpc,etcdserver}.proto`): raft requests.
//!
//! `raft_internal.proto` and `rpc.proto` are proto3; `etcdserver.proto`
//! ([`Metadata`] and the v2 [`Request`]) is proto2 with gogo non-nullable fields.

use crate::authpb;
use crate::membershippb;
use crate::mvccpb::KeyValue;

// ---------------------------------------------------------------- etcdserver.proto (proto2)

/// `etcdserverpb.Metadata` (proto2): the WAL metadata record payload.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    /// `NodeID` (1): always emitted.
    #[prost(uint64, required, tag = "1")]
    pub node_id: u64,
    /// `ClusterID` (2): always emitted.
    #[prost(uint64, required, tag = "2")]
    pub cluster_id: u64,
}

/// `etcdserverpb.Request` (proto2, ≤3.6): a v2 store request (`InternalRaftRequest.v2`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Request {
    /// `ID` (1): always emitted.
    #[prost(uint64, required, tag = "1")]
    pub id: u64,
    /// `Method` (2): always emitted.
    #[prost(string, required, tag = "2")]
    pub method: String,
    /// `Path` (3): always emitted.
    #[prost(string, required, tag = "3")]
    pub path: String,
    /// `Val` (4): always emitted.
    #[prost(string, required, tag = "4")]
    pub val: String,
    /// `Dir` (5): always emitted.
    #[prost(bool, required, tag = "5")]
    pub dir: bool,
    /// `PrevValue` (6): always emitted.
    #[prost(string, required, tag = "6")]
    pub prev_value: String,
    /// `PrevIndex` (7): always emitted.
    #[prost(uint64, required, tag = "7")]
    pub prev_index: u64,
    /// `PrevExist` (8): nullable, emitted when set.
    #[prost(bool, optional, tag = "8")]
    pub prev_exist: Option<bool>,
    /// `Expiration` (9): always emitted.
    #[prost(int64, required, tag = "9")]
    pub expiration: i64,
    /// `Wait` (10): always emitted.
    #[prost(bool, required, tag = "10")]
    pub wait: bool,
    /// `Since` (11): always emitted.
    #[prost(uint64, required, tag = "11")]
    pub since: u64,
    /// `Recursive` (12): always emitted.
    #[prost(bool, required, tag = "12")]
    pub recursive: bool,
    /// `Sorted` (13): always emitted.
    #[prost(bool, required, tag = "13")]
    pub sorted: bool,
    /// `Quorum` (14): always emitted.
    #[prost(bool, required, tag = "14")]
    pub quorum: bool,
    /// `Time` (15): always emitted.
    #[prost(int64, required, tag = "15")]
    pub time: i64,
    /// `Stream` (16): always emitted.
    #[prost(bool, required, tag = "16")]
    pub stream: bool,
    /// `Refresh` (17): nullable, emitted when set.
    #[prost(bool, optional, tag = "17")]
    pub refresh: Option<bool>,
}

// ---------------------------------------------------------------- raft_internal.proto

/// `etcdserverpb.RequestHeader`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestHeader {
    /// `ID` (1): request ID.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// `username` (2): user of the auth token.
    #[prost(string, tag = "2")]
    pub username: String,
    /// `auth_revision` (3): auth store revision (3.1+).
    #[prost(uint64, tag = "3")]
    pub auth_revision: u64,
    /// `requester_member_id` (4): 3.7+ only.
    #[prost(uint64, tag = "4")]
    pub requester_member_id: u64,
}

/// `etcdserverpb.InternalRaftRequest`: the data of a normal raft entry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InternalRaftRequest {
    /// `ID` (1).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// `v2` (2): v2 store request (≤3.6; reserved in 3.7+).
    #[prost(message, optional, tag = "2")]
    pub v2: Option<Request>,
    /// `range` (3).
    #[prost(message, optional, tag = "3")]
    pub range: Option<RangeRequest>,
    /// `put` (4).
    #[prost(message, optional, tag = "4")]
    pub put: Option<PutRequest>,
    /// `delete_range` (5).
    #[prost(message, optional, tag = "5")]
    pub delete_range: Option<DeleteRangeRequest>,
    /// `txn` (6).
    #[prost(message, optional, tag = "6")]
    pub txn: Option<TxnRequest>,
    /// `compaction` (7).
    #[prost(message, optional, tag = "7")]
    pub compaction: Option<CompactionRequest>,
    /// `lease_grant` (8).
    #[prost(message, optional, tag = "8")]
    pub lease_grant: Option<LeaseGrantRequest>,
    /// `lease_revoke` (9).
    #[prost(message, optional, tag = "9")]
    pub lease_revoke: Option<LeaseRevokeRequest>,
    /// `alarm` (10).
    #[prost(message, optional, tag = "10")]
    pub alarm: Option<AlarmRequest>,
    /// `lease_checkpoint` (11): 3.4+.
    #[prost(message, optional, tag = "11")]
    pub lease_checkpoint: Option<LeaseCheckpointRequest>,
    /// `header` (100).
    #[prost(message, optional, tag = "100")]
    pub header: Option<RequestHeader>,
    /// `auth_enable` (1000).
    #[prost(message, optional, tag = "1000")]
    pub auth_enable: Option<AuthEnableRequest>,
    /// `auth_disable` (1011).
    #[prost(message, optional, tag = "1011")]
    pub auth_disable: Option<AuthDisableRequest>,
    /// `authenticate` (1012).
    #[prost(message, optional, tag = "1012")]
    pub authenticate: Option<InternalAuthenticateRequest>,
    /// `auth_status` (1013): 3.5+.
    #[prost(message, optional, tag = "1013")]
    pub auth_status: Option<AuthStatusRequest>,
    /// `auth_user_add` (1100).
    #[prost(message, optional, tag = "1100")]
    pub auth_user_add: Option<AuthUserAddRequest>,
    /// `auth_user_delete` (1101).
    #[prost(message, optional, tag = "1101")]
    pub auth_user_delete: Option<AuthUserDeleteRequest>,
    /// `auth_user_get` (1102).
    #[prost(message, optional, tag = "1102")]
    pub auth_user_get: Option<AuthUserGetRequest>,
    /// `auth_user_change_password` (1103).
    #[prost(message, optional, tag = "1103")]
    pub auth_user_change_password: Option<AuthUserChangePasswordRequest>,
    /// `auth_user_grant_role` (1104).
    #[prost(message, optional, tag = "1104")]
    pub auth_user_grant_role: Option<AuthUserGrantRoleRequest>,
    /// `auth_user_revoke_role` (1105).
    #[prost(message, optional, tag = "1105")]
    pub auth_user_revoke_role: Option<AuthUserRevokeRoleRequest>,
    /// `auth_user_list` (1106).
    #[prost(message, optional, tag = "1106")]
    pub auth_user_list: Option<AuthUserListRequest>,
    /// `auth_role_list` (1107).
    #[prost(message, optional, tag = "1107")]
    pub auth_role_list: Option<AuthRoleListRequest>,
    /// `auth_role_add` (1200).
    #[prost(message, optional, tag = "1200")]
    pub auth_role_add: Option<AuthRoleAddRequest>,
    /// `auth_role_delete` (1201).
    #[prost(message, optional, tag = "1201")]
    pub auth_role_delete: Option<AuthRoleDeleteRequest>,
    /// `auth_role_get` (1202).
    #[prost(message, optional, tag = "1202")]
    pub auth_role_get: Option<AuthRoleGetRequest>,
    /// `auth_role_grant_permission` (1203).
    #[prost(message, optional, tag = "1203")]
    pub auth_role_grant_permission: Option<AuthRoleGrantPermissionRequest>,
    /// `auth_role_revoke_permission` (1204).
    #[prost(message, optional, tag = "1204")]
    pub auth_role_revoke_permission: Option<AuthRoleRevokePermissionRequest>,
    /// `cluster_version_set` (1300): 3.5+.
    #[prost(message, optional, tag = "1300")]
    pub cluster_version_set: Option<membershippb::ClusterVersionSetRequest>,
    /// `cluster_member_attr_set` (1301): 3.5+.
    #[prost(message, optional, tag = "1301")]
    pub cluster_member_attr_set: Option<membershippb::ClusterMemberAttrSetRequest>,
    /// `downgrade_info_set` (1302): 3.5+.
    #[prost(message, optional, tag = "1302")]
    pub downgrade_info_set: Option<membershippb::DowngradeInfoSetRequest>,
    /// `downgrade_version_test` (9900): 3.6+, tests only.
    #[prost(message, optional, tag = "9900")]
    pub downgrade_version_test: Option<DowngradeVersionTestRequest>,
}

/// `etcdserverpb.EmptyResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EmptyResponse {}

/// `etcdserverpb.InternalAuthenticateRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct InternalAuthenticateRequest {
    /// `name` (1).
    #[prost(string, tag = "1")]
    pub name: String,
    /// `password` (2).
    #[prost(string, tag = "2")]
    pub password: String,
    /// `simple_token` (3): generated by the API layer.
    #[prost(string, tag = "3")]
    pub simple_token: String,
}

// ---------------------------------------------------------------- rpc.proto: KV

/// `etcdserverpb.ResponseHeader`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ResponseHeader {
    /// `cluster_id` (1).
    #[prost(uint64, tag = "1")]
    pub cluster_id: u64,
    /// `member_id` (2).
    #[prost(uint64, tag = "2")]
    pub member_id: u64,
    /// `revision` (3).
    #[prost(int64, tag = "3")]
    pub revision: i64,
    /// `raft_term` (4).
    #[prost(uint64, tag = "4")]
    pub raft_term: u64,
}

/// `etcdserverpb.RangeRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeRequest {
    /// `key` (1).
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// `range_end` (2).
    #[prost(bytes = "vec", tag = "2")]
    pub range_end: Vec<u8>,
    /// `limit` (3).
    #[prost(int64, tag = "3")]
    pub limit: i64,
    /// `revision` (4).
    #[prost(int64, tag = "4")]
    pub revision: i64,
    /// `sort_order` (5): [`range_request::SortOrder`].
    #[prost(enumeration = "range_request::SortOrder", tag = "5")]
    pub sort_order: i32,
    /// `sort_target` (6): [`range_request::SortTarget`].
    #[prost(enumeration = "range_request::SortTarget", tag = "6")]
    pub sort_target: i32,
    /// `serializable` (7).
    #[prost(bool, tag = "7")]
    pub serializable: bool,
    /// `keys_only` (8).
    #[prost(bool, tag = "8")]
    pub keys_only: bool,
    /// `count_only` (9).
    #[prost(bool, tag = "9")]
    pub count_only: bool,
    /// `min_mod_revision` (10).
    #[prost(int64, tag = "10")]
    pub min_mod_revision: i64,
    /// `max_mod_revision` (11).
    #[prost(int64, tag = "11")]
    pub max_mod_revision: i64,
    /// `min_create_revision` (12).
    #[prost(int64, tag = "12")]
    pub min_create_revision: i64,
    /// `max_create_revision` (13).
    #[prost(int64, tag = "13")]
    pub max_create_revision: i64,
}

/// Types nested in [`RangeRequest`].
pub mod range_request {
    /// `etcdserverpb.RangeRequest.SortOrder`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum SortOrder {
        /// `NONE` = 0.
        None = 0,
        /// `ASCEND` = 1.
        Ascend = 1,
        /// `DESCEND` = 2.
        Descend = 2,
    }

    /// `etcdserverpb.RangeRequest.SortTarget`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum SortTarget {
        /// `KEY` = 0.
        Key = 0,
        /// `VERSION` = 1.
        Version = 1,
        /// `CREATE` = 2.
        Create = 2,
        /// `MOD` = 3.
        Mod = 3,
        /// `VALUE` = 4.
        Value = 4,
    }
}

/// `etcdserverpb.PutRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PutRequest {
    /// `key` (1).
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// `value` (2).
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
    /// `lease` (3).
    #[prost(int64, tag = "3")]
    pub lease: i64,
    /// `prev_kv` (4).
    #[prost(bool, tag = "4")]
    pub prev_kv: bool,
    /// `ignore_value` (5).
    #[prost(bool, tag = "5")]
    pub ignore_value: bool,
    /// `ignore_lease` (6).
    #[prost(bool, tag = "6")]
    pub ignore_lease: bool,
}

/// `etcdserverpb.DeleteRangeRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeleteRangeRequest {
    /// `key` (1).
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// `range_end` (2).
    #[prost(bytes = "vec", tag = "2")]
    pub range_end: Vec<u8>,
    /// `prev_kv` (3).
    #[prost(bool, tag = "3")]
    pub prev_kv: bool,
}

/// `etcdserverpb.RequestOp`: one operation of a transaction.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RequestOp {
    /// `request` oneof (1–4).
    #[prost(oneof = "request_op::Request", tags = "1, 2, 3, 4")]
    pub request: Option<request_op::Request>,
}

/// Types nested in [`RequestOp`].
pub mod request_op {
    /// `etcdserverpb.RequestOp.request` oneof.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Request {
        /// `request_range` (1).
        #[prost(message, tag = "1")]
        RequestRange(super::RangeRequest),
        /// `request_put` (2).
        #[prost(message, tag = "2")]
        RequestPut(super::PutRequest),
        /// `request_delete_range` (3).
        #[prost(message, tag = "3")]
        RequestDeleteRange(super::DeleteRangeRequest),
        /// `request_txn` (4): nested transaction (3.3+).
        #[prost(message, tag = "4")]
        RequestTxn(super::TxnRequest),
    }
}

/// `etcdserverpb.Compare`: one transaction guard.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Compare {
    /// `result` (1): [`compare::CompareResult`].
    #[prost(enumeration = "compare::CompareResult", tag = "1")]
    pub result: i32,
    /// `target` (2): [`compare::CompareTarget`].
    #[prost(enumeration = "compare::CompareTarget", tag = "2")]
    pub target: i32,
    /// `key` (3).
    #[prost(bytes = "vec", tag = "3")]
    pub key: Vec<u8>,
    /// `target_union` oneof (4–8).
    #[prost(oneof = "compare::TargetUnion", tags = "4, 5, 6, 7, 8")]
    pub target_union: Option<compare::TargetUnion>,
    /// `range_end` (64): compare over `[key, range_end)` (3.3+).
    #[prost(bytes = "vec", tag = "64")]
    pub range_end: Vec<u8>,
}

/// Types nested in [`Compare`].
pub mod compare {
    /// `etcdserverpb.Compare.CompareResult`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum CompareResult {
        /// `EQUAL` = 0.
        Equal = 0,
        /// `GREATER` = 1.
        Greater = 1,
        /// `LESS` = 2.
        Less = 2,
        /// `NOT_EQUAL` = 3.
        NotEqual = 3,
    }

    /// `etcdserverpb.Compare.CompareTarget`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum CompareTarget {
        /// `VERSION` = 0.
        Version = 0,
        /// `CREATE` = 1.
        Create = 1,
        /// `MOD` = 2.
        Mod = 2,
        /// `VALUE` = 3.
        Value = 3,
        /// `LEASE` = 4.
        Lease = 4,
    }

    /// `etcdserverpb.Compare.target_union` oneof.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum TargetUnion {
        /// `version` (4).
        #[prost(int64, tag = "4")]
        Version(i64),
        /// `create_revision` (5).
        #[prost(int64, tag = "5")]
        CreateRevision(i64),
        /// `mod_revision` (6).
        #[prost(int64, tag = "6")]
        ModRevision(i64),
        /// `value` (7).
        #[prost(bytes = "vec", tag = "7")]
        Value(Vec<u8>),
        /// `lease` (8).
        #[prost(int64, tag = "8")]
        Lease(i64),
    }
}

/// `etcdserverpb.TxnRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TxnRequest {
    /// `compare` (1).
    #[prost(message, repeated, tag = "1")]
    pub compare: Vec<Compare>,
    /// `success` (2).
    #[prost(message, repeated, tag = "2")]
    pub success: Vec<RequestOp>,
    /// `failure` (3).
    #[prost(message, repeated, tag = "3")]
    pub failure: Vec<RequestOp>,
}

/// `etcdserverpb.CompactionRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CompactionRequest {
    /// `revision` (1).
    #[prost(int64, tag = "1")]
    pub revision: i64,
    /// `physical` (2).
    #[prost(bool, tag = "2")]
    pub physical: bool,
}

// ---------------------------------------------------------------- rpc.proto: Lease

/// `etcdserverpb.LeaseGrantRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseGrantRequest {
    /// `TTL` (1).
    #[prost(int64, tag = "1")]
    pub ttl: i64,
    /// `ID` (2).
    #[prost(int64, tag = "2")]
    pub id: i64,
}

/// `etcdserverpb.LeaseRevokeRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseRevokeRequest {
    /// `ID` (1).
    #[prost(int64, tag = "1")]
    pub id: i64,
}

/// `etcdserverpb.LeaseCheckpoint` (3.4+).
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseCheckpoint {
    /// `ID` (1).
    #[prost(int64, tag = "1")]
    pub id: i64,
    /// `remaining_TTL` (2).
    #[prost(int64, tag = "2")]
    pub remaining_ttl: i64,
}

/// `etcdserverpb.LeaseCheckpointRequest` (3.4+).
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseCheckpointRequest {
    /// `checkpoints` (1).
    #[prost(message, repeated, tag = "1")]
    pub checkpoints: Vec<LeaseCheckpoint>,
}

/// `etcdserverpb.LeaseTimeToLiveRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseTimeToLiveRequest {
    /// `ID` (1).
    #[prost(int64, tag = "1")]
    pub id: i64,
    /// `keys` (2).
    #[prost(bool, tag = "2")]
    pub keys: bool,
}

/// `etcdserverpb.LeaseTimeToLiveResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct LeaseTimeToLiveResponse {
    /// `header` (1).
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    /// `ID` (2).
    #[prost(int64, tag = "2")]
    pub id: i64,
    /// `TTL` (3).
    #[prost(int64, tag = "3")]
    pub ttl: i64,
    /// `grantedTTL` (4).
    #[prost(int64, tag = "4")]
    pub granted_ttl: i64,
    /// `keys` (5).
    #[prost(bytes = "vec", repeated, tag = "5")]
    pub keys: Vec<Vec<u8>>,
}

// ---------------------------------------------------------------- rpc.proto: Maintenance

/// `etcdserverpb.AlarmType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum AlarmType {
    /// `NONE` = 0.
    None = 0,
    /// `NOSPACE` = 1.
    Nospace = 1,
    /// `CORRUPT` = 2.
    Corrupt = 2,
}

/// `etcdserverpb.AlarmRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AlarmRequest {
    /// `action` (1): [`alarm_request::AlarmAction`].
    #[prost(enumeration = "alarm_request::AlarmAction", tag = "1")]
    pub action: i32,
    /// `memberID` (2).
    #[prost(uint64, tag = "2")]
    pub member_id: u64,
    /// `alarm` (3): [`AlarmType`].
    #[prost(enumeration = "AlarmType", tag = "3")]
    pub alarm: i32,
}

/// Types nested in [`AlarmRequest`].
pub mod alarm_request {
    /// `etcdserverpb.AlarmRequest.AlarmAction`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
    #[repr(i32)]
    pub enum AlarmAction {
        /// `GET` = 0.
        Get = 0,
        /// `ACTIVATE` = 1.
        Activate = 1,
        /// `DEACTIVATE` = 2.
        Deactivate = 2,
    }
}

/// `etcdserverpb.AlarmMember`: also the *key* format of the backend `alarm` bucket.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AlarmMember {
    /// `memberID` (1).
    #[prost(uint64, tag = "1")]
    pub member_id: u64,
    /// `alarm` (2): [`AlarmType`].
    #[prost(enumeration = "AlarmType", tag = "2")]
    pub alarm: i32,
}

/// `etcdserverpb.DowngradeVersionTestRequest` (3.6+, tests only).
#[derive(Clone, PartialEq, prost::Message)]
pub struct DowngradeVersionTestRequest {
    /// `ver` (1).
    #[prost(string, tag = "1")]
    pub ver: String,
}

// ---------------------------------------------------------------- rpc.proto: Auth

/// `etcdserverpb.AuthEnableRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthEnableRequest {}

/// `etcdserverpb.AuthDisableRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthDisableRequest {}

/// `etcdserverpb.AuthStatusRequest` (3.5+).
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthStatusRequest {}

/// `etcdserverpb.AuthUserAddRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthUserAddRequest {
    /// `name` (1).
    #[prost(string, tag = "1")]
    pub name: String,
    /// `password` (2): cleared by the API layer in 3.5+.
    #[prost(string, tag = "2")]
    pub password: String,
    /// `options` (3): 3.4+.
    #[prost(message, optional, tag = "3")]
    pub options: Option<authpb::UserAddOptions>,
    /// `hashedPassword` (4): 3.5+.
    #[prost(string, tag = "4")]
    pub hashed_password: String,
}

/// `etcdserverpb.AuthUserGetRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthUserGetRequest {
    /// `name` (1).
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `etcdserverpb.AuthUserDeleteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthUserDeleteRequest {
    /// `name` (1).
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `etcdserverpb.AuthUserChangePasswordRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthUserChangePasswordRequest {
    /// `name` (1).
    #[prost(string, tag = "1")]
    pub name: String,
    /// `password` (2).
    #[prost(string, tag = "2")]
    pub password: String,
    /// `hashedPassword` (3): 3.5+.
    #[prost(string, tag = "3")]
    pub hashed_password: String,
}

/// `etcdserverpb.AuthUserGrantRoleRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthUserGrantRoleRequest {
    /// `user` (1).
    #[prost(string, tag = "1")]
    pub user: String,
    /// `role` (2).
    #[prost(string, tag = "2")]
    pub role: String,
}

/// `etcdserverpb.AuthUserRevokeRoleRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthUserRevokeRoleRequest {
    /// `name` (1).
    #[prost(string, tag = "1")]
    pub name: String,
    /// `role` (2).
    #[prost(string, tag = "2")]
    pub role: String,
}

/// `etcdserverpb.AuthUserListRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthUserListRequest {}

/// `etcdserverpb.AuthRoleListRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthRoleListRequest {}

/// `etcdserverpb.AuthRoleAddRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthRoleAddRequest {
    /// `name` (1).
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `etcdserverpb.AuthRoleGetRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthRoleGetRequest {
    /// `role` (1).
    #[prost(string, tag = "1")]
    pub role: String,
}

/// `etcdserverpb.AuthRoleDeleteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthRoleDeleteRequest {
    /// `role` (1).
    #[prost(string, tag = "1")]
    pub role: String,
}

/// `etcdserverpb.AuthRoleGrantPermissionRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthRoleGrantPermissionRequest {
    /// `name` (1): the role.
    #[prost(string, tag = "1")]
    pub name: String,
    /// `perm` (2).
    #[prost(message, optional, tag = "2")]
    pub perm: Option<authpb::Permission>,
}

/// `etcdserverpb.AuthRoleRevokePermissionRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AuthRoleRevokePermissionRequest {
    /// `role` (1).
    #[prost(string, tag = "1")]
    pub role: String,
    /// `key` (2).
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
    /// `range_end` (3).
    #[prost(bytes = "vec", tag = "3")]
    pub range_end: Vec<u8>,
}

/// `etcdserverpb.RangeResponse` (not stored; useful for tools).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RangeResponse {
    /// `header` (1).
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
    /// `kvs` (2).
    #[prost(message, repeated, tag = "2")]
    pub kvs: Vec<KeyValue>,
    /// `more` (3).
    #[prost(bool, tag = "3")]
    pub more: bool,
    /// `count` (4).
    #[prost(int64, tag = "4")]
    pub count: i64,
}
