//! The Kubernetes objects the test applies, as `k8sdriver apply` takes them.

use serde_json::{json, Value};

use super::NS_A;

pub(crate) fn create(obj: Value) -> Value {
    json!({"op": "create", "object": obj})
}

pub(crate) fn update(obj: Value) -> Value {
    json!({"op": "update", "object": obj})
}

pub(crate) fn delete(obj: Value) -> Value {
    json!({"op": "delete", "object": obj})
}

pub(crate) fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": {"tenant": name}}})
}

pub(crate) fn config_map(ns: &str, name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": ns, "labels": {"app": "e2e"}},
           "data": {"value": value}})
}

pub(crate) fn secret(ns: &str, name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": name, "namespace": ns},
           "stringData": {"password": value}})
}

pub(crate) fn widget_crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                    "versions": [{"name": "v1", "served": true, "storage": true,
                                  "schema": {"openAPIV3Schema": {"type": "object",
                                             "x-kubernetes-preserve-unknown-fields": true}}}]}})
}

pub(crate) fn widget(name: &str, size: u32) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget",
           "metadata": {"name": name, "namespace": NS_A}, "spec": {"size": size}})
}

pub(crate) fn event(name: &str, about: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Event",
           "metadata": {"name": name, "namespace": NS_A},
           "involvedObject": {"kind": "ConfigMap", "namespace": NS_A, "name": about, "apiVersion": "v1"},
           "reason": "E2E", "message": format!("about {about}"), "type": "Normal",
           "source": {"component": "k8s-e2e"}, "count": 1})
}
