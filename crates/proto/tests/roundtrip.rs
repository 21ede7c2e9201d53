//! Property tests: for every message, encode → decode gives the same value,
//! re-encoding gives the same bytes, and `encoded_len()` matches the bytes written.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::fmt::Debug;

use etcdsnap_proto::etcdserverpb::{self as es, compare, request_op};
use etcdsnap_proto::{authpb, leasepb, membershippb, mvccpb, raftpb, snappb, walpb, Message};
use proptest::prelude::*;

type S<T> = BoxedStrategy<T>;

/// Builds a message strategy: start from `Default` and set each listed field from its strategy.
macro_rules! msg {
    ($ty:ty { $($f:ident : $s:expr),* $(,)? }) => {{
        let s: S<$ty> = Just(<$ty>::default()).boxed();
        $( let s: S<$ty> = (s, $s).prop_map(|(mut m, v)| { m.$f = v; m }).boxed(); )*
        s
    }};
}

fn bytes() -> S<Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..12).boxed()
}
fn opt_bytes() -> S<Option<Vec<u8>>> {
    prop::option::of(bytes()).boxed()
}
fn string() -> S<String> {
    "\\PC{0,8}".boxed()
}
fn strings() -> S<Vec<String>> {
    prop::collection::vec(string(), 0..4).boxed()
}
/// Enum values: mostly known ones, sometimes arbitrary (prost enums are open `i32`s).
fn enum_val(max: i32) -> S<i32> {
    prop_oneof![4 => 0..=max, 1 => any::<i32>()].boxed()
}
fn u64s() -> S<Vec<u64>> {
    prop::collection::vec(any::<u64>(), 0..5).boxed()
}
fn opt<T: Debug + Clone + 'static>(s: S<T>) -> S<Option<T>> {
    prop::option::of(s).boxed()
}
fn vec_of<T: Debug + Clone + 'static>(s: S<T>) -> S<Vec<T>> {
    prop::collection::vec(s, 0..3).boxed()
}

fn check<M: Message + Default + PartialEq + Debug>(m: &M) -> Result<(), TestCaseError> {
    let bytes = m.encode_to_vec();
    prop_assert_eq!(m.encoded_len(), bytes.len());
    let decoded = M::decode(bytes.as_slice()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&decoded, m);
    prop_assert_eq!(decoded.encode_to_vec(), bytes);
    Ok(())
}

// ---------------------------------------------------------------- mvccpb

fn key_value() -> S<mvccpb::KeyValue> {
    msg!(mvccpb::KeyValue {
        key: bytes(),
        create_revision: any::<i64>(),
        mod_revision: any::<i64>(),
        version: any::<i64>(),
        value: bytes(),
        lease: any::<i64>(),
    })
}
fn event() -> S<mvccpb::Event> {
    msg!(mvccpb::Event { r#type: enum_val(1), kv: opt(key_value()), prev_kv: opt(key_value()) })
}

// ---------------------------------------------------------------- leasepb

fn lease() -> S<leasepb::Lease> {
    msg!(leasepb::Lease { id: any::<i64>(), ttl: any::<i64>(), remaining_ttl: any::<i64>() })
}
fn lease_ttl_req() -> S<es::LeaseTimeToLiveRequest> {
    msg!(es::LeaseTimeToLiveRequest { id: any::<i64>(), keys: any::<bool>() })
}
fn lease_ttl_resp() -> S<es::LeaseTimeToLiveResponse> {
    msg!(es::LeaseTimeToLiveResponse {
        header: opt(response_header()),
        id: any::<i64>(),
        ttl: any::<i64>(),
        granted_ttl: any::<i64>(),
        keys: vec_of(bytes()),
    })
}
fn lease_internal_req() -> S<leasepb::LeaseInternalRequest> {
    msg!(leasepb::LeaseInternalRequest { lease_time_to_live_request: opt(lease_ttl_req()) })
}
fn lease_internal_resp() -> S<leasepb::LeaseInternalResponse> {
    msg!(leasepb::LeaseInternalResponse { lease_time_to_live_response: opt(lease_ttl_resp()) })
}

// ---------------------------------------------------------------- authpb

fn user_add_options() -> S<authpb::UserAddOptions> {
    msg!(authpb::UserAddOptions { no_password: any::<bool>() })
}
fn user() -> S<authpb::User> {
    msg!(authpb::User { name: bytes(), password: bytes(), roles: strings(), options: opt(user_add_options()) })
}
fn permission() -> S<authpb::Permission> {
    msg!(authpb::Permission { perm_type: enum_val(2), key: bytes(), range_end: bytes() })
}
fn role() -> S<authpb::Role> {
    msg!(authpb::Role { name: bytes(), key_permission: vec_of(permission()) })
}

// ---------------------------------------------------------------- membershippb

fn raft_attributes() -> S<membershippb::RaftAttributes> {
    msg!(membershippb::RaftAttributes { peer_urls: strings(), is_learner: any::<bool>() })
}
fn attributes() -> S<membershippb::Attributes> {
    msg!(membershippb::Attributes { name: string(), client_urls: strings() })
}
fn member() -> S<membershippb::Member> {
    msg!(membershippb::Member {
        id: any::<u64>(),
        raft_attributes: opt(raft_attributes()),
        member_attributes: opt(attributes()),
    })
}
fn cluster_version_set() -> S<membershippb::ClusterVersionSetRequest> {
    msg!(membershippb::ClusterVersionSetRequest { ver: string() })
}
fn cluster_member_attr_set() -> S<membershippb::ClusterMemberAttrSetRequest> {
    msg!(membershippb::ClusterMemberAttrSetRequest { member_id: any::<u64>(), member_attributes: opt(attributes()) })
}
fn downgrade_info_set() -> S<membershippb::DowngradeInfoSetRequest> {
    msg!(membershippb::DowngradeInfoSetRequest { enabled: any::<bool>(), ver: string() })
}

// ---------------------------------------------------------------- raftpb

fn entry() -> S<raftpb::Entry> {
    msg!(raftpb::Entry { r#type: enum_val(2), term: any::<u64>(), index: any::<u64>(), data: opt_bytes() })
}
fn conf_state() -> S<raftpb::ConfState> {
    msg!(raftpb::ConfState {
        voters: u64s(),
        learners: u64s(),
        voters_outgoing: u64s(),
        learners_next: u64s(),
        auto_leave: any::<bool>(),
    })
}
fn snapshot_metadata() -> S<raftpb::SnapshotMetadata> {
    msg!(raftpb::SnapshotMetadata { conf_state: conf_state(), index: any::<u64>(), term: any::<u64>() })
}
fn raft_snapshot() -> S<raftpb::Snapshot> {
    msg!(raftpb::Snapshot { data: opt_bytes(), metadata: snapshot_metadata() })
}
fn raft_message_leaf() -> S<raftpb::Message> {
    msg!(raftpb::Message {
        r#type: enum_val(23),
        to: any::<u64>(),
        from: any::<u64>(),
        term: any::<u64>(),
        log_term: any::<u64>(),
        index: any::<u64>(),
        entries: vec_of(entry()),
        commit: any::<u64>(),
        snapshot: opt(raft_snapshot()),
        reject: any::<bool>(),
        reject_hint: any::<u64>(),
        context: opt_bytes(),
        vote: opt(any::<u64>().boxed()),
    })
}
fn raft_message() -> S<raftpb::Message> {
    (raft_message_leaf(), vec_of(raft_message_leaf()))
        .prop_map(|(mut m, r)| {
            m.responses = r;
            m
        })
        .boxed()
}
fn hard_state() -> S<raftpb::HardState> {
    msg!(raftpb::HardState { term: any::<u64>(), vote: any::<u64>(), commit: any::<u64>() })
}
fn conf_change() -> S<raftpb::ConfChange> {
    msg!(raftpb::ConfChange {
        id: proptest::option::of(any::<u64>()),
        r#type: enum_val(3),
        node_id: any::<u64>(),
        context: opt_bytes()
    })
}
fn conf_change_single() -> S<raftpb::ConfChangeSingle> {
    msg!(raftpb::ConfChangeSingle { r#type: enum_val(3), node_id: any::<u64>() })
}
fn conf_change_v2() -> S<raftpb::ConfChangeV2> {
    msg!(raftpb::ConfChangeV2 { transition: enum_val(2), changes: vec_of(conf_change_single()), context: opt_bytes() })
}

// ---------------------------------------------------------------- walpb / snappb

fn wal_record() -> S<walpb::Record> {
    msg!(walpb::Record { r#type: any::<i64>(), crc: any::<u32>(), data: opt_bytes() })
}
fn wal_snapshot() -> S<walpb::Snapshot> {
    msg!(walpb::Snapshot { index: any::<u64>(), term: any::<u64>(), conf_state: opt(conf_state()) })
}
fn snap_snapshot() -> S<snappb::Snapshot> {
    msg!(snappb::Snapshot { crc: any::<u32>(), data: opt_bytes() })
}

// ---------------------------------------------------------------- etcdserverpb

fn metadata() -> S<es::Metadata> {
    msg!(es::Metadata { node_id: any::<u64>(), cluster_id: any::<u64>() })
}
fn v2_request() -> S<es::Request> {
    msg!(es::Request {
        id: any::<u64>(),
        method: string(),
        path: string(),
        val: string(),
        dir: any::<bool>(),
        prev_value: string(),
        prev_index: any::<u64>(),
        prev_exist: opt(any::<bool>().boxed()),
        expiration: any::<i64>(),
        wait: any::<bool>(),
        since: any::<u64>(),
        recursive: any::<bool>(),
        sorted: any::<bool>(),
        quorum: any::<bool>(),
        time: any::<i64>(),
        stream: any::<bool>(),
        refresh: opt(any::<bool>().boxed()),
    })
}
fn request_header() -> S<es::RequestHeader> {
    msg!(es::RequestHeader {
        id: any::<u64>(),
        username: string(),
        auth_revision: any::<u64>(),
        requester_member_id: any::<u64>(),
    })
}
fn response_header() -> S<es::ResponseHeader> {
    msg!(es::ResponseHeader {
        cluster_id: any::<u64>(),
        member_id: any::<u64>(),
        revision: any::<i64>(),
        raft_term: any::<u64>(),
    })
}
fn range_request() -> S<es::RangeRequest> {
    msg!(es::RangeRequest {
        key: bytes(),
        range_end: bytes(),
        limit: any::<i64>(),
        revision: any::<i64>(),
        sort_order: enum_val(2),
        sort_target: enum_val(4),
        serializable: any::<bool>(),
        keys_only: any::<bool>(),
        count_only: any::<bool>(),
        min_mod_revision: any::<i64>(),
        max_mod_revision: any::<i64>(),
        min_create_revision: any::<i64>(),
        max_create_revision: any::<i64>(),
    })
}
fn range_response() -> S<es::RangeResponse> {
    msg!(es::RangeResponse {
        header: opt(response_header()),
        kvs: vec_of(key_value()),
        more: any::<bool>(),
        count: any::<i64>(),
    })
}
fn put_request() -> S<es::PutRequest> {
    msg!(es::PutRequest {
        key: bytes(),
        value: bytes(),
        lease: any::<i64>(),
        prev_kv: any::<bool>(),
        ignore_value: any::<bool>(),
        ignore_lease: any::<bool>(),
    })
}
fn delete_range_request() -> S<es::DeleteRangeRequest> {
    msg!(es::DeleteRangeRequest { key: bytes(), range_end: bytes(), prev_kv: any::<bool>() })
}
fn target_union() -> S<compare::TargetUnion> {
    prop_oneof![
        any::<i64>().prop_map(compare::TargetUnion::Version),
        any::<i64>().prop_map(compare::TargetUnion::CreateRevision),
        any::<i64>().prop_map(compare::TargetUnion::ModRevision),
        bytes().prop_map(compare::TargetUnion::Value),
        any::<i64>().prop_map(compare::TargetUnion::Lease),
    ]
    .boxed()
}
fn compare() -> S<es::Compare> {
    msg!(es::Compare {
        result: enum_val(3),
        target: enum_val(4),
        key: bytes(),
        target_union: opt(target_union()),
        range_end: bytes(),
    })
}
fn request_op(depth: u32) -> S<es::RequestOp> {
    let leaf = prop_oneof![
        range_request().prop_map(request_op::Request::RequestRange),
        put_request().prop_map(request_op::Request::RequestPut),
        delete_range_request().prop_map(request_op::Request::RequestDeleteRange),
    ];
    let req: S<request_op::Request> = if depth == 0 {
        leaf.boxed()
    } else {
        prop_oneof![3 => leaf, 1 => txn_request(depth - 1).prop_map(request_op::Request::RequestTxn)].boxed()
    };
    msg!(es::RequestOp { request: opt(req) })
}
fn txn_request(depth: u32) -> S<es::TxnRequest> {
    msg!(es::TxnRequest {
        compare: vec_of(compare()),
        success: vec_of(request_op(depth)),
        failure: vec_of(request_op(depth)),
    })
}
fn compaction_request() -> S<es::CompactionRequest> {
    msg!(es::CompactionRequest { revision: any::<i64>(), physical: any::<bool>() })
}
fn lease_grant_request() -> S<es::LeaseGrantRequest> {
    msg!(es::LeaseGrantRequest { ttl: any::<i64>(), id: any::<i64>() })
}
fn lease_revoke_request() -> S<es::LeaseRevokeRequest> {
    msg!(es::LeaseRevokeRequest { id: any::<i64>() })
}
fn lease_checkpoint() -> S<es::LeaseCheckpoint> {
    msg!(es::LeaseCheckpoint { id: any::<i64>(), remaining_ttl: any::<i64>() })
}
fn lease_checkpoint_request() -> S<es::LeaseCheckpointRequest> {
    msg!(es::LeaseCheckpointRequest { checkpoints: vec_of(lease_checkpoint()) })
}
fn alarm_request() -> S<es::AlarmRequest> {
    msg!(es::AlarmRequest { action: enum_val(2), member_id: any::<u64>(), alarm: enum_val(2) })
}
fn alarm_member() -> S<es::AlarmMember> {
    msg!(es::AlarmMember { member_id: any::<u64>(), alarm: enum_val(2) })
}
fn internal_authenticate() -> S<es::InternalAuthenticateRequest> {
    msg!(es::InternalAuthenticateRequest { name: string(), password: string(), simple_token: string() })
}
fn auth_user_add() -> S<es::AuthUserAddRequest> {
    msg!(es::AuthUserAddRequest {
        name: string(),
        password: string(),
        options: opt(user_add_options()),
        hashed_password: string(),
    })
}
fn auth_user_get() -> S<es::AuthUserGetRequest> {
    msg!(es::AuthUserGetRequest { name: string() })
}
fn auth_user_delete() -> S<es::AuthUserDeleteRequest> {
    msg!(es::AuthUserDeleteRequest { name: string() })
}
fn auth_user_change_password() -> S<es::AuthUserChangePasswordRequest> {
    msg!(es::AuthUserChangePasswordRequest { name: string(), password: string(), hashed_password: string() })
}
fn auth_user_grant_role() -> S<es::AuthUserGrantRoleRequest> {
    msg!(es::AuthUserGrantRoleRequest { user: string(), role: string() })
}
fn auth_user_revoke_role() -> S<es::AuthUserRevokeRoleRequest> {
    msg!(es::AuthUserRevokeRoleRequest { name: string(), role: string() })
}
fn auth_role_add() -> S<es::AuthRoleAddRequest> {
    msg!(es::AuthRoleAddRequest { name: string() })
}
fn auth_role_get() -> S<es::AuthRoleGetRequest> {
    msg!(es::AuthRoleGetRequest { role: string() })
}
fn auth_role_delete() -> S<es::AuthRoleDeleteRequest> {
    msg!(es::AuthRoleDeleteRequest { role: string() })
}
fn auth_role_grant_permission() -> S<es::AuthRoleGrantPermissionRequest> {
    msg!(es::AuthRoleGrantPermissionRequest { name: string(), perm: opt(permission()) })
}
fn auth_role_revoke_permission() -> S<es::AuthRoleRevokePermissionRequest> {
    msg!(es::AuthRoleRevokePermissionRequest { role: string(), key: bytes(), range_end: bytes() })
}
fn downgrade_version_test() -> S<es::DowngradeVersionTestRequest> {
    msg!(es::DowngradeVersionTestRequest { ver: string() })
}
fn empty<M: Default + Debug + Clone + 'static>() -> S<M> {
    Just(M::default()).boxed()
}
fn internal_raft_request() -> S<es::InternalRaftRequest> {
    msg!(es::InternalRaftRequest {
        id: any::<u64>(),
        v2: opt(v2_request()),
        range: opt(range_request()),
        put: opt(put_request()),
        delete_range: opt(delete_range_request()),
        txn: opt(txn_request(1)),
        compaction: opt(compaction_request()),
        lease_grant: opt(lease_grant_request()),
        lease_revoke: opt(lease_revoke_request()),
        alarm: opt(alarm_request()),
        lease_checkpoint: opt(lease_checkpoint_request()),
        header: opt(request_header()),
        auth_enable: opt(empty()),
        auth_disable: opt(empty()),
        authenticate: opt(internal_authenticate()),
        auth_status: opt(empty()),
        auth_user_add: opt(auth_user_add()),
        auth_user_delete: opt(auth_user_delete()),
        auth_user_get: opt(auth_user_get()),
        auth_user_change_password: opt(auth_user_change_password()),
        auth_user_grant_role: opt(auth_user_grant_role()),
        auth_user_revoke_role: opt(auth_user_revoke_role()),
        auth_user_list: opt(empty()),
        auth_role_list: opt(empty()),
        auth_role_add: opt(auth_role_add()),
        auth_role_delete: opt(auth_role_delete()),
        auth_role_get: opt(auth_role_get()),
        auth_role_grant_permission: opt(auth_role_grant_permission()),
        auth_role_revoke_permission: opt(auth_role_revoke_permission()),
        cluster_version_set: opt(cluster_version_set()),
        cluster_member_attr_set: opt(cluster_member_attr_set()),
        downgrade_info_set: opt(downgrade_info_set()),
        downgrade_version_test: opt(downgrade_version_test()),
    })
}

/// One proptest per message.
macro_rules! roundtrip_tests {
    ($($name:ident => $strat:expr;)*) => {
        proptest! {
            $(
                #[test]
                fn $name(m in $strat) {
                    check(&m)?;
                }
            )*
        }
    };
}

roundtrip_tests! {
    mvccpb_key_value => key_value();
    mvccpb_event => event();
    leasepb_lease => lease();
    leasepb_lease_internal_request => lease_internal_req();
    leasepb_lease_internal_response => lease_internal_resp();
    authpb_user_add_options => user_add_options();
    authpb_user => user();
    authpb_permission => permission();
    authpb_role => role();
    membershippb_raft_attributes => raft_attributes();
    membershippb_attributes => attributes();
    membershippb_member => member();
    membershippb_cluster_version_set => cluster_version_set();
    membershippb_cluster_member_attr_set => cluster_member_attr_set();
    membershippb_downgrade_info_set => downgrade_info_set();
    raftpb_entry => entry();
    raftpb_conf_state => conf_state();
    raftpb_snapshot_metadata => snapshot_metadata();
    raftpb_snapshot => raft_snapshot();
    raftpb_message => raft_message();
    raftpb_hard_state => hard_state();
    raftpb_conf_change => conf_change();
    raftpb_conf_change_single => conf_change_single();
    raftpb_conf_change_v2 => conf_change_v2();
    walpb_record => wal_record();
    walpb_snapshot => wal_snapshot();
    snappb_snapshot => snap_snapshot();
    etcdserverpb_metadata => metadata();
    etcdserverpb_v2_request => v2_request();
    etcdserverpb_request_header => request_header();
    etcdserverpb_response_header => response_header();
    etcdserverpb_internal_raft_request => internal_raft_request();
    etcdserverpb_empty_response => empty::<es::EmptyResponse>();
    etcdserverpb_internal_authenticate => internal_authenticate();
    etcdserverpb_range_request => range_request();
    etcdserverpb_range_response => range_response();
    etcdserverpb_put_request => put_request();
    etcdserverpb_delete_range_request => delete_range_request();
    etcdserverpb_request_op => request_op(2);
    etcdserverpb_compare => compare();
    etcdserverpb_txn_request => txn_request(2);
    etcdserverpb_compaction_request => compaction_request();
    etcdserverpb_lease_grant_request => lease_grant_request();
    etcdserverpb_lease_revoke_request => lease_revoke_request();
    etcdserverpb_lease_checkpoint => lease_checkpoint();
    etcdserverpb_lease_checkpoint_request => lease_checkpoint_request();
    etcdserverpb_lease_time_to_live_request => lease_ttl_req();
    etcdserverpb_lease_time_to_live_response => lease_ttl_resp();
    etcdserverpb_alarm_request => alarm_request();
    etcdserverpb_alarm_member => alarm_member();
    etcdserverpb_downgrade_version_test => downgrade_version_test();
    etcdserverpb_auth_enable => empty::<es::AuthEnableRequest>();
    etcdserverpb_auth_disable => empty::<es::AuthDisableRequest>();
    etcdserverpb_auth_status => empty::<es::AuthStatusRequest>();
    etcdserverpb_auth_user_add => auth_user_add();
    etcdserverpb_auth_user_get => auth_user_get();
    etcdserverpb_auth_user_delete => auth_user_delete();
    etcdserverpb_auth_user_change_password => auth_user_change_password();
    etcdserverpb_auth_user_grant_role => auth_user_grant_role();
    etcdserverpb_auth_user_revoke_role => auth_user_revoke_role();
    etcdserverpb_auth_user_list => empty::<es::AuthUserListRequest>();
    etcdserverpb_auth_role_list => empty::<es::AuthRoleListRequest>();
    etcdserverpb_auth_role_add => auth_role_add();
    etcdserverpb_auth_role_get => auth_role_get();
    etcdserverpb_auth_role_delete => auth_role_delete();
    etcdserverpb_auth_role_grant_permission => auth_role_grant_permission();
    etcdserverpb_auth_role_revoke_permission => auth_role_revoke_permission();
}
