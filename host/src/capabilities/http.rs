//! `wasi:http/outgoing-handler`, linked for every component; a component
//! whose grant allows no egress gets `HTTP-request-denied` for every
//! request, naming the rule. Every request passes
//! [`EgressHooks::send_request`]:
//!
//! 1. not while describing itself (that fails the load), and within the
//!    call's host-call budget and the tenant's quota;
//! 2. the scheme, host and port must match a rule of every granting layer
//!    (tenant, manifest, policy pack), and the method must be one the
//!    component's tier may send (a `read` component: GET and HEAD);
//! 3. the policy engine is asked (`Egress` on `Host::"<host>"`);
//! 4. the host name is resolved by the host and every address checked:
//!    loopback, private, link-local, the metadata address and the like are
//!    refused unless the tenant opened that range;
//! 5. the request is sent to the checked address itself ([`http_send`]:
//!    HTTPS with SNI and certificate validation for the name), so a second,
//!    different DNS answer cannot slip in between check and connect.
//!
//! A refusal reaches the guest as `HTTP-request-denied` (allow-list,
//! policy, method) or `destination-IP-prohibited` (address), and the reason
//! is logged and kept for the call's error.
//!
//! [`http_send`]: super::http_send

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::CallContext;
use crate::governance::egress::default_port;
use crate::governance::policy::{Action, EntityRef, Value as PolicyValue};

/// The per-instance hooks: the egress policy and where denials are noted.
pub struct EgressHooks {
    pub(crate) call: Arc<CallContext>,
    /// Made on the first request (most instances never send one).
    pub(crate) denials: Option<Denials>,
    /// The host's TLS client configuration.
    pub(crate) tls: Arc<tokio_rustls::rustls::ClientConfig>,
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (http::Response<WasiBody>, Box<dyn Future<Output = Result<(), HttpError>> + Send>),
                HttpError,
            >,
        > + Send,
>;

/// The refusals of one call: the first few, kept (cut) for the call's
/// error and logged; the rest only counted. A guest can ask as often as
/// its fuel lets it, and none of that may grow host memory or the log.
#[derive(Debug, Default)]
pub(crate) struct DenialLog {
    kept: Vec<String>,
    more: u64,
}

/// How many refusals one call keeps and logs.
const KEPT_DENIALS: usize = 8;
/// The longest refusal kept.
const DENIAL_BYTES: usize = 512;

impl DenialLog {
    /// The kept refusals, and a line counting the others.
    pub(crate) fn summary(&self) -> Vec<String> {
        let mut out = self.kept.clone();
        if self.more > 0 {
            out.push(format!("and {} more refusals", self.more));
        }
        out
    }
}

type Denials = Arc<Mutex<DenialLog>>;

/// Logs a refusal and keeps it for the call's error, up to a few per call.
fn note_denial(denials: &Denials, tenant: &str, reason: String) {
    let Ok(mut log) = denials.lock() else { return };
    if log.kept.len() >= KEPT_DENIALS {
        log.more = log.more.saturating_add(1);
        return;
    }
    let mut reason = crate::text::clip(&reason);
    if reason.len() > DENIAL_BYTES {
        let mut end = DENIAL_BYTES;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push('…');
    }
    tracing::warn!(target: "agenthost::egress", tenant, %reason, "egress denied");
    log.kept.push(reason);
}

impl EgressHooks {
    fn denials(&mut self) -> Denials {
        self.denials.get_or_insert_with(Arc::default).clone()
    }

    fn deny(&mut self, reason: String, error: HttpError) -> SendFuture {
        note_denial(&self.denials(), self.call.tenant.id(), reason);
        Box::new(async move { Err(error) })
    }
}

/// Name lookups in flight across the host. The system resolver blocks a
/// thread of tokio's blocking pool per lookup, which the call's deadline
/// cannot take back: without a bound, guests asking for slow names could
/// take every blocking thread from every tenant.
static LOOKUPS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(32);

/// Resolves `host` for a request, within the call's deadline and the
/// host-wide bound on lookups in flight.
async fn resolve(host: &str, port: u16, deadline: std::time::Instant) -> Result<Vec<SocketAddr>, HttpError> {
    let until = tokio::time::Instant::from_std(deadline);
    let timeout = || HttpError::DnsTimeout;
    let _permit = tokio::time::timeout_at(until, LOOKUPS.acquire())
        .await
        .map_err(|_| timeout())?
        .map_err(|_| HttpError::InternalError(Some("the lookup limiter is closed".to_owned())))?;
    match tokio::time::timeout_at(until, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(found)) => Ok(found.collect()),
        Ok(Err(_)) => Err(HttpError::DnsError { rcode: Some("no answer".to_owned()), info_code: None }),
        Err(_) => Err(timeout()),
    }
}

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        drop(fut);
        if self.call.describing {
            self.call.note_violation("`wasi:http` (an outgoing request)".to_owned());
            return self.deny(
                "egress denied: describe() runs with `log` only".to_owned(),
                HttpError::HttpRequestDenied,
            );
        }
        let uri = request.uri().clone();
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let Some(host) = uri.host().map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
        else {
            return self
                .deny("egress denied: the request has no host".to_owned(), HttpError::HttpRequestUriInvalid);
        };
        let port = uri.port_u16().unwrap_or_else(|| default_port(&scheme));
        if let Err(refused) = self.call.charge() {
            return self.deny(format!("egress denied: {refused:?}"), HttpError::HttpRequestDenied);
        }
        if !self.call.grant.egress.any_http() {
            let why = self.call.grant.egress.why_none();
            return self.deny(
                format!(
                    "egress to {scheme}://{host}:{port} denied: no outgoing HTTP is granted to it: {why}"
                ),
                HttpError::HttpRequestDenied,
            );
        }
        if let Err(reason) = self.call.grant.egress.check_url(&scheme, &host, port) {
            return self.deny(reason, HttpError::HttpRequestDenied);
        }
        if let Err(reason) = self.call.grant.egress.check_method(request.method().as_str()) {
            return self.deny(reason, HttpError::HttpRequestDenied);
        }
        let decided = self.call.decide(
            Action::Egress,
            EntityRef::new("Host", host.clone()),
            vec![
                ("scheme", PolicyValue::String(scheme.clone())),
                ("port", PolicyValue::Long(i64::from(port))),
            ],
        );
        if let Err(refused) = decided {
            let reason = match refused {
                crate::bindings::types::Error::Denied(reason) => reason,
                other => format!("the egress policy check failed: {other:?}"),
            };
            return self.deny(reason, HttpError::HttpRequestDenied);
        }
        let call = self.call.clone();
        let denials = self.denials();
        let tenant = self.call.tenant.id().to_owned();
        let tls = self.tls.clone();
        Box::new(async move {
            let deny = |reason: String, error: HttpError| {
                note_denial(&denials, &tenant, reason);
                error
            };
            let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
                Ok(ip) => vec![SocketAddr::new(ip, port)],
                Err(_) => resolve(&host, port, call.deadline).await?,
            };
            if addresses.is_empty() {
                return Err(HttpError::DestinationNotFound);
            }
            // Every answer must pass: a name with one public and one
            // private address is refused, not half-trusted.
            for address in &addresses {
                if let Err(reason) = call.grant.egress.check_addr(&host, address.ip()) {
                    return Err(deny(reason, HttpError::DestinationIpProhibited));
                }
            }
            // Pinned: the connection goes to an address just checked.
            let (response, worker) = super::http_send::send_pinned(
                request,
                &addresses,
                &host,
                scheme == "https",
                tls,
                options,
                call.deadline,
            )
            .await?;
            Ok((response, worker))
        })
    }
}
