//! `login` and `logout`: credentials in Docker's config.json (or its credential helpers).

use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use strata::registry::credentials::{self, Credentials, StoredIn};

use super::args::{Global, RegistryFlags};
use super::async_runtime::runtime;

/// `strata login` arguments.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry host (host[:port]; docker.io when omitted)
    server: Option<String>,
    /// User name
    #[arg(short, long)]
    username: String,
    /// Read the password (or access token) from stdin
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    registry: RegistryFlags,
}

/// `strata logout` arguments.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry host (host[:port]; docker.io when omitted)
    server: Option<String>,
}

/// Docker's config.json: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn config_path() -> Result<PathBuf> {
    credentials::default_config_path()
        .context("cannot locate Docker's config.json: set DOCKER_CONFIG or HOME")
}

fn registry_of(server: Option<&str>) -> Result<String> {
    let registry = credentials::normalize_registry_key(server.unwrap_or("docker.io"));
    if registry.is_empty() {
        bail!("invalid registry {:?}", server.unwrap_or_default());
    }
    Ok(registry)
}

/// Checks the credentials against the registry, then saves them.
pub fn login(g: &Global, args: &LoginArgs) -> Result<()> {
    let registry = registry_of(args.server.as_deref())?;
    if !args.password_stdin {
        bail!(
            "strata login reads the password from stdin: use --password-stdin, e.g. `echo \"$TOKEN\" | strata login {registry} -u USER --password-stdin`"
        );
    }
    if std::io::stdin().is_terminal() {
        eprintln!("Password (end with Ctrl-D):");
    }
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("reading the password from stdin")?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    if password.is_empty() {
        bail!("no password on stdin");
    }
    if args.username.is_empty() {
        bail!("the user name must not be empty");
    }
    let creds = Credentials::basic(args.username.clone(), password);
    let client = g.registry_client(&args.registry)?;
    runtime()?
        .block_on(client.login(&registry, &creds))
        .with_context(|| format!("login to {registry} failed"))?;
    let path = config_path()?;
    match credentials::store_credentials(&path, &registry, &creds)? {
        StoredIn::File(path) => {
            eprintln!(
                "Credentials saved in {} (unencrypted; configure a credential helper with credsStore to keep them elsewhere)",
                path.display()
            )
        }
        StoredIn::Helper(helper) => eprintln!("Credentials saved with {helper}"),
    }
    println!("Login Succeeded");
    Ok(())
}

/// Removes the saved credentials of a registry.
pub fn logout(args: &LogoutArgs) -> Result<()> {
    let registry = registry_of(args.server.as_deref())?;
    let path = config_path()?;
    if credentials::erase_credentials(&path, &registry)? {
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(())
}
