//! Raft entries in the WAL: the zero-copy `raftpb.Entry` header and the decoded
//! payload (etcd `applyEntryNormal`: empty = leader no-op, else
//! `InternalRaftRequest`, falling back to the v2 `Request`), with one-line
//! summaries in the spirit of `etcd-dump-logs`.

use std::fmt::Write as _;

use etcdsnap_proto::etcdserverpb::{request_op, Compare, InternalRaftRequest, Request, RequestOp};
use etcdsnap_proto::raftpb::{ConfChange, ConfChangeType, ConfChangeV2, EntryType};
use etcdsnap_proto::Message;

use crate::wire::{low32, Fields, Value, WireError};

/// A `raftpb.Entry` borrowing its data from the segment bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawEntry<'a> {
    /// `Type` ([`EntryType`] as i32).
    pub entry_type: i32,
    /// `Term`.
    pub term: u64,
    /// `Index`.
    pub index: u64,
    /// `Data` (absent for a leader no-op).
    pub data: Option<&'a [u8]>,
}

impl<'a> RawEntry<'a> {
    /// Decodes a marshaled `raftpb.Entry`.
    pub fn decode(buf: &'a [u8]) -> Result<Self, String> {
        let mut e = RawEntry { entry_type: 0, term: 0, index: 0, data: None };
        for f in Fields::new(buf) {
            match f.map_err(|e| e.to_string())? {
                // gogo keeps the low 32 bits of an enum varint.
                (1, Value::Varint(v)) => e.entry_type = i32::from_le_bytes(low32(v)),
                (2, Value::Varint(v)) => e.term = v,
                (3, Value::Varint(v)) => e.index = v,
                (4, Value::Bytes(b)) => e.data = Some(b),
                (n @ 1..=4, _) => return Err(WireError::WrongType(n).to_string()),
                _ => {}
            }
        }
        Ok(e)
    }

    /// `"normal"`, `"conf"`, `"conf_v2"` or `"type_<n>"`.
    pub fn type_name(&self) -> String {
        match EntryType::try_from(self.entry_type) {
            Ok(EntryType::EntryNormal) => "normal".into(),
            Ok(EntryType::EntryConfChange) => "conf".into(),
            Ok(EntryType::EntryConfChangeV2) => "conf_v2".into(),
            Err(_) => format!("type_{}", self.entry_type),
        }
    }

    /// Decodes the payload as etcd's apply loop would.
    pub fn payload(&self) -> Payload {
        let data = self.data.unwrap_or(&[]);
        match EntryType::try_from(self.entry_type) {
            Ok(EntryType::EntryNormal) => {
                if data.is_empty() {
                    return Payload::Noop;
                }
                match InternalRaftRequest::decode(data) {
                    Ok(r) => Payload::Irr(Box::new(r)),
                    Err(e) => match Request::decode(data) {
                        Ok(r) => Payload::V2(Box::new(r)),
                        Err(_) => Payload::Unknown(format!("neither InternalRaftRequest nor v2 Request: {e}")),
                    },
                }
            }
            Ok(EntryType::EntryConfChange) => match ConfChange::decode(data) {
                Ok(c) => Payload::ConfChange(c),
                Err(e) => Payload::Unknown(format!("ConfChange: {e}")),
            },
            Ok(EntryType::EntryConfChangeV2) => match ConfChangeV2::decode(data) {
                Ok(c) => Payload::ConfChangeV2(c),
                Err(e) => Payload::Unknown(format!("ConfChangeV2: {e}")),
            },
            Err(_) => Payload::Unknown(format!("entry type {}", self.entry_type)),
        }
    }
}

/// What a raft entry carries.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Payload {
    /// Normal entry without data (leader no-op after an election).
    Noop,
    /// `etcdserverpb.InternalRaftRequest`.
    Irr(Box<InternalRaftRequest>),
    /// v2 `etcdserverpb.Request` (membership attributes, cluster version in 3.4).
    V2(Box<Request>),
    /// `raftpb.ConfChange`.
    ConfChange(ConfChange),
    /// `raftpb.ConfChangeV2`.
    ConfChangeV2(ConfChangeV2),
    /// Undecodable data, with the reason.
    Unknown(String),
}

impl Payload {
    /// Short kind name used by `wal dump --type`: `noop`, `put`, `delete_range`,
    /// `txn`, `range`, `compaction`, `lease_grant`, `lease_revoke`,
    /// `lease_checkpoint`, `alarm`, `auth`, `cluster`, `v2`, `conf`, `unknown`.
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::Noop => "noop",
            Payload::Irr(r) => irr_kind(r),
            Payload::V2(_) => "v2",
            Payload::ConfChange(_) | Payload::ConfChangeV2(_) => "conf",
            Payload::Unknown(_) => "unknown",
        }
    }

    /// One line: the request and its keys, like `etcd-dump-logs` (passwords left out).
    pub fn summary(&self) -> String {
        match self {
            Payload::Noop => "noop".into(),
            Payload::Irr(r) => irr_summary(r),
            Payload::V2(r) => v2_summary(r),
            Payload::ConfChange(c) => {
                let t = conf_change_type(c.r#type);
                format!("conf_change method={t} id={:x} node={:x}", c.id.unwrap_or(0), c.node_id)
            }
            Payload::ConfChangeV2(c) => {
                let ch: Vec<String> = c
                    .changes
                    .iter()
                    .map(|s| {
                        let t = conf_change_type(s.r#type);
                        format!("{t} {:x}", s.node_id)
                    })
                    .collect();
                format!("conf_change_v2 transition={} changes=[{}]", c.transition, ch.join(", "))
            }
            Payload::Unknown(why) => format!("??? {why}"),
        }
    }
}

fn conf_change_type(t: i32) -> &'static str {
    match ConfChangeType::try_from(t) {
        Ok(ConfChangeType::ConfChangeAddNode) => "ConfChangeAddNode",
        Ok(ConfChangeType::ConfChangeRemoveNode) => "ConfChangeRemoveNode",
        Ok(ConfChangeType::ConfChangeUpdateNode) => "ConfChangeUpdateNode",
        Ok(ConfChangeType::ConfChangeAddLearnerNode) => "ConfChangeAddLearnerNode",
        Err(_) => "?",
    }
}

/// Shows key bytes: as text when printable UTF-8, else escaped.
pub fn show(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_string(),
        _ => b.escape_ascii().to_string(),
    }
}

fn irr_kind(r: &InternalRaftRequest) -> &'static str {
    if r.put.is_some() {
        "put"
    } else if r.delete_range.is_some() {
        "delete_range"
    } else if r.txn.is_some() {
        "txn"
    } else if r.range.is_some() {
        "range"
    } else if r.compaction.is_some() {
        "compaction"
    } else if r.lease_grant.is_some() {
        "lease_grant"
    } else if r.lease_revoke.is_some() {
        "lease_revoke"
    } else if r.lease_checkpoint.is_some() {
        "lease_checkpoint"
    } else if r.alarm.is_some() {
        "alarm"
    } else if r.v2.is_some() {
        "v2"
    } else if r.cluster_version_set.is_some()
        || r.cluster_member_attr_set.is_some()
        || r.downgrade_info_set.is_some()
        || r.downgrade_version_test.is_some()
    {
        "cluster"
    } else if auth_name(r).is_some() {
        "auth"
    } else {
        "unknown"
    }
}

fn auth_name(r: &InternalRaftRequest) -> Option<String> {
    let s = if r.auth_enable.is_some() {
        "auth_enable".into()
    } else if r.auth_disable.is_some() {
        "auth_disable".into()
    } else if r.auth_status.is_some() {
        "auth_status".into()
    } else if let Some(a) = &r.authenticate {
        format!("authenticate name={}", a.name)
    } else if let Some(a) = &r.auth_user_add {
        format!("auth_user_add name={}", a.name)
    } else if let Some(a) = &r.auth_user_delete {
        format!("auth_user_delete name={}", a.name)
    } else if let Some(a) = &r.auth_user_get {
        format!("auth_user_get name={}", a.name)
    } else if let Some(a) = &r.auth_user_change_password {
        format!("auth_user_change_password name={}", a.name)
    } else if let Some(a) = &r.auth_user_grant_role {
        format!("auth_user_grant_role user={} role={}", a.user, a.role)
    } else if let Some(a) = &r.auth_user_revoke_role {
        format!("auth_user_revoke_role name={} role={}", a.name, a.role)
    } else if r.auth_user_list.is_some() {
        "auth_user_list".into()
    } else if r.auth_role_list.is_some() {
        "auth_role_list".into()
    } else if let Some(a) = &r.auth_role_add {
        format!("auth_role_add name={}", a.name)
    } else if let Some(a) = &r.auth_role_delete {
        format!("auth_role_delete role={}", a.role)
    } else if let Some(a) = &r.auth_role_get {
        format!("auth_role_get role={}", a.role)
    } else if let Some(a) = &r.auth_role_grant_permission {
        match &a.perm {
            Some(p) => format!(
                "auth_role_grant_permission name={} perm_type={} key={} range_end={}",
                a.name,
                p.perm_type,
                show(&p.key),
                show(&p.range_end)
            ),
            None => format!("auth_role_grant_permission name={}", a.name),
        }
    } else if let Some(a) = &r.auth_role_revoke_permission {
        format!("auth_role_revoke_permission role={} key={} range_end={}", a.role, show(&a.key), show(&a.range_end))
    } else {
        return None;
    };
    Some(s)
}

fn irr_summary(r: &InternalRaftRequest) -> String {
    if let Some(p) = &r.put {
        let mut s = format!("put key={} value_len={}", show(&p.key), p.value.len());
        if p.lease != 0 {
            let _ = write!(s, " lease={:x}", p.lease);
        }
        if p.ignore_value {
            s.push_str(" ignore_value");
        }
        if p.ignore_lease {
            s.push_str(" ignore_lease");
        }
        return s;
    }
    if let Some(d) = &r.delete_range {
        return range_text("delete_range", &d.key, &d.range_end);
    }
    if let Some(t) = &r.txn {
        let cmps: Vec<String> = t.compare.iter().map(compare_text).collect();
        return format!(
            "txn compares=[{}] success=[{}] failure=[{}]",
            cmps.join(", "),
            ops_text(&t.success),
            ops_text(&t.failure)
        );
    }
    if let Some(g) = &r.range {
        return range_text("range", &g.key, &g.range_end);
    }
    if let Some(c) = &r.compaction {
        return format!("compaction rev={} physical={}", c.revision, c.physical);
    }
    if let Some(l) = &r.lease_grant {
        return format!("lease_grant id={:x} ttl={}", l.id, l.ttl);
    }
    if let Some(l) = &r.lease_revoke {
        return format!("lease_revoke id={:x}", l.id);
    }
    if let Some(l) = &r.lease_checkpoint {
        let cps: Vec<String> = l.checkpoints.iter().map(|c| format!("{:x}:{}", c.id, c.remaining_ttl)).collect();
        return format!("lease_checkpoint checkpoints=[{}]", cps.join(", "));
    }
    if let Some(a) = &r.alarm {
        return format!("alarm action={} member={:x} alarm={}", a.action, a.member_id, a.alarm);
    }
    if let Some(v) = &r.v2 {
        return v2_summary(v);
    }
    if let Some(c) = &r.cluster_version_set {
        return format!("cluster_version_set ver={}", c.ver);
    }
    if let Some(c) = &r.cluster_member_attr_set {
        let (name, urls) =
            c.member_attributes.as_ref().map(|a| (a.name.clone(), a.client_urls.join(","))).unwrap_or_default();
        return format!("cluster_member_attr_set member={:x} name={name} client_urls={urls}", c.member_id);
    }
    if let Some(d) = &r.downgrade_info_set {
        return format!("downgrade_info_set enabled={} ver={}", d.enabled, d.ver);
    }
    if let Some(d) = &r.downgrade_version_test {
        return format!("downgrade_version_test ver={}", d.ver);
    }
    auth_name(r).unwrap_or_else(|| "??? empty InternalRaftRequest".into())
}

fn range_text(what: &str, key: &[u8], range_end: &[u8]) -> String {
    if range_end.is_empty() {
        format!("{what} key={}", show(key))
    } else {
        format!("{what} key={} range_end={}", show(key), show(range_end))
    }
}

fn compare_text(c: &Compare) -> String {
    use etcdsnap_proto::etcdserverpb::compare::TargetUnion;
    let op = match c.result {
        0 => "=",
        1 => ">",
        2 => "<",
        3 => "!=",
        _ => "?",
    };
    let (target, val) = match &c.target_union {
        Some(TargetUnion::Version(v)) => ("version", v.to_string()),
        Some(TargetUnion::CreateRevision(v)) => ("create", v.to_string()),
        Some(TargetUnion::ModRevision(v)) => ("mod", v.to_string()),
        Some(TargetUnion::Value(v)) => ("value", format!("{:?}", show(v))),
        Some(TargetUnion::Lease(v)) => ("lease", format!("{v:x}")),
        None => ("?", String::new()),
    };
    let key = if c.range_end.is_empty() { show(&c.key) } else { format!("{}..{}", show(&c.key), show(&c.range_end)) };
    format!("{target}({key}) {op} {val}")
}

fn ops_text(ops: &[RequestOp]) -> String {
    let v: Vec<String> = ops
        .iter()
        .map(|o| match &o.request {
            Some(request_op::Request::RequestPut(p)) => format!("put {}", show(&p.key)),
            Some(request_op::Request::RequestDeleteRange(d)) => range_text("del", &d.key, &d.range_end),
            Some(request_op::Request::RequestRange(g)) => range_text("get", &g.key, &g.range_end),
            Some(request_op::Request::RequestTxn(t)) => format!(
                "txn(compares={} success=[{}] failure=[{}])",
                t.compare.len(),
                ops_text(&t.success),
                ops_text(&t.failure)
            ),
            None => "?".into(),
        })
        .collect();
    v.join(", ")
}

fn v2_summary(r: &Request) -> String {
    match r.method.as_str() {
        "SYNC" => format!("v2 method=SYNC time={}", r.time),
        "QGET" | "DELETE" => format!("v2 method={} path={}", r.method, r.path),
        m => format!("v2 method={m} path={} val_len={}", r.path, r.val.len()),
    }
}
