//! Conformance of the codec with vpp_papi, VPP's reference Python client. For every case in
//! `tests/papi/cases.json` (written by `python3 vpp/client/tests/papi/gen_cases.py`),
//! `tests/papi/papi_codec.py` has vpp_papi 2.4.2 encode the case from the same
//! `api/*.api.json` and decode its own bytes; this test then requires that
//! - `dynamic::encode_json` makes exactly vpp_papi's bytes (or refuses what vpp_papi refuses),
//! - `dynamic::decode_json` of those bytes gives back the case's header and fields,
//! - vpp_papi's decoding, put back in the canonical form, is the case's fields too (so the
//!   Python conversion is faithful and the comparison means something),
//! - every message of `dynamic::message_names()` has a case.
//!
//! Without vpp_papi the test is skipped, except under `CI=true`, where it fails.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use nsm_vpp::dynamic::{self, Header};
use serde_json::{Value, json};

const PAPI_VERSION: &str = "2.4.2";

#[test]
fn codec_matches_vpp_papi() {
    if !papi_installed() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cases = std::fs::read_to_string(root.join("tests/papi/cases.json")).expect("cases.json");
    let cases: Value = serde_json::from_str(&cases).expect("cases.json is JSON");
    let cases = cases["cases"]
        .as_array()
        .expect("cases.json has a cases list");
    let results = papi(&json!({ "apidir": root.join("api"), "cases": cases }));
    assert_eq!(
        results.len(),
        cases.len(),
        "papi_codec.py answered every case"
    );

    let mut failures: Vec<String> = cases
        .iter()
        .zip(&results)
        .filter_map(|(case, result)| {
            let what = format!(
                "{} ({})",
                case["message"].as_str().unwrap_or("?"),
                case["name"]
            );
            check(case, result)
                .err()
                .map(|why| format!("{what}: {why}"))
        })
        .collect();
    let covered: BTreeSet<&str> = cases.iter().filter_map(|c| c["message"].as_str()).collect();
    for name in dynamic::message_names() {
        if !covered.contains(name) {
            failures.push(format!(
                "{name}: no case in tests/papi/cases.json (add it to gen_cases.py)"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vpp_papi conformance checks failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// One case against vpp_papi's result for it.
fn check(case: &Value, result: &Value) -> Result<(), String> {
    let message = case["message"].as_str().ok_or("case without a message")?;
    let header: Header = serde_json::from_value(case["header"].clone())
        .map_err(|e| format!("case header {}: {e}", case["header"]))?;
    let fields = &case["fields"];
    let refuse = case["refuse"] == json!(true);
    let encoded = dynamic::encode_json(message, &header, fields);

    if let Some(why) = result["error"].as_str() {
        if !refuse {
            return Err(format!("vpp_papi refuses a case meant to be valid: {why}"));
        }
        return match encoded {
            Err(_) => Ok(()),
            Ok(bytes) => Err(format!(
                "vpp_papi refuses it ({why}) but encode_json accepts it: {}",
                hex(&bytes)
            )),
        };
    }
    if refuse {
        return Err("vpp_papi accepts a case meant to be refused".into());
    }
    let papi_hex = result["hex"].as_str().ok_or("result without hex")?;
    let papi_bytes = unhex(papi_hex);
    let papi_header: Header =
        serde_json::from_value(result["header"].clone()).map_err(|e| format!("header: {e}"))?;

    let ours = encoded.map_err(|e| format!("encode_json refuses what vpp_papi encodes: {e}"))?;
    if ours != papi_bytes {
        let at = ours
            .iter()
            .zip(&papi_bytes)
            .take_while(|(a, b)| a == b)
            .count();
        return Err(format!(
            "bytes differ from offset {at} (lengths: ours {}, vpp_papi {})\n  vpp_papi: {papi_hex}\n  ours:     {}",
            ours.len(),
            papi_bytes.len(),
            hex(&ours)
        ));
    }
    let (decoded_header, decoded) = dynamic::decode_json(message, &papi_bytes)
        .map_err(|e| format!("decode_json of vpp_papi's bytes fails: {e}"))?;
    if decoded_header != papi_header {
        return Err(format!(
            "decoded header {decoded_header:?}, vpp_papi decodes {papi_header:?}"
        ));
    }
    let shape = &result["shape"];
    let in_shape = |key: &str| shape.as_array().is_some_and(|s| s.contains(&json!(key)));
    let expected_header = Header {
        msg_id: header.msg_id,
        client_index: if in_shape("client_index") {
            header.client_index
        } else {
            0
        },
        context: if in_shape("context") {
            header.context
        } else {
            0
        },
    };
    if papi_header != expected_header {
        return Err(format!(
            "vpp_papi decodes header {papi_header:?}, the case has {expected_header:?} (shape {shape})"
        ));
    }
    if &decoded != fields {
        return Err(format!(
            "decode_json gives\n  {decoded}\nthe case has\n  {fields}"
        ));
    }
    if &result["decoded"] != fields {
        return Err(format!(
            "papi_codec.py's conversion is not faithful: vpp_papi decodes\n  {}\nthe case has\n  {fields}",
            result["decoded"]
        ));
    }
    Ok(())
}

/// Whether python3 can import vpp_papi, in the version the cases were checked with; under
/// CI it must.
fn papi_installed() -> bool {
    let check = format!("import sys, vpp_papi; sys.exit(vpp_papi.__version__ != '{PAPI_VERSION}')");
    let imported = Command::new("python3")
        .args(["-c", &check])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if imported {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but python3 cannot import vpp_papi {PAPI_VERSION}: pip install vpp_papi=={PAPI_VERSION}"
    );
    eprintln!(
        "skipped: python3 cannot import vpp_papi {PAPI_VERSION} (pip install vpp_papi=={PAPI_VERSION})"
    );
    false
}

/// papi_codec.py's results for a request.
fn papi(request: &Value) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/papi/papi_codec.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = request.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("papi_codec.py runs");
    writer
        .join()
        .expect("writer thread")
        .expect("write to papi_codec.py");
    assert!(
        output.status.success(),
        "{} failed ({}):\n{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).expect("papi_codec.py prints JSON");
    answer["results"]
        .as_array()
        .expect("a results list")
        .clone()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex from papi_codec.py"))
        .collect()
}
