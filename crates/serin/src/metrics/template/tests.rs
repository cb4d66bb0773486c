#![allow(clippy::unwrap_used)]
use super::*;

fn model() -> QueryModel {
    QueryModel {
        name: "podinfo".into(),
        namespace: "test".into(),
        target: "podinfo".into(),
        service: "podinfo-svc".into(),
        ingress: "podinfo-ing".into(),
        route: "podinfo-route".into(),
        interval: "1m".into(),
        variables: BTreeMap::from([("direction".into(), "inbound".into())]),
    }
}

fn r(t: &str) -> String {
    render(t, &model()).unwrap()
}

#[test]
fn functions_with_any_spacing() {
    assert_eq!(
        r("{{ namespace }}/{{target}}/{{  interval  }}"),
        "test/podinfo/1m"
    );
    assert_eq!(
        r("{{ name }} {{ service }} {{ ingress }} {{ route }}"),
        "podinfo podinfo-svc podinfo-ing podinfo-route"
    );
    assert_eq!(r("no actions at all"), "no actions at all");
    assert_eq!(r(""), "");
}

#[test]
fn variables_map_access() {
    assert_eq!(r(r#"dir="{{ variables.direction }}""#), r#"dir="inbound""#);
    assert_eq!(r(r#"{{ index variables "direction" }}"#), "inbound");
    assert_eq!(
        render("{{ variables.missing }}", &model()).unwrap_err(),
        TemplateError::MissingKey("missing".into())
    );
    assert_eq!(
        render(r#"{{ index variables "nope" }}"#, &model()).unwrap_err(),
        TemplateError::MissingKey("nope".into())
    );
}

#[test]
fn trim_markers() {
    assert_eq!(r("a  \n {{- namespace -}} \n  b"), "atestb");
    assert_eq!(r("a {{- namespace }} b"), "atest b");
    assert_eq!(r("a {{ namespace -}} b"), "a testb");
    // `{{-3}}` is a number, not a trim marker.
    assert_eq!(r("a {{-3}}"), "a -3");
}

#[test]
fn variable_declaration_and_printf() {
    let t = r#"{{- $route := printf "kube(ew)?_%s__%s_canary__.*__%s_canary(_[0-9]+)?" namespace ingress service }}route=~"{{ $route }}""#;
    assert_eq!(
        r(t),
        r#"route=~"kube(ew)?_test__podinfo-ing_canary__.*__podinfo-svc_canary(_[0-9]+)?""#
    );
    assert_eq!(
        r("{{ $x := namespace }}{{ $x = target }}{{ $x }}"),
        "podinfo"
    );
    assert_eq!(
        render("{{ $nope }}", &model()).unwrap_err(),
        TemplateError::UndefinedVariable("$nope".into())
    );
}

#[test]
fn pipelines_and_parens() {
    assert_eq!(r(r#"{{ namespace | printf "%s-x" }}"#), "test-x");
    assert_eq!(
        r(r#"{{ printf "%s/%s" (namespace) target }}"#),
        "test/podinfo"
    );
    assert_eq!(r(r#"{{ "a b&c" | urlquery }}"#), "a+b%26c");
    assert_eq!(r(r#"{{ len namespace }}"#), "4");
    assert_eq!(r(r#"{{ print 1 2 "x" 3 }}"#), "1 2x3");
    assert_eq!(
        r(r#"{{ printf "%d%% %s %v" 5 }}"#),
        "5% %!s(MISSING) %!v(MISSING)"
    );
    assert_eq!(
        r(r#"{{ printf "%05.1f|%-4s|%q" 3.14159 "ab" "c" }}"#),
        r#"003.1|ab  |"c""#
    );
    assert_eq!(r(r#"{{ printf "%s" "a" "b" }}"#), "a%!(EXTRA string=b)");
    assert_eq!(r("{{/* a comment */}}x"), "x");
    assert_eq!(r(r#"{{ "}}" }}"#), "}}");
}

#[test]
fn errors_name_the_construct() {
    let m = model();
    match render("{{ if namespace }}x{{ end }}", &m).unwrap_err() {
        TemplateError::Unsupported { construct, .. } => assert_eq!(construct, "if"),
        e => panic!("{e}"),
    }
    match render("{{ .namespace }}", &m).unwrap_err() {
        TemplateError::Unsupported { construct, .. } => assert_eq!(construct, ".namespace"),
        e => panic!("{e}"),
    }
    assert_eq!(
        render("{{ nmespace }}", &m).unwrap_err(),
        TemplateError::UnknownFunction("nmespace".into())
    );
    assert!(matches!(
        render("{{ namespace ", &m).unwrap_err(),
        TemplateError::Syntax { .. }
    ));
    assert!(matches!(
        render(r#"{{ "abc }}"#, &m).unwrap_err(),
        TemplateError::Syntax { .. }
    ));
    assert!(matches!(
        render("{{ }}", &m).unwrap_err(),
        TemplateError::Syntax { .. }
    ));
    assert!(matches!(
        render("{{ namespace target }}", &m).unwrap_err(),
        TemplateError::Exec { .. }
    ));
    assert!(matches!(
        render("{{ namespace.x }}", &m).unwrap_err(),
        TemplateError::Exec { .. }
    ));
    assert!(matches!(
        render("{{ (namespace }}", &m).unwrap_err(),
        TemplateError::Syntax { .. }
    ));
    assert!(matches!(
        render("{{ eq 1 1 }}", &m).unwrap_err(),
        TemplateError::Unsupported { .. }
    ));
    let msg = render("{{ range $x := variables }}{{ end }}", &m)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("\"range\""), "{msg}");
}

#[test]
fn whitespace_collapse_and_skipper() {
    assert_eq!(
        collapse_whitespace("  sum(\n\trate(x[1m])\n)  \n"),
        "sum( rate(x[1m]) )"
    );
    assert_eq!(skipper_sanitize("my-app.v1/x"), "my_app_v1_x");
}

#[test]
fn go_float_formatting() {
    assert_eq!(go_float(99.0), "99");
    assert_eq!(go_float(99.5), "99.5");
    assert_eq!(go_float(0.00001), "1e-05");
    assert_eq!(go_float(1e21), "1e+21");
}

#[test]
fn seed_not_found_percentage_template() {
    let q = "100 - sum(\n    rate(\n        istio_requests_total{\n          reporter=\"destination\",\n          destination_workload_namespace=\"{{ namespace }}\",\n          destination_workload=\"{{ target }}\",\n          response_code!=\"404\"\n        }[{{ interval }}]\n    )\n)\n/\nsum(\n    rate(\n        istio_requests_total{\n          reporter=\"destination\",\n          destination_workload_namespace=\"{{ namespace }}\",\n          destination_workload=\"{{ target }}\"\n        }[{{ interval }}]\n    )\n) * 100\n";
    assert_eq!(
        collapse_whitespace(&r(q)),
        "100 - sum( rate( istio_requests_total{ reporter=\"destination\", destination_workload_namespace=\"test\", destination_workload=\"podinfo\", response_code!=\"404\" }[1m] ) ) / sum( rate( istio_requests_total{ reporter=\"destination\", destination_workload_namespace=\"test\", destination_workload=\"podinfo\" }[1m] ) ) * 100"
    );
}
