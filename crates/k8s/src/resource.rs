//! Which Kubernetes resource an etcd key holds, and which `resources:` rule
//! of an EncryptionConfiguration covers it.
//!
//! Keys: kube-apiserver stores an object at `<--etcd-prefix>/<resource
//! prefix>/[<namespace>/]<name>`; the resource prefix is the resource's
//! plural for built-in resources (with the exceptions of kubernetes
//! pkg/kubeapiserver `SpecialDefaultResourcePrefixes`: `controllers`,
//! `services/endpoints`, `minions`, `services/specs`, `ingress`) and
//! `<group>/<plural>` for custom resources and aggregated APIs
//! (apiextensions-apiserver's `ResourcePrefix`). The group of a built-in
//! resource is not in its key: it comes from the table below (Kubernetes
//! 1.37's pkg/registry). A key is placed by its first `/registry/` segment,
//! so any `--etcd-prefix` ending in `/registry` works.
//!
//! Rules (k8s.io/apiserver encryptionconfig `transformerFromOverrides`): the
//! providers of every entry naming the exact group/resource, else those of
//! `*.<group>`, else `*.*`; a resource no rule covers is read as identity.

use std::fmt;

/// A group and resource as `schema.GroupResource` (`""` is the core group).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupResource {
    /// API group (`""` for the core group, `*` for any).
    pub group: String,
    /// Plural resource name (`*` for any).
    pub resource: String,
}

impl GroupResource {
    /// As `schema.ParseGroupResource`: the part before the first `.` is the resource.
    pub fn parse(s: &str) -> Self {
        match s.split_once('.') {
            Some((r, g)) => Self { group: g.to_string(), resource: r.to_string() },
            None => Self { group: String::new(), resource: s.to_string() },
        }
    }

    /// `*.<group>`.
    pub fn any_in_group(&self) -> Self {
        Self { group: self.group.clone(), resource: "*".into() }
    }

    /// `*.*`.
    pub fn any() -> Self {
        Self { group: "*".into(), resource: "*".into() }
    }
}

impl fmt::Display for GroupResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.group.is_empty() {
            if self.resource == "*" {
                // As the config writes it (upstream `grYAMLString`).
                return f.write_str("*.");
            }
            return f.write_str(&self.resource);
        }
        write!(f, "{}.{}", self.resource, self.group)
    }
}

/// Built-in resources outside the core group whose keys name only the resource.
const GROUPS: &[(&str, &str)] = &[
    ("mutatingadmissionpolicies", "admissionregistration.k8s.io"),
    ("mutatingadmissionpolicybindings", "admissionregistration.k8s.io"),
    ("mutatingwebhookconfigurations", "admissionregistration.k8s.io"),
    ("validatingadmissionpolicies", "admissionregistration.k8s.io"),
    ("validatingadmissionpolicybindings", "admissionregistration.k8s.io"),
    ("validatingwebhookconfigurations", "admissionregistration.k8s.io"),
    ("storageversions", "internal.apiserver.k8s.io"),
    ("controllerrevisions", "apps"),
    ("daemonsets", "apps"),
    ("deployments", "apps"),
    ("replicasets", "apps"),
    ("statefulsets", "apps"),
    ("horizontalpodautoscalers", "autoscaling"),
    ("cronjobs", "batch"),
    ("jobs", "batch"),
    ("certificatesigningrequests", "certificates.k8s.io"),
    ("clustertrustbundles", "certificates.k8s.io"),
    ("podcertificaterequests", "certificates.k8s.io"),
    ("leases", "coordination.k8s.io"),
    ("leasecandidates", "coordination.k8s.io"),
    ("endpointslices", "discovery.k8s.io"),
    ("flowschemas", "flowcontrol.apiserver.k8s.io"),
    ("prioritylevelconfigurations", "flowcontrol.apiserver.k8s.io"),
    ("ingressclasses", "networking.k8s.io"),
    ("ipaddresses", "networking.k8s.io"),
    ("networkpolicies", "networking.k8s.io"),
    ("servicecidrs", "networking.k8s.io"),
    ("runtimeclasses", "node.k8s.io"),
    ("poddisruptionbudgets", "policy"),
    ("clusterrolebindings", "rbac.authorization.k8s.io"),
    ("clusterroles", "rbac.authorization.k8s.io"),
    ("rolebindings", "rbac.authorization.k8s.io"),
    ("roles", "rbac.authorization.k8s.io"),
    ("deviceclasses", "resource.k8s.io"),
    ("devicetaintrules", "resource.k8s.io"),
    ("resourceclaims", "resource.k8s.io"),
    ("resourceclaimtemplates", "resource.k8s.io"),
    ("resourceslices", "resource.k8s.io"),
    ("priorityclasses", "scheduling.k8s.io"),
    ("csidrivers", "storage.k8s.io"),
    ("csinodes", "storage.k8s.io"),
    ("csistoragecapacities", "storage.k8s.io"),
    ("storageclasses", "storage.k8s.io"),
    ("volumeattachments", "storage.k8s.io"),
    ("volumeattributesclasses", "storage.k8s.io"),
    ("storageversionmigrations", "storagemigration.k8s.io"),
];

/// The resource an etcd key holds, or None for a key outside `…/registry/<resource>/…`.
pub fn resource_of(key: &[u8]) -> Option<GroupResource> {
    const SEG: &[u8] = b"/registry/";
    let at = key.windows(SEG.len()).position(|w| w == SEG)?;
    let rest = key.get(at.checked_add(SEG.len())?..)?;
    let rest = std::str::from_utf8(rest).ok()?;
    let mut parts = rest.split('/');
    let first = parts.next().filter(|s| !s.is_empty())?;
    let second = parts.next();
    // A key must have a name below its resource prefix.
    let second = second.filter(|s| !s.is_empty())?;
    let gr = |g: &str, r: &str| Some(GroupResource { group: g.to_string(), resource: r.to_string() });
    if first.contains('.') {
        // `<group>/<plural>/…`: custom resources, aggregated and apiextensions objects.
        return parts.next().and_then(|_| gr(first, second));
    }
    match (first, second) {
        ("services", "specs") => gr("", "services"),
        ("services", "endpoints") => gr("", "endpoints"),
        ("controllers", _) => gr("", "replicationcontrollers"),
        ("minions", _) => gr("", "nodes"),
        ("ingress", _) => gr("networking.k8s.io", "ingresses"),
        _ => match GROUPS.iter().find(|(r, _)| *r == first) {
            Some((r, g)) => gr(g, r),
            None => gr("", first),
        },
    }
}

/// What the rules give `gr`: the exact rule's, else `*.<group>`'s, else `*.*`'s.
pub(crate) fn covering<'c, T>(rules: &'c [(GroupResource, T)], gr: &GroupResource) -> Option<&'c T> {
    let find = |want: &GroupResource| rules.iter().find(|(g, _)| g == want).map(|(_, t)| t);
    find(gr).or_else(|| find(&gr.any_in_group())).or_else(|| find(&GroupResource::any()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(key: &str) -> Option<String> {
        resource_of(key.as_bytes()).map(|g| g.to_string())
    }

    #[test]
    fn keys_map_to_resources() {
        assert_eq!(r("/registry/secrets/default/s").as_deref(), Some("secrets"));
        assert_eq!(r("/tenant-a/registry/configmaps/ns/cm").as_deref(), Some("configmaps"));
        assert_eq!(r("/registry/deployments/ns/d").as_deref(), Some("deployments.apps"));
        assert_eq!(r("/registry/services/specs/ns/s").as_deref(), Some("services"));
        assert_eq!(r("/registry/services/endpoints/ns/s").as_deref(), Some("endpoints"));
        assert_eq!(r("/registry/minions/n1").as_deref(), Some("nodes"));
        assert_eq!(r("/registry/ingress/ns/i").as_deref(), Some("ingresses.networking.k8s.io"));
        assert_eq!(r("/registry/example.com/widgets/ns/w").as_deref(), Some("widgets.example.com"));
        assert_eq!(
            r("/registry/apiregistration.k8s.io/apiservices/v1.x").as_deref(),
            Some("apiservices.apiregistration.k8s.io")
        );
        assert_eq!(r("/registry/example.com/widgets"), None, "no name");
        assert_eq!(r("/registry/secrets"), None);
        assert_eq!(r("compact_rev_key"), None);
        assert_eq!(r("/other/secrets/a"), None);
    }

    #[test]
    fn rules_cover_exact_then_group_then_any() {
        let rules = vec![
            (GroupResource::parse("secrets"), 1),
            (GroupResource::parse("*.apps"), 2),
            (GroupResource::parse("*."), 3),
            (GroupResource::parse("*.*"), 4),
        ];
        let at = |s: &str| covering(&rules, &GroupResource::parse(s)).copied();
        assert_eq!(at("secrets"), Some(1));
        assert_eq!(at("deployments.apps"), Some(2));
        assert_eq!(at("configmaps"), Some(3));
        assert_eq!(at("widgets.example.com"), Some(4));
        assert_eq!(covering(&rules[..1], &GroupResource::parse("configmaps")), None);
        assert_eq!(GroupResource::parse("*.").to_string(), "*.");
        assert_eq!(GroupResource::parse("*.*").to_string(), "*.*");
    }
}
