//! TLS to etcd with rustls (feature `tls`, on by default): the server
//! checked against `caFile`, a client certificate from `certFile`/`keyFile`.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

pub type Stream = StreamOwned<ClientConnection, TcpStream>;

/// Which file a TLS setup error is about, for the caller to name the field.
#[derive(Debug)]
pub enum FileError {
    Ca(String),
    Cert(String),
    Key(String),
    Other(String),
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate found", path.display()));
    }
    Ok(certs)
}

/// The client configuration: roots from `ca`, and a client certificate if
/// both `cert` and `key` are given.
pub fn config(ca: &Path, cert_key: Option<(&Path, &Path)>) -> Result<Arc<ClientConfig>, FileError> {
    let mut roots = RootCertStore::empty();
    for c in certs(ca).map_err(FileError::Ca)? {
        roots
            .add(c)
            .map_err(|e| FileError::Ca(format!("{}: {e}", ca.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FileError::Other(e.to_string()))?
        .with_root_certificates(roots);
    let config = match cert_key {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = certs(cert).map_err(FileError::Cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| FileError::Key(format!("{}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| FileError::Key(e.to_string()))?
        }
    };
    Ok(Arc::new(config))
}

/// Wrap `tcp` and finish the handshake (bounded by the socket's timeouts).
pub fn connect(config: &Arc<ClientConfig>, host: &str, mut tcp: TcpStream) -> io::Result<Stream> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}")))?;
    let mut conn = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    Ok(StreamOwned::new(conn, tcp))
}

/// A TLS failure (bad certificate, alert), not a network one: retrying
/// another member will not help.
pub fn is_tls_error(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|i| i.is::<rustls::Error>())
}
