//! The new cluster a restore writes: `--initial-cluster` parsed and checked
//! as etcd parses and checks it (`types.NewURLsMap`, `NewURLs`,
//! `ServerConfig.VerifyBootstrap`), member and cluster ids as etcd derives
//! them (`computeMemberID`, `genID`), and the member JSON etcd stores.

use std::collections::BTreeMap;

use sha1::{Digest, Sha1};

use crate::error::{DataDirError, Result};

/// One member of the new cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// `--name`.
    pub name: String,
    /// Its peer URLs, sorted as etcd sorts them.
    pub peer_urls: Vec<String>,
    /// The id etcd derives from the peer URLs and the cluster token.
    pub id: u64,
}

impl Member {
    /// The member's JSON as etcd stores it in the `members` bucket and in the
    /// ConfChange context (`json.Marshal(*Member)`).
    pub fn json(&self) -> String {
        let mut s = format!("{{\"id\":{},\"peerURLs\":{}", self.id, json_strings(&self.peer_urls));
        if !self.name.is_empty() {
            s.push_str(",\"name\":");
            s.push_str(&json_string(&self.name));
        }
        s.push('}');
        s
    }

    /// The member's `raftAttributes` JSON (the v2 store's record).
    pub fn raft_attributes_json(&self) -> String {
        format!("{{\"peerURLs\":{}}}", json_strings(&self.peer_urls))
    }

    /// The id as etcd prints it (`types.ID.String()`: hex, no padding).
    pub fn id_hex(&self) -> String {
        format!("{:x}", self.id)
    }
}

/// The new cluster: its members (sorted by id, as etcd lists them) and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// The members, by id.
    pub members: Vec<Member>,
    /// The cluster id.
    pub id: u64,
    /// `--initial-cluster-token`.
    pub token: String,
}

impl Cluster {
    /// The cluster of `--initial-cluster` `initial` and `--initial-cluster-token` `token`.
    pub fn parse(initial: &str, token: &str) -> Result<Cluster> {
        let map = parse_urls_map(initial)?;
        if map.is_empty() {
            return Err(refused("initial cluster unset and no discovery URL found"));
        }
        if let Some(dup) = duplicate_url(&map) {
            return Err(refused(format!("initial cluster {} has duplicate url {dup}", map_string(&map))));
        }
        let mut members: Vec<Member> = Vec::with_capacity(map.len());
        for (name, urls) in &map {
            let id = member_id(urls, token);
            if id == 0 {
                return Err(refused(format!("member {name}: cannot use 0 as member id")));
            }
            if members.iter().any(|m| m.id == id) {
                return Err(refused(format!("member {name} has the same id {id:x} as another member")));
            }
            members.push(Member { name: name.clone(), peer_urls: urls.clone(), id });
        }
        members.sort_by_key(|m| m.id);
        let id = cluster_id(&members);
        Ok(Cluster { members, id, token: token.to_string() })
    }

    /// The member named `name`, checked against its `--initial-advertise-peer-urls`
    /// as etcd's `VerifyBootstrap` checks them (exact URLs: no names are resolved).
    pub fn local(&self, name: &str, advertise: &str) -> Result<&Member> {
        let Some(m) = self.members.iter().find(|m| m.name == name) else {
            return Err(refused(format!("couldn't find local name {name:?} in the initial cluster configuration")));
        };
        let ap = parse_urls(&advertise.split(',').map(str::to_string).collect::<Vec<_>>())?;
        let missing: Vec<String> =
            m.peer_urls.iter().filter(|u| !ap.contains(u)).map(|u| format!("{name}={u}")).collect();
        if !missing.is_empty() {
            return Err(refused(format!(
                "--initial-cluster has {} but missing from --initial-advertise-peer-urls={} (URLs are compared as \
                 written; host names are not resolved)",
                missing.join(","),
                ap.join(",")
            )));
        }
        let extra: Vec<&String> = ap.iter().filter(|u| !m.peer_urls.contains(u)).collect();
        if !extra.is_empty() {
            let extra: Vec<&str> = extra.iter().map(|s| s.as_str()).collect();
            return Err(refused(format!(
                "--initial-advertise-peer-urls has {} but missing from --initial-cluster={}",
                extra.join(","),
                ap.iter().map(|u| format!("{name}={u}")).collect::<Vec<_>>().join(",")
            )));
        }
        Ok(m)
    }

    /// The ids, ascending.
    pub fn ids(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.id).collect()
    }
}

fn refused(what: impl Into<String>) -> DataDirError {
    DataDirError::Cluster(what.into())
}

/// `types.NewURLsMap`: `name=url,name=url,…`; a name given twice has several URLs.
fn parse_urls_map(s: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let mut raw: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for part in s.split(',') {
        if part.is_empty() {
            continue;
        }
        let (name, url) = part.split_once('=').unwrap_or((part, ""));
        raw.entry(name.to_string()).or_default().push(url.to_string());
    }
    raw.into_iter().map(|(name, urls)| Ok((name, parse_urls(&urls)?))).collect()
}

/// `types.NewURLs`: each URL checked (scheme, `host:port`, no path) and the list sorted.
fn parse_urls(strs: &[String]) -> Result<Vec<String>> {
    if strs.is_empty() {
        return Err(refused("no valid URLs given"));
    }
    let mut out = Vec::with_capacity(strs.len());
    for s in strs {
        out.push(parse_url(s.trim())?);
    }
    out.sort();
    Ok(out)
}

/// One URL as etcd accepts it, scheme lower-cased.
fn parse_url(s: &str) -> Result<String> {
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(refused(format!("URL scheme must be http, https, unix, or unixs: {s}")));
    };
    let scheme = scheme.to_ascii_lowercase();
    match scheme.as_str() {
        "http" | "https" => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(end);
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if !is_host_port(host) {
                return Err(refused(format!("URL address does not have the form \"host:port\": {s}")));
            }
            let path = tail.split(['?', '#']).next().unwrap_or("");
            if !path.is_empty() {
                return Err(refused(format!("URL must not contain a path: {s}")));
            }
        }
        "unix" | "unixs" => {}
        _ => return Err(refused(format!("URL scheme must be http, https, unix, or unixs: {s}"))),
    }
    Ok(format!("{scheme}://{rest}"))
}

/// `net.SplitHostPort` succeeds: `host:port` or `[v6]:port`, one colon outside brackets.
fn is_host_port(h: &str) -> bool {
    if let Some(v6) = h.strip_prefix('[') {
        return v6.split_once(']').is_some_and(|(_, p)| p.starts_with(':') && !p[1..].contains([':', '[', ']']));
    }
    h.matches(':').count() == 1 && !h.contains(['[', ']'])
}

/// The first URL two members (or one member twice) share.
fn duplicate_url(map: &BTreeMap<String, Vec<String>>) -> Option<String> {
    let mut seen = std::collections::BTreeSet::new();
    map.values().flatten().find(|u| !seen.insert(u.as_str())).cloned()
}

/// `URLsMap.String()`: `name=url` pairs, sorted.
fn map_string(map: &BTreeMap<String, Vec<String>>) -> String {
    let mut pairs: Vec<String> = map.iter().flat_map(|(n, us)| us.iter().map(move |u| format!("{n}={u}"))).collect();
    pairs.sort();
    pairs.join(",")
}

/// `computeMemberID`: the first 8 bytes (big-endian) of SHA-1 over the sorted
/// peer URLs joined and the cluster token.
pub fn member_id(sorted_urls: &[String], token: &str) -> u64 {
    let mut h = Sha1::new();
    for u in sorted_urls {
        h.update(u.as_bytes());
    }
    h.update(token.as_bytes());
    first_u64(&h.finalize())
}

/// `genID`: the first 8 bytes of SHA-1 over the member ids (ascending, big-endian).
pub fn cluster_id(members: &[Member]) -> u64 {
    let mut h = Sha1::new();
    for m in members {
        h.update(m.id.to_be_bytes());
    }
    first_u64(&h.finalize())
}

fn first_u64(digest: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    for (d, s) in b.iter_mut().zip(digest) {
        *d = *s;
    }
    u64::from_be_bytes(b)
}

/// A JSON string as Go's `encoding/json` writes it (HTML-safe escapes).
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len().saturating_add(2));
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON array of strings, as Go writes it.
pub fn json_strings(v: &[String]) -> String {
    format!("[{}]", v.iter().map(|s| json_string(s)).collect::<Vec<_>>().join(","))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// Ids of `etcdutl snapshot restore --initial-cluster
    /// n1=http://127.0.0.1:2380,n2=…:2381,n3=…:2382` with the default token,
    /// read from the `members` bucket etcdutl 3.5.35 wrote.
    #[test]
    fn ids_as_etcd_derives_them() {
        let c = Cluster::parse(
            "n1=http://127.0.0.1:2380,n2=http://127.0.0.1:2381,n3=http://127.0.0.1:2382",
            "etcd-cluster",
        )
        .unwrap();
        let got: Vec<(&str, String)> = c.members.iter().map(|m| (m.name.as_str(), m.id_hex())).collect();
        assert_eq!(
            got,
            [("n2", "9d3e65edfa29c46".into()), ("n3", "9e85cc091d4d15bb".into()), ("n1", "b71f75320dc06a6c".into())]
        );
        assert_eq!(
            c.members[2].json(),
            r#"{"id":13195394291058371180,"peerURLs":["http://127.0.0.1:2380"],"name":"n1"}"#
        );
    }

    #[test]
    fn refusals_as_etcd_words_them() {
        let e = |ic: &str| Cluster::parse(ic, "t").unwrap_err().to_string();
        assert!(
            e("a=http://h:1,b=http://h:1").contains("duplicate url http://h:1"),
            "{}",
            e("a=http://h:1,b=http://h:1")
        );
        assert!(e("a=http://h").contains("does not have the form \"host:port\""));
        assert!(e("a=http://h:1/p").contains("must not contain a path"));
        assert!(e("a=ftp://h:1").contains("scheme must be"));
        assert!(e("").contains("initial cluster unset"));
        let c = Cluster::parse("a=http://h:1,b=http://h:2", "t").unwrap();
        assert!(c.local("c", "http://h:3").unwrap_err().to_string().contains("couldn't find local name \"c\""));
        assert!(c.local("a", "http://h:2").unwrap_err().to_string().contains("--initial-cluster has a=http://h:1"));
        assert!(c.local("a", "http://h:1,http://h:9").unwrap_err().to_string().contains("has http://h:9 but missing"));
        assert_eq!(c.local("a", " http://h:1").unwrap().name, "a");
    }

    #[test]
    fn go_json_escapes() {
        assert_eq!(json_string("a\"<b>&\u{1}é"), "\"a\\\"\\u003cb\\u003e\\u0026\\u0001é\"");
    }
}
