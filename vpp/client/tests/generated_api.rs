//! `src/api.rs` is what the generator makes of `api/*.api.json`: the test fails on any
//! difference, and `NSM_VPP_REGENERATE=1` rewrites the file instead.

mod codegen;

use std::path::Path;

#[test]
fn generated_api_matches_the_json_definitions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let generated = codegen::generate(&root.join("api"));
    let path = root.join("src/api.rs");
    if std::env::var_os("NSM_VPP_REGENERATE").is_some() {
        std::fs::write(&path, &generated).expect("write src/api.rs");
        return;
    }
    let current = std::fs::read_to_string(&path).expect("read src/api.rs");
    assert!(
        current == generated,
        "src/api.rs is not what vpp/api/*.api.json generate; run \
         `NSM_VPP_REGENERATE=1 cargo test -p nsm-vpp --test generated_api` and review the diff"
    );
}
