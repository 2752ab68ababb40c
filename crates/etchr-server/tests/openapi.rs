//! The committed `openapi.yaml` must be exactly what the code generates.

use serde_json::Value;

const REGENERATE: &str = "cargo run -- openapi > openapi.yaml";

#[test]
fn committed_openapi_yaml_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.yaml");
    let committed = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("could not read {path} ({e}); generate it with `{REGENERATE}`"));
    let generated = etchr_server::openapi::yaml();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()));
        panic!(
            "openapi.yaml is stale (first difference at line {}); regenerate it with `{REGENERATE}`",
            line + 1
        );
    }
}

#[test]
fn document_covers_the_api() {
    use utoipa::OpenApi;
    let doc: Value = serde_json::to_value(etchr_server::openapi::ApiDoc::openapi()).unwrap();
    for path in ["/v1/edit", "/healthz", "/readyz", "/metrics"] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    let edit = &doc["paths"]["/v1/edit"]["post"];
    for ct in ["application/json", "multipart/form-data"] {
        assert!(
            edit["requestBody"]["content"][ct].is_object(),
            "missing request body {ct}"
        );
    }
    for status in ["200", "400", "413", "415", "422"] {
        assert!(
            edit["responses"][status].is_object(),
            "missing response {status}"
        );
    }
    let ops = doc["components"]["schemas"]["Op"]["oneOf"]
        .as_array()
        .expect("Op is a oneOf");
    assert!(ops.len() >= 20);
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}
