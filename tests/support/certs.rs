//! Test certificates for FTPS, made fresh by each test with `rcgen` (no private key is committed): a
//! CA, and a server certificate it signed for `localhost` and `127.0.0.1`, written as PEM files.
//!
//! ```ignore
//! #[path = "support/certs.rs"]
//! mod certs;
//! let pki = certs::TestPki::new(&dir);
//! // server: --tls-cert pki.cert --tls-key pki.key; clients trust pki.ca
//! ```

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// PEM files of a test CA and of a server certificate it signed.
#[derive(Clone, Debug)]
pub struct TestPki {
    /// The CA certificate, for clients to trust (`curl --cacert`, `--ca-file`).
    pub ca: PathBuf,
    /// The server's certificate chain (its certificate, then the CA's).
    pub cert: PathBuf,
    /// The server's private key (PKCS#8).
    pub key: PathBuf,
    /// Certificate and key in one file (vsftpd's `rsa_cert_file`, pure-ftpd's `pure-ftpd.pem`).
    pub combined: PathBuf,
}

impl TestPki {
    /// Makes the files in `dir` (which must exist).
    pub fn new(dir: &Path) -> TestPki {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        (ca_params.distinguished_name).push(DnType::CommonName, "ftp-proto test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().expect("server key");
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let mut params = CertificateParams::new(names).expect("server params");
        (params.distinguished_name).push(DnType::CommonName, "localhost");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &issuer).expect("server certificate");

        let write = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write PEM");
            path
        };
        let chain = format!("{}{}", cert.pem(), ca_cert.pem());
        TestPki {
            ca: write("ca.pem", ca_cert.pem()),
            cert: write("cert.pem", chain.clone()),
            key: write("key.pem", key.serialize_pem()),
            combined: write("combined.pem", format!("{}{chain}", key.serialize_pem())),
        }
    }
}
