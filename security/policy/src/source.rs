//! Gathering what the engine compiles: the builtin policies, a policy directory that replaces
//! or adds to them, and the data documents. Nothing here knows Rego beyond file names; the
//! engine ([`crate::policies`]) compiles and checks what this module gathers.
//!
//! Policy directory rules: every `*.rego` file directly in the directory is a policy named
//! after its file stem. A file named like a builtin (`tokens_expired.rego`) replaces that
//! builtin and keeps its place and its scope; any other file adds a policy, evaluated after the
//! builtins (in file-name order) for every call. Other files and subdirectories are ignored.

use std::path::{Path, PathBuf};

use crate::builtin::BUILTINS;
use crate::error::LoadError;

/// One policy's source.
#[derive(Debug, Clone)]
pub(crate) struct PolicySource {
    /// The policy name: the builtin's name or the file stem.
    pub(crate) name: String,
    /// What error messages call the file: its path, or `builtin:<name>.rego`.
    pub(crate) origin: String,
    pub(crate) rego: String,
}

/// One data document, merged into `data`.
#[derive(Debug, Clone)]
pub(crate) struct DataSource {
    pub(crate) origin: String,
    pub(crate) document: serde_json::Value,
}

pub(crate) fn builtin_sources() -> Vec<PolicySource> {
    BUILTINS
        .iter()
        .map(|builtin| PolicySource {
            name: builtin.name.to_owned(),
            origin: format!("builtin:{}.rego", builtin.name),
            rego: builtin.rego.to_owned(),
        })
        .collect()
}

/// Overlays the policy files of `dir` on `sources`.
pub(crate) fn overlay_policy_dir(
    sources: &mut Vec<PolicySource>,
    dir: &Path,
) -> Result<(), LoadError> {
    for file in rego_files(dir)? {
        let Some(name) = file.file_stem().and_then(|stem| stem.to_str()) else {
            continue;
        };
        let rego = read(&file)?;
        let source = PolicySource {
            name: name.to_owned(),
            origin: file.display().to_string(),
            rego,
        };
        match sources.iter_mut().find(|known| known.name == source.name) {
            Some(builtin) => *builtin = source,
            None => sources.push(source),
        }
    }
    Ok(())
}

/// The `*.rego` files directly in `dir`, sorted by name.
fn rego_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let read_error = |source| LoadError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        if path.is_file() && path.extension().is_some_and(|ext| ext == "rego") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

pub(crate) fn read_data_file(path: &Path) -> Result<DataSource, LoadError> {
    let text = read(path)?;
    let document = serde_json::from_str(&text).map_err(|source| LoadError::DataSyntax {
        path: path.to_owned(),
        source,
    })?;
    let data = DataSource {
        origin: path.display().to_string(),
        document,
    };
    check_allow_list_shape(&data)?;
    Ok(data)
}

pub(crate) fn in_memory_data(document: serde_json::Value) -> Result<DataSource, LoadError> {
    let data = DataSource {
        origin: "in-memory data".to_owned(),
        document,
    };
    check_allow_list_shape(&data)?;
    Ok(data)
}

fn read(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The allow list fails closed on a malformed entry (it matches nothing), so a typo would
/// refuse every client; say so at start instead.
fn check_allow_list_shape(data: &DataSource) -> Result<(), LoadError> {
    let shape_error = |problem: String| LoadError::DataShape {
        origin: data.origin.clone(),
        problem,
    };
    let document = data
        .document
        .as_object()
        .ok_or_else(|| shape_error("a data document must be a JSON object".to_owned()))?;
    let Some(services) = document.get("services") else {
        return Ok(());
    };
    let services = services
        .as_object()
        .ok_or_else(|| shape_error("`services` must be an object".to_owned()))?;
    for (service, identities) in services {
        let all_strings = identities
            .as_array()
            .is_some_and(|list| list.iter().all(serde_json::Value::is_string));
        if !all_strings {
            return Err(shape_error(format!(
                "`services.{service}` must be a list of SPIFFE ID patterns, as in {{\"services\": {{\"{service}\": [\"spiffe://example.org/ns/blue/*\"]}}}}"
            )));
        }
    }
    Ok(())
}
