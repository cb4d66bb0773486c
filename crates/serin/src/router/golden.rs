//! Test only: golden-file comparison of rendered objects.
//!
//! Expected objects are stored as YAML under `crates/serin/src/<dir>/testdata/`. Run the tests with
//! `SERIN_UPDATE_GOLDEN=1` to (re)write the files, then review the diff before committing.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

/// Compares `value` (serialised as YAML) with the golden file `src/<rel_path>`.
pub fn assert_golden<T: serde::Serialize>(rel_path: &str, value: &T) {
    let value = serde_json::to_value(value).unwrap();
    let actual = serde_saphyr::to_string(&value).unwrap();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src")
        .join(rel_path);
    if std::env::var("SERIN_UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "golden file {} unreadable ({e}); run with SERIN_UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "rendered objects differ from {} (SERIN_UPDATE_GOLDEN=1 rewrites it)\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        );
    }
}
