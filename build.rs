//! Build script: names the commit the binary is built from in `chinwag --version`, from
//! `CHINWAG_COMMIT` (e.g. a container build argument) or from git when the source is a checkout;
//! and lists the browser's files in `web/` for the binary to embed (`src/http/web.rs`).

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Writes `$OUT_DIR/web.rs`: one `(name, bytes, etag)` per file directly in `web/`, sorted by
/// name, the ETag a hash of the bytes. Cargo reruns this when a file there changes or is added.
fn web_assets() {
    // Read when the script runs, not when it is compiled: a compiled build script can be reused
    // for the same package checked out elsewhere (one target directory for two trees).
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = std::path::Path::new(&root).join("web");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(e) => panic!("{} is needed (the browser's files): {e}", dir.display()),
    };
    files.retain(|p| p.is_file());
    files.sort();
    let mut out = String::from("&[\n");
    for path in files {
        println!("cargo:rerun-if-changed={}", path.display());
        let bytes = std::fs::read(&path).expect("a file in web/ reads");
        // FNV-1a: enough to tell two builds' files apart in a validator.
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a UTF-8 name");
        out += &format!(
            "    ({name:?}, include_bytes!({:?}), \"\\\"{hash:016x}\\\"\"),\n",
            path.display().to_string()
        );
    }
    out += "]\n";
    let target =
        std::path::Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("web.rs");
    std::fs::write(target, out).expect("OUT_DIR is writable");
}

fn main() {
    web_assets();
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
