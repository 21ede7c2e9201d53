//! JSON shapes of `wal verify --json` and `wal dump --json` (documented in README).

use etcdsnap_wal::proto::etcdserverpb::{
    compare::TargetUnion, request_op, Compare, InternalRaftRequest, Request, RequestOp, TxnRequest,
};
use etcdsnap_wal::verify::{WalFinding, WalReport};
use etcdsnap_wal::{Payload, RawEntry, WalPaths};
use serde_json::{json, Map, Value};

use crate::output::Bytes;

fn b(v: &[u8]) -> Value {
    serde_json::to_value(Bytes(v)).unwrap_or(Value::Null)
}

pub fn verify_json(layout: &WalPaths, r: &WalReport, ci: Option<u64>, problems: &[WalFinding]) -> Value {
    json!({
        "wal_dir": layout.wal_dir.display().to_string(),
        "snap_dir": layout.snap_dir.as_ref().map(|p| p.display().to_string()),
        "db": layout.db.as_ref().map(|p| p.display().to_string()),
        "segments": r.segments.iter().map(|s| json!({
            "name": s.segment.name,
            "seq": s.segment.seq,
            "index": s.segment.index,
            "size": s.segment.size,
            "data_end": s.data_end,
            "records": s.records,
            "first_index": s.first_index,
            "last_index": s.last_index,
        })).collect::<Vec<_>>(),
        "sequence_gaps": r.sequence_gaps.iter().map(|(a, b)| json!({"after": a, "next": b})).collect::<Vec<_>>(),
        "records": r.records,
        "crc_records": r.crc_records,
        "metadata_records": r.metadata_records,
        "entry_records": r.entry_records,
        "state_records": r.state_records,
        "first_index": r.first_index,
        "last_index": r.last_index,
        "last_term": r.last_term,
        "overwritten": r.overwritten,
        "index_gaps": r.index_gaps.iter().map(|g| json!({
            "segment": g.segment, "offset": g.offset, "expected": g.expected, "found": g.found,
        })).collect::<Vec<_>>(),
        "hard_state": r.hard_state.as_ref().map(|h| json!({"term": h.term, "vote": h.vote, "commit": h.commit})),
        "metadata": r.metadata.as_ref().map(|m| json!({"node_id": m.node_id, "cluster_id": m.cluster_id})),
        "snapshots": r.snapshots.iter().map(|s| json!({"index": s.index, "term": s.term})).collect::<Vec<_>>(),
        "crc_ok": r.corruption.is_none(),
        "last_crc": r.last_crc,
        "torn": r.torn.as_ref().map(|t| json!({"segment": t.segment, "offset": t.offset, "detail": t.detail})),
        "corruption": r.corruption.as_ref().map(|c| json!({
            "segment": c.segment,
            "offset": c.offset,
            "index": c.index,
            "after_index": c.after_index,
            "error": c.kind.to_string(),
        })),
        "snap_files": r.snap_files.iter().map(|s| json!({
            "name": s.name, "term": s.term, "index": s.index, "size": s.size, "voters": s.voters, "problem": s.problem,
        })).collect::<Vec<_>>(),
        "usable_snapshot": r.usable_snapshot.map(|s| json!({"index": s.index, "term": s.term})),
        "consistent_index": ci,
        "entries_after_db": entries_after(ci, r.last_index),
        "problems": problems.iter().map(|p| json!({
            "kind": p.kind.code(), "file": p.file, "offset": p.offset, "index": p.index, "message": p.message,
        })).collect::<Vec<_>>(),
    })
}

pub fn entry_json(e: &RawEntry<'_>, tname: &str, p: &Payload) -> Value {
    let request = match p {
        Payload::Noop => Value::Null,
        Payload::Irr(r) => irr(r),
        Payload::V2(r) => json!({"v2": v2(r)}),
        Payload::ConfChange(c) => json!({"conf_change": {
            "id": c.id, "type": c.r#type, "node_id": c.node_id, "context": c.context.as_deref().map(b),
        }}),
        Payload::ConfChangeV2(c) => json!({"conf_change_v2": {
            "transition": c.transition,
            "changes": c.changes.iter().map(|s| json!({"type": s.r#type, "node_id": s.node_id})).collect::<Vec<_>>(),
            "context": c.context.as_deref().map(b),
        }}),
        Payload::Unknown(why) => json!({"unknown": why, "data": e.data.map(b)}),
    };
    json!({"term": e.term, "index": e.index, "type": tname, "kind": p.kind(), "request": request})
}

fn v2(r: &Request) -> Value {
    json!({
        "id": r.id, "method": r.method, "path": r.path, "val": r.val, "dir": r.dir,
        "prev_value": r.prev_value, "prev_index": r.prev_index, "prev_exist": r.prev_exist,
        "expiration": r.expiration, "wait": r.wait, "since": r.since, "recursive": r.recursive,
        "sorted": r.sorted, "quorum": r.quorum, "time": r.time, "stream": r.stream, "refresh": r.refresh,
    })
}

fn compare(c: &Compare) -> Value {
    let (target_field, value) = match &c.target_union {
        Some(TargetUnion::Version(v)) => ("version", json!(v)),
        Some(TargetUnion::CreateRevision(v)) => ("create_revision", json!(v)),
        Some(TargetUnion::ModRevision(v)) => ("mod_revision", json!(v)),
        Some(TargetUnion::Value(v)) => ("value", b(v)),
        Some(TargetUnion::Lease(v)) => ("lease", json!(v)),
        None => ("none", Value::Null),
    };
    let mut m = Map::new();
    m.insert("result".into(), json!(c.result));
    m.insert("target".into(), json!(c.target));
    m.insert("key".into(), b(&c.key));
    m.insert("range_end".into(), b(&c.range_end));
    m.insert(target_field.into(), value);
    Value::Object(m)
}

fn op(o: &RequestOp) -> Value {
    match &o.request {
        Some(request_op::Request::RequestPut(p)) => json!({"put": {
            "key": b(&p.key), "value": b(&p.value), "lease": p.lease, "prev_kv": p.prev_kv,
            "ignore_value": p.ignore_value, "ignore_lease": p.ignore_lease,
        }}),
        Some(request_op::Request::RequestDeleteRange(d)) => json!({"delete_range": {
            "key": b(&d.key), "range_end": b(&d.range_end), "prev_kv": d.prev_kv,
        }}),
        Some(request_op::Request::RequestRange(g)) => json!({"range": {
            "key": b(&g.key), "range_end": b(&g.range_end), "limit": g.limit, "revision": g.revision,
        }}),
        Some(request_op::Request::RequestTxn(t)) => json!({"txn": txn(t)}),
        None => Value::Null,
    }
}

fn txn(t: &TxnRequest) -> Value {
    json!({
        "compare": t.compare.iter().map(compare).collect::<Vec<_>>(),
        "success": t.success.iter().map(op).collect::<Vec<_>>(),
        "failure": t.failure.iter().map(op).collect::<Vec<_>>(),
    })
}

fn irr(r: &InternalRaftRequest) -> Value {
    let mut m = Map::new();
    if let Some(h) = &r.header {
        m.insert("header".into(), json!({"id": h.id, "username": h.username, "auth_revision": h.auth_revision}));
    }
    if r.id != 0 {
        m.insert("id".into(), json!(r.id));
    }
    let mut put = |k: &str, v: Value| {
        m.insert(k.into(), v);
    };
    if let Some(p) = &r.put {
        put(
            "put",
            json!({
                "key": b(&p.key), "value": b(&p.value), "lease": p.lease, "prev_kv": p.prev_kv,
                "ignore_value": p.ignore_value, "ignore_lease": p.ignore_lease,
            }),
        );
    }
    if let Some(d) = &r.delete_range {
        put("delete_range", json!({"key": b(&d.key), "range_end": b(&d.range_end), "prev_kv": d.prev_kv}));
    }
    if let Some(g) = &r.range {
        put("range", json!({"key": b(&g.key), "range_end": b(&g.range_end), "limit": g.limit, "revision": g.revision}));
    }
    if let Some(t) = &r.txn {
        put("txn", txn(t));
    }
    if let Some(c) = &r.compaction {
        put("compaction", json!({"revision": c.revision, "physical": c.physical}));
    }
    if let Some(l) = &r.lease_grant {
        put("lease_grant", json!({"id": l.id, "ttl": l.ttl}));
    }
    if let Some(l) = &r.lease_revoke {
        put("lease_revoke", json!({"id": l.id}));
    }
    if let Some(l) = &r.lease_checkpoint {
        put(
            "lease_checkpoint",
            json!({"checkpoints": l.checkpoints.iter()
            .map(|c| json!({"id": c.id, "remaining_ttl": c.remaining_ttl})).collect::<Vec<_>>()}),
        );
    }
    if let Some(a) = &r.alarm {
        put("alarm", json!({"action": a.action, "member_id": a.member_id, "alarm": a.alarm}));
    }
    if let Some(v) = &r.v2 {
        put("v2", v2(v));
    }
    if let Some(c) = &r.cluster_version_set {
        put("cluster_version_set", json!({"ver": c.ver}));
    }
    if let Some(c) = &r.cluster_member_attr_set {
        put(
            "cluster_member_attr_set",
            json!({
                "member_id": c.member_id,
                "name": c.member_attributes.as_ref().map(|a| a.name.clone()),
                "client_urls": c.member_attributes.as_ref().map(|a| a.client_urls.clone()),
            }),
        );
    }
    if let Some(d) = &r.downgrade_info_set {
        put("downgrade_info_set", json!({"enabled": d.enabled, "ver": d.ver}));
    }
    if r.auth_enable.is_some() {
        put("auth_enable", json!({}));
    }
    if r.auth_disable.is_some() {
        put("auth_disable", json!({}));
    }
    if r.auth_status.is_some() {
        put("auth_status", json!({}));
    }
    if let Some(a) = &r.authenticate {
        put("authenticate", json!({"name": a.name}));
    }
    // Passwords and hashes are left out, as etcd-dump-logs redacts them.
    if let Some(a) = &r.auth_user_add {
        put("auth_user_add", json!({"name": a.name, "no_password": a.options.as_ref().map(|o| o.no_password)}));
    }
    if let Some(a) = &r.auth_user_delete {
        put("auth_user_delete", json!({"name": a.name}));
    }
    if let Some(a) = &r.auth_user_get {
        put("auth_user_get", json!({"name": a.name}));
    }
    if let Some(a) = &r.auth_user_change_password {
        put("auth_user_change_password", json!({"name": a.name}));
    }
    if let Some(a) = &r.auth_user_grant_role {
        put("auth_user_grant_role", json!({"user": a.user, "role": a.role}));
    }
    if let Some(a) = &r.auth_user_revoke_role {
        put("auth_user_revoke_role", json!({"name": a.name, "role": a.role}));
    }
    if r.auth_user_list.is_some() {
        put("auth_user_list", json!({}));
    }
    if r.auth_role_list.is_some() {
        put("auth_role_list", json!({}));
    }
    if let Some(a) = &r.auth_role_add {
        put("auth_role_add", json!({"name": a.name}));
    }
    if let Some(a) = &r.auth_role_delete {
        put("auth_role_delete", json!({"role": a.role}));
    }
    if let Some(a) = &r.auth_role_get {
        put("auth_role_get", json!({"role": a.role}));
    }
    if let Some(a) = &r.auth_role_grant_permission {
        put(
            "auth_role_grant_permission",
            json!({
                "name": a.name,
                "perm": a.perm.as_ref().map(|p| json!({"perm_type": p.perm_type, "key": b(&p.key), "range_end": b(&p.range_end)})),
            }),
        );
    }
    if let Some(a) = &r.auth_role_revoke_permission {
        put("auth_role_revoke_permission", json!({"role": a.role, "key": b(&a.key), "range_end": b(&a.range_end)}));
    }
    Value::Object(m)
}

/// Entries the WAL holds above the db's `consistent_index`: what etcd replays
/// into the db at start (the writes not yet in it).
pub fn entries_after(ci: Option<u64>, last: Option<u64>) -> Option<u64> {
    Some(last?.saturating_sub(ci?))
}
