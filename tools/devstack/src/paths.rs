//! Locating things on disk: the repository root (the directory holding the
//! project's `.venv`), the Cargo workspace root and target directory, and the
//! Lambda binaries the caller has built there. Nothing here builds anything.

use std::env;
use std::path::{Path, PathBuf};

/// Environment variable that points [`workspace_binary`] at another directory
/// (for example `target/release` for the benchmark, or a cross-build output).
pub const BIN_DIR_ENV: &str = "DEVSTACK_BIN_DIR";

/// Where the search for the repository starts: the running test's package
/// (cargo sets `CARGO_MANIFEST_DIR` for `cargo test`/`cargo run`), the current
/// directory, then this crate's own source location as a last resort, so a
/// binary started from anywhere inside the checkout still finds its way.
fn start_points() -> Vec<PathBuf> {
    let mut starts = Vec::new();
    if let Some(dir) = env::var_os("CARGO_MANIFEST_DIR") {
        starts.push(PathBuf::from(dir));
    }
    if let Ok(dir) = env::current_dir() {
        starts.push(dir);
    }
    starts.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    starts
}

fn find_upwards(pred: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    start_points().into_iter().find_map(|start| {
        start
            .ancestors()
            .find(|dir| pred(dir))
            .map(Path::to_path_buf)
    })
}

fn is_workspace_root(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .map(|text| text.lines().any(|line| line.trim() == "[workspace]"))
        .unwrap_or(false)
}

/// The Cargo workspace root: the nearest ancestor whose `Cargo.toml` has a
/// `[workspace]` table.
pub fn workspace_root() -> Option<PathBuf> {
    find_upwards(is_workspace_root)
}

/// The repository root: the nearest ancestor holding the project venv
/// (`.venv`), falling back to the workspace root so error messages can still
/// name the path where the venv was expected.
pub fn repo_root() -> Option<PathBuf> {
    find_upwards(|dir| dir.join(".venv").is_dir()).or_else(workspace_root)
}

/// The project venv's Python (where moto, `standardwebhooks` and the other
/// Python tools are installed), or `python3` when there is no venv.
pub fn venv_python() -> PathBuf {
    let python = repo_root()
        .unwrap_or_default()
        .join(".venv")
        .join("bin")
        .join("python");
    if python.is_file() {
        python
    } else {
        PathBuf::from("python3")
    }
}

/// The cargo target directory the current executable was built into.
///
/// Test and bench executables live in `<target>/<profile>/deps`, examples in
/// `<target>/<profile>/examples`; deriving the target directory from them
/// honours `CARGO_TARGET_DIR` and `--target-dir` without having to know them.
pub fn target_dir() -> Option<PathBuf> {
    let from_exe = env::current_exe().ok().and_then(|exe| {
        let parent = exe.parent()?;
        let name = parent.file_name()?.to_str()?;
        if name == "deps" || name == "examples" {
            Some(parent.parent()?.parent()?.to_path_buf())
        } else {
            None
        }
    });
    from_exe
        .or_else(|| {
            env::var_os("CARGO_TARGET_DIR").map(|dir| {
                let dir = PathBuf::from(dir);
                match (dir.is_relative(), workspace_root()) {
                    (true, Some(root)) => root.join(dir),
                    _ => dir,
                }
            })
        })
        .or_else(|| workspace_root().map(|root| root.join("target")))
}

/// Path of a workspace binary built by the caller: `$DEVSTACK_BIN_DIR/<name>`
/// when that variable is set, else `<target dir>/debug/<name>`.
///
/// The path is returned even if nothing is there yet; spawning it reports a
/// clear "build it first" error.
pub fn workspace_binary(name: &str) -> PathBuf {
    if let Some(dir) = env::var_os(BIN_DIR_ENV) {
        return PathBuf::from(dir).join(name);
    }
    target_dir()
        .unwrap_or_else(|| PathBuf::from("target"))
        .join("debug")
        .join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_workspace_that_contains_this_crate() {
        let root = workspace_root().expect("inside a workspace");
        assert!(is_workspace_root(&root));
        assert!(Path::new(env!("CARGO_MANIFEST_DIR")).starts_with(&root));
    }

    #[test]
    fn unit_test_binary_lives_under_the_target_dir() {
        let target = target_dir().expect("target dir");
        let exe = env::current_exe().expect("exe");
        assert!(exe.starts_with(&target), "{exe:?} not under {target:?}");
    }
}
