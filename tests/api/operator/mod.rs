//! What an operator meets through the real binary: clear refusals (a second server on one data
//! directory, a token without a secret, a taken address), the command line's forms (`:PORT`,
//! `--ttl 1h`), `--version`, `chinwag health`, `chinwag backup` restored into a new server, the
//! metrics address, the request log as JSON lines, and the allocator's settings.

mod refusals;
mod running;

use std::process::{Command, Output, Stdio};

use crate::helpers::binary::BIN;

/// Runs `chinwag ARGS` in `cwd` to its end.
fn chinwag(cwd: &std::path::Path, args: &[&str]) -> Output {
    chinwag_with(cwd, args, &[])
}

/// [`chinwag`] with `env` added to its environment.
fn chinwag_with(cwd: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
