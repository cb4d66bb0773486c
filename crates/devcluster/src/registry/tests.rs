#![allow(clippy::unwrap_used)]
use super::*;
use serde_json::json;

#[test]
fn versions_sort_ga_first() {
    let mut v = vec!["v1beta1", "v2", "v1", "v2alpha1"];
    v.sort_by_key(|x| std::cmp::Reverse(version_priority(x)));
    assert_eq!(v, ["v2", "v1", "v1beta1", "v2alpha1"]);
}

#[test]
fn crd_registration_reads_names_scope_and_subresources() {
    let mut r = Registry::new();
    let crd = json!({"metadata":{"name":"canaries.flagger.app"},"spec":{"group":"flagger.app","scope":"Namespaced",
        "names":{"plural":"canaries","kind":"Canary","shortNames":["canary"]},
        "versions":[{"name":"v1beta1","served":true,"storage":true,"subresources":{"status":{}},
          "additionalPrinterColumns":[{"name":"Status","type":"string","jsonPath":".status.phase"}]}]}});
    let d = r.register_crd(&crd).unwrap();
    assert_eq!(d.singular, "canary");
    assert!(d.status && d.namespaced && d.scale.is_none());
    assert_eq!(d.columns["v1beta1"][0].json_path, ".status.phase");
    assert!(r.lookup("flagger.app", "v1beta1", "canaries").is_some());
    let bad = json!({"metadata":{"name":"x.flagger.app"},"spec":{"group":"flagger.app",
        "names":{"plural":"canaries","kind":"Canary"},"versions":[{"name":"v1","served":true,"storage":true}]}});
    assert_eq!(r.register_crd(&bad).unwrap_err().code, 422);
}
