//! A throwaway certificate authority for TLS tests, made with the `openssl` command.
//!
//! [`TestCa::new`] writes a CA certificate and key into a directory; [`TestCa::issue`]
//! signs a certificate for some names (DNS names or IP addresses), usable by a server and
//! as a client certificate. [`server_args`] turns a CA and a server certificate into the
//! `mariadbd` options that enable TLS (and let it check client certificates).

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA: its certificate and private key (PEM).
pub struct TestCa {
    pub cert: PathBuf,
    key: PathBuf,
    dir: PathBuf,
}

/// A certificate signed by a [`TestCa`] and its private key (PEM, unencrypted PKCS#8).
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) -> Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running openssl (install the `openssl` package)")?;
    if !out.status.success() {
        bail!(
            "openssl {} failed: {}",
            args.first().copied().unwrap_or(""),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// EC P-256 keys: fast to make, and every TLS library takes them.
const KEY: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

impl TestCa {
    /// A new CA named `name`, with its files in `dir`.
    pub fn new(dir: &Path, name: &str) -> Result<TestCa> {
        let file = |ext: &str| dir.join(format!("{}.{ext}", slug(name)));
        let (cert, key) = (file("pem"), file("key"));
        let subject = format!("/CN={name}");
        let mut args = vec!["req", "-x509", "-nodes", "-days", "3"];
        args.extend(KEY);
        args.extend([
            "-keyout",
            path_str(&key)?,
            "-out",
            path_str(&cert)?,
            "-subj",
            &subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&args, dir)?;
        Ok(TestCa {
            cert,
            key,
            dir: dir.to_path_buf(),
        })
    }

    /// A certificate with common name `common_name` for `names` (each a DNS name or an
    /// IP address), good for servers and clients, valid for three days.
    pub fn issue(&self, common_name: &str, names: &[&str]) -> Result<Issued> {
        let base = self.dir.join(slug(common_name));
        let (cert, key, csr, ext) = (
            base.with_extension("pem"),
            base.with_extension("key"),
            base.with_extension("csr"),
            base.with_extension("ext"),
        );
        let sans: Vec<String> = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(_) => format!("IP:{n}"),
                Err(_) => format!("DNS:{n}"),
            })
            .collect();
        std::fs::write(
            &ext,
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n",
                sans.join(",")
            ),
        )?;
        let subject = format!("/CN={common_name}");
        let mut args = vec!["req", "-nodes"];
        args.extend(KEY);
        args.extend([
            "-keyout",
            path_str(&key)?,
            "-out",
            path_str(&csr)?,
            "-subj",
            &subject,
        ]);
        openssl(&args, &self.dir)?;
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                path_str(&csr)?,
                "-CA",
                path_str(&self.cert)?,
                "-CAkey",
                path_str(&self.key)?,
                "-CAcreateserial",
                "-days",
                "3",
                "-extfile",
                path_str(&ext)?,
                "-out",
                path_str(&cert)?,
            ],
            &self.dir,
        )?;
        Ok(Issued { cert, key })
    }
}

/// `mariadbd` options for TLS with `server`'s certificate; client certificates are
/// checked against `ca`.
pub fn server_args(ca: &TestCa, server: &Issued) -> Vec<String> {
    vec![
        format!("--ssl-ca={}", ca.cert.display()),
        format!("--ssl-cert={}", server.cert.display()),
        format!("--ssl-key={}", server.key.display()),
    ]
}

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not valid UTF-8", p.display()))
}
