//! A certificate authority made for one test, and a server certificate it signed for
//! `localhost` and `127.0.0.1`, made with the `openssl` command.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// PEM files in a directory of the caller's: the CA to trust, and the server's certificate
/// and key.
#[derive(Debug, Clone)]
pub struct TestCertificates {
    pub ca: PathBuf,
    pub certificate: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("the openssl command does not run: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {}: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

impl TestCertificates {
    /// Makes a CA valid for two days and a server certificate it signed, with the names
    /// `localhost` and `127.0.0.1`, in `dir`.
    ///
    /// # Errors
    /// What `openssl` said when it failed, or that it is not installed.
    pub fn make(dir: &Path) -> Result<Self, String> {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=broker-amqp test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ],
        )?;
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        )?;
        std::fs::write(
            dir.join("names.ext"),
            "subjectAltName = DNS:localhost, IP:127.0.0.1\n",
        )
        .map_err(|e| e.to_string())?;
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-days",
                "2",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-extfile",
                "names.ext",
                "-out",
                "server.crt",
            ],
        )?;
        Ok(Self {
            ca: dir.join("ca.crt"),
            certificate: dir.join("server.crt"),
            key: dir.join("server.key"),
        })
    }
}
