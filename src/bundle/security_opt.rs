//! `--security-opt`, as `docker run` reads it.

use std::path::PathBuf;

use super::BundleError;
use super::seccomp::SeccompChoice;

/// One `--security-opt` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityOpt {
    /// `seccomp=unconfined` or `seccomp=PROFILE.json`.
    Seccomp(SeccompChoice),
    /// `no-new-privileges[=|:true|false]`.
    NoNewPrivileges(bool),
    /// `apparmor=unconfined` and `label=disable`: what strata does anyway (it applies no
    /// AppArmor profile or SELinux label).
    Ignored,
}

/// Parses a `--security-opt` value; `key=value` and Docker's older `key:value` are both read.
pub fn parse_security_opt(text: &str) -> Result<SecurityOpt, BundleError> {
    let invalid = |reason: &str| BundleError::InvalidFlag {
        flag: "--security-opt",
        value: text.to_string(),
        reason: reason.to_string(),
    };
    if text == "no-new-privileges" {
        return Ok(SecurityOpt::NoNewPrivileges(true));
    }
    let (key, value) = text
        .split_once('=')
        .or_else(|| text.split_once(':'))
        .ok_or_else(|| invalid("expected KEY=VALUE"))?;
    match (key, value) {
        ("no-new-privileges", "true") => Ok(SecurityOpt::NoNewPrivileges(true)),
        ("no-new-privileges", "false") => Ok(SecurityOpt::NoNewPrivileges(false)),
        ("no-new-privileges", _) => Err(invalid("no-new-privileges takes true or false")),
        ("seccomp", "unconfined") => Ok(SecurityOpt::Seccomp(SeccompChoice::Unconfined)),
        ("seccomp", "builtin" | "default") => Ok(SecurityOpt::Seccomp(SeccompChoice::Default)),
        ("seccomp", "") => Err(invalid("seccomp needs unconfined or a profile file")),
        ("seccomp", path) => Ok(SecurityOpt::Seccomp(SeccompChoice::Profile(PathBuf::from(
            path,
        )))),
        ("apparmor", "unconfined") | ("label", "disable") => Ok(SecurityOpt::Ignored),
        _ => Err(invalid(
            "strata supports seccomp=unconfined|PROFILE.json and no-new-privileges (no AppArmor or SELinux)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_forms() {
        use SecurityOpt::*;
        for (text, want) in [
            ("no-new-privileges", NoNewPrivileges(true)),
            ("no-new-privileges:true", NoNewPrivileges(true)),
            ("no-new-privileges=false", NoNewPrivileges(false)),
            ("seccomp=unconfined", Seccomp(SeccompChoice::Unconfined)),
            ("seccomp:unconfined", Seccomp(SeccompChoice::Unconfined)),
            (
                "seccomp=/p/prof.json",
                Seccomp(SeccompChoice::Profile("/p/prof.json".into())),
            ),
            ("label=disable", Ignored),
        ] {
            assert_eq!(parse_security_opt(text).unwrap(), want, "{text}");
        }
        for bad in [
            "no-new-privileges=yes",
            "seccomp=",
            "apparmor=docker-default",
            "x",
        ] {
            assert!(parse_security_opt(bad).is_err(), "{bad}");
        }
    }
}
