//! Secrets for commands: never arguments (they would land in shell history
//! and `ps`), always a named environment variable or stdin.

use std::io::Read;

use anyhow::{Context, bail};
use secrecy::SecretString;

/// The value of environment variable `var`, if a name is given.
pub fn from_env(var: Option<&str>) -> anyhow::Result<Option<SecretString>> {
    let Some(var) = var else {
        return Ok(None);
    };
    let value =
        std::env::var(var).with_context(|| format!("environment variable {var} is not set"))?;
    if value.is_empty() {
        bail!("environment variable {var} is empty");
    }
    Ok(Some(SecretString::from(value)))
}

/// One line from stdin.
pub fn from_stdin(what: &str) -> anyhow::Result<SecretString> {
    let mut line = String::new();
    std::io::stdin().read_to_string(&mut line)?;
    let line = line.trim_end_matches(['\r', '\n']).to_owned();
    if line.is_empty() {
        bail!("no {what} on stdin");
    }
    Ok(SecretString::from(line))
}

/// The operations API's bearer token, from `ADMIN_API_TOKEN`.
pub fn api_token() -> anyhow::Result<SecretString> {
    match std::env::var("ADMIN_API_TOKEN") {
        Ok(token) if !token.is_empty() => Ok(SecretString::from(token)),
        _ => bail!(
            "ADMIN_API_TOKEN is not set: give a token from `hostaway-admin tokens issue` (ask an owner)"
        ),
    }
}
