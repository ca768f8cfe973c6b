//! `docker run`-style flags shared by `bundle` and `run`, and the [`RunOptions`] they make.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use strata::bundle::env_file::parse_env_file;
use strata::bundle::mounts::{parse_mount, parse_tmpfs, parse_volume};
use strata::bundle::security_opt::{SecurityOpt, parse_security_opt};
use strata::bundle::{Network, RunOptions};

/// `docker run`-style process options shared by `bundle` and `run`.
#[derive(Debug, Args)]
pub struct ProcessArgs {
    /// Set an environment variable (KEY=VALUE, or KEY to take it from this environment)
    #[arg(short, long = "env", value_name = "KEY[=VALUE]")]
    env: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long = "workdir", value_name = "DIR")]
    workdir: Option<String>,
    /// User inside the container: name|uid[:group|gid]
    #[arg(short, long, value_name = "USER[:GROUP]")]
    user: Option<String>,
    /// Override the image's entrypoint ("" clears it)
    #[arg(long)]
    entrypoint: Option<String>,
    /// Allocate a terminal
    #[arg(short, long)]
    tty: bool,
    /// Mount the rootfs read-only in the runtime (mounts stay writable unless :ro)
    #[arg(long)]
    read_only: bool,
    /// Read environment variables from a file (KEY=VALUE lines, # comments, KEY alone from
    /// this environment); -e wins
    #[arg(long = "env-file", value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Bind-mount an absolute host path (created as a directory if missing)
    #[arg(short = 'v', long = "volume", value_name = "HOST:CONTAINER[:ro|rw]")]
    volume: Vec<String>,
    /// Mount: type=bind,source=HOST,target=PATH[,readonly] or type=tmpfs,target=PATH[,tmpfs-size=N][,tmpfs-mode=MODE]
    #[arg(long = "mount", value_name = "SPEC")]
    mount: Vec<String>,
    /// Mount a tmpfs (options: size=64m,mode=1777,exec,...)
    #[arg(long = "tmpfs", value_name = "PATH[:OPTIONS]")]
    tmpfs: Vec<String>,
    /// Network: none (loopback only) or host (the host's network, resolv.conf and hosts)
    #[arg(long, alias = "net", value_name = "none|host", default_value = "none")]
    network: String,
    /// Container hostname (default: the short container id; with --network host, the host's)
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// Add a capability (CHOWN or CAP_CHOWN, or ALL)
    #[arg(long = "cap-add", value_name = "CAP")]
    cap_add: Vec<String>,
    /// Drop a capability (CHOWN or CAP_CHOWN, or ALL)
    #[arg(long = "cap-drop", value_name = "CAP")]
    cap_drop: Vec<String>,
    /// All capabilities, no seccomp filter, no masked /proc paths, the host's devices
    #[arg(long)]
    privileged: bool,
    /// seccomp=unconfined|PROFILE.json, or no-new-privileges[=true|false]
    #[arg(long = "security-opt", value_name = "OPT")]
    security_opt: Vec<String>,
}

/// The [`RunOptions`] of `bundle` and `run` from their flags and trailing arguments.
pub(super) fn run_options(p: &ProcessArgs, args: &[String]) -> Result<RunOptions> {
    if p.tty && !std::io::stdin().is_terminal() {
        bail!("--tty needs a terminal on stdin (the input device is not a TTY)");
    }
    // --env-file entries first, so -e overrides them.
    let mut env = Vec::new();
    for file in &p.env_file {
        let bytes = std::fs::read(file)
            .with_context(|| format!("reading --env-file {}", file.display()))?;
        let entries = parse_env_file(&bytes, &|k| std::env::var(k).ok())
            .map_err(|e| anyhow::anyhow!("--env-file {}: {e}", file.display()))?;
        env.extend(entries);
    }
    env.extend(p.env.iter().cloned());
    let mut mounts = Vec::new();
    for v in &p.volume {
        mounts.push(parse_volume(v)?);
    }
    for m in &p.mount {
        mounts.push(parse_mount(m)?);
    }
    for t in &p.tmpfs {
        mounts.push(parse_tmpfs(t)?);
    }
    let mut opts = RunOptions {
        args: args.to_vec(),
        entrypoint: p.entrypoint.clone(),
        env,
        workdir: p.workdir.clone(),
        user: p.user.clone(),
        hostname: p.hostname.clone(),
        tty: p.tty,
        read_only: p.read_only,
        mounts,
        network: p.network.parse::<Network>()?,
        cap_add: p.cap_add.clone(),
        cap_drop: p.cap_drop.clone(),
        privileged: p.privileged,
        ..RunOptions::default()
    };
    for o in &p.security_opt {
        match parse_security_opt(o)? {
            SecurityOpt::Seccomp(choice) => opts.seccomp = choice,
            SecurityOpt::NoNewPrivileges(on) => opts.no_new_privileges = on,
            SecurityOpt::Ignored => {}
        }
    }
    Ok(opts)
}
