//! Test certificates made with the `openssl` CLI: a CA, server certificates for
//! `127.0.0.1`/`localhost` and client certificates signed by it, all EC P-256.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::run_ok;

/// A test certificate authority in a directory.
pub struct Ca {
    pub dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path) -> Command {
    let mut cmd = Command::new("openssl");
    cmd.current_dir(dir);
    cmd
}

impl Ca {
    /// A new self-signed CA (`<name>-ca.crt`, `<name>-ca.key`) in `dir`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        super::require_tool("openssl");
        let cert = dir.join(format!("{name}-ca.crt"));
        let key = dir.join(format!("{name}-ca.key"));
        run_ok(
            openssl(dir)
                .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
                .args(["-subj", &format!("/CN=strata test CA {name}")])
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&cert),
        );
        Ca {
            dir: dir.to_path_buf(),
            cert,
            key,
        }
    }

    /// A certificate signed by this CA: `(cert, key)` PEM files named `<name>.crt`/`.key`.
    /// `server`: for `127.0.0.1` and `localhost` (serverAuth), else a client certificate.
    pub fn issue(&self, name: &str, server: bool) -> (PathBuf, PathBuf) {
        let dir = &self.dir;
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        let csr = dir.join(format!("{name}.csr"));
        let ext = dir.join(format!("{name}.ext"));
        let extensions = if server {
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
        } else {
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n"
        };
        std::fs::write(&ext, extensions).expect("write extensions file");
        run_ok(
            openssl(dir)
                .args(["req", "-new", "-newkey", "ec", "-pkeyopt"])
                .args(["ec_paramgen_curve:prime256v1", "-nodes"])
                .args(["-subj", &format!("/CN={name}")])
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&csr),
        );
        run_ok(
            openssl(dir)
                .args(["x509", "-req", "-days", "2", "-set_serial"])
                .arg(format!("{}", 1000 + name.len() * 7 + usize::from(server)))
                .arg("-in")
                .arg(&csr)
                .arg("-CA")
                .arg(&self.cert)
                .arg("-CAkey")
                .arg(&self.key)
                .arg("-extfile")
                .arg(&ext)
                .arg("-out")
                .arg(&cert),
        );
        (cert, key)
    }
}

/// A self-signed certificate and its PKCS#8 key (for the token issuer): `(cert PEM, cert DER,
/// key PKCS#8 DER)`.
pub fn self_signed(dir: &Path, name: &str) -> (PathBuf, Vec<u8>, Vec<u8>) {
    super::require_tool("openssl");
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    run_ok(
        openssl(dir)
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", &format!("/CN={name}")])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    let der = dir.join(format!("{name}.der"));
    run_ok(
        openssl(dir)
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert)
            .arg("-out")
            .arg(&der),
    );
    let pk8 = dir.join(format!("{name}.pk8"));
    run_ok(
        openssl(dir)
            .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&pk8),
    );
    (
        cert,
        std::fs::read(&der).expect("read DER certificate"),
        std::fs::read(&pk8).expect("read PKCS#8 key"),
    )
}

/// `htpasswd -Bbn USER PASSWORD` lines (bcrypt, as docker-registry wants) in a file.
pub fn htpasswd(dir: &Path, users: &[(&str, &str)]) -> PathBuf {
    super::require_tool("htpasswd");
    let mut text = String::new();
    for (user, password) in users {
        let line = run_ok(Command::new("htpasswd").args(["-Bbn", user, password]));
        text.push_str(line.trim());
        text.push('\n');
    }
    let path = dir.join("htpasswd");
    std::fs::write(&path, text).expect("write htpasswd");
    path
}
