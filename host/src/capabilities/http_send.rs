//! Sends a guest's outgoing HTTP request to the address the egress hook
//! checked, and nowhere else.
//!
//! The hook resolves the request's host itself and checks every answer;
//! connecting by name afterwards would resolve again, and a name that
//! answered with a public address for the check could answer with
//! `169.254.169.254` for the connection. So the connection goes to the
//! checked socket address, and for HTTPS the TLS handshake still names the
//! host (SNI) and validates its certificate for that name against the web
//! PKI roots (plus any CA the operator configured), so pinning the address
//! never weakens the certificate check.
//!
//! The TLS configuration names its crypto provider (ring) explicitly: with
//! more than one provider compiled in, rustls refuses to pick one, and a
//! guest's HTTPS request must never meet that as a panic.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody};

/// A connection of either kind, for hyper.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// How long to wait for a connection or the first byte when the guest
/// asks for nothing shorter; the call's deadline cuts both anyway.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What finishes a response's connection once the guest has read it.
pub(crate) type Worker = Box<dyn Future<Output = Result<(), HttpError>> + Send>;

/// The TLS client configuration of a host: web PKI roots plus `extra`
/// (PEM certificates the operator trusts, such as a corporate CA).
///
/// # Errors
///
/// A PEM that holds no certificate, or one rustls refuses.
pub fn tls_config(extra: &[(String, Vec<u8>)]) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    for (name, pem) in extra {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("{name}: not a PEM certificate: {e}"))?;
            roots.add(cert).map_err(|e| format!("{name}: the certificate is refused: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("{name} holds no PEM certificate"));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Sends `request` over a connection to the first of `addrs` (all checked)
/// that accepts, with TLS for `host` when `https`. Nothing about the
/// connection (neither it nor the worker that finishes it) outlives
/// `deadline`.
///
/// # Errors
///
/// The WASI HTTP error code of what failed: connect, TLS, timeout, protocol.
pub(crate) async fn send_pinned(
    mut request: http::Request<WasiBody>,
    addrs: &[SocketAddr],
    host: &str,
    https: bool,
    tls: Arc<rustls::ClientConfig>,
    options: Option<RequestOptions>,
    deadline: Instant,
) -> Result<(http::Response<WasiBody>, Worker), HttpError> {
    let left = || deadline.saturating_duration_since(Instant::now());
    let connect_timeout = options.and_then(|o| o.connect_timeout).unwrap_or(DEFAULT_TIMEOUT).min(left());
    let first_byte_timeout =
        options.and_then(|o| o.first_byte_timeout).unwrap_or(DEFAULT_TIMEOUT).min(left());
    let mut connected = Err(HttpError::DestinationNotFound);
    for addr in addrs {
        connected = match tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => Ok((tcp, *addr)),
            Ok(Err(_)) => Err(HttpError::ConnectionRefused),
            Err(_) => Err(HttpError::ConnectionTimeout),
        };
        if connected.is_ok() {
            break;
        }
    }
    let (tcp, addr) = connected?;
    let stream: Box<dyn Stream> = if https {
        let name = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(host.to_owned()).map_err(|_| HttpError::HttpRequestUriInvalid)?,
        };
        let tls = tokio_rustls::TlsConnector::from(tls);
        let stream = tokio::time::timeout(connect_timeout, tls.connect(name, tcp))
            .await
            .map_err(|_| HttpError::ConnectionTimeout)?
            .map_err(|e| {
                tracing::debug!(target: "agenthost::egress", %host, %addr, error = %e, "TLS handshake failed");
                tls_error(&e)
            })?;
        Box::new(stream)
    } else {
        Box::new(tcp)
    };
    let (mut sender, connection) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| HttpError::ConnectionTimeout)?
    .map_err(HttpError::from)?;
    // The request goes out in origin form; the Host header names the host.
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
    *request.uri_mut() = path.parse().map_err(|_| HttpError::HttpRequestUriInvalid)?;
    if !request.headers().contains_key(http::header::HOST) {
        let default = if https { 443 } else { 80 };
        let value = if addr.port() == default { host.to_owned() } else { format!("{host}:{}", addr.port()) };
        let value = http::HeaderValue::from_str(&value).map_err(|_| HttpError::HttpRequestUriInvalid)?;
        request.headers_mut().insert(http::header::HOST, value);
    }
    let until = tokio::time::Instant::from_std(deadline);
    let connection = tokio::spawn(async move {
        match tokio::time::timeout_at(until, connection).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(HttpError::from(e)),
            Err(_) => Err(HttpError::HttpResponseTimeout),
        }
    });
    let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
        .await
        .map_err(|_| HttpError::ConnectionReadTimeout)?
        .map_err(HttpError::from)?;
    let response = response.map(|body| body.map_err(HttpError::from).boxed_unsync());
    let worker: Worker = Box::new(async move {
        match connection.await {
            Ok(result) => result,
            Err(_) => Err(HttpError::InternalError(Some("the connection task failed".to_owned()))),
        }
    });
    Ok((response, worker))
}

/// A failed handshake as the WASI error code: a certificate the roots do
/// not vouch for (or one for another name) is `TLS-certificate-error`.
fn tls_error(e: &std::io::Error) -> HttpError {
    let certificate = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_)));
    if certificate { HttpError::TlsCertificateError } else { HttpError::TlsProtocolError }
}
