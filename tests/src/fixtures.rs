//! Where the Hostaway fixtures are: the project's own (always), and the shared
//! conformance corpus beside the clone (required when `CI=true`).

use std::path::{Path, PathBuf};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `tests/fixtures/hostaway`.
pub fn own() -> PathBuf {
    repo_root().join("tests/fixtures/hostaway")
}

/// `HOSTAWAY_FIXTURES_DIR`, else `../shared/fixtures/hostaway` beside the clone.
/// `None` when absent; a panic when absent and `CI=true`.
pub fn shared() -> Option<PathBuf> {
    let dir = std::env::var_os("HOSTAWAY_FIXTURES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/fixtures/hostaway"));
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but the shared Hostaway fixture corpus is missing at {}",
        dir.display()
    );
    None
}

/// The `.json` files of a folder, sorted.
pub fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

pub fn read_json(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}
