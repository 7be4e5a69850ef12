//! Build script: names the commit the binary is built from in `chinwag --version`, from
//! `CHINWAG_COMMIT` (e.g. a container build argument) or from git when the source is a checkout.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=CHINWAG_COMMIT");
    println!("cargo:rerun-if-changed=build.rs");
    let version = env!("CARGO_PKG_VERSION");
    let commit = std::env::var("CHINWAG_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]));
    // A new commit moves HEAD's ref (or packed-refs): rebuild the version string then. Each
    // path is asked of git, so that a linked worktree's branch ref (in the shared git
    // directory) is watched, not a path under the worktree's own.
    let watched = ["HEAD".to_string(), "packed-refs".to_string()]
        .into_iter()
        .chain(git(&["symbolic-ref", "-q", "HEAD"]));
    for name in watched {
        let path = git(&["rev-parse", "--path-format=absolute", "--git-path", &name]);
        if let Some(path) = path.filter(|p| std::path::Path::new(p).exists()) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    let full = match commit {
        Some(c) => format!("{version} (commit {})", c.trim()),
        None => version.to_string(),
    };
    println!("cargo:rustc-env=CHINWAG_VERSION={full}");
}
