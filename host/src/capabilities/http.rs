//! `wasi:http/outgoing-handler`, linked only for a component whose grant
//! allows some egress. Every request passes [`EgressHooks::send_request`]:
//!
//! 1. the scheme, host and port must match a rule of every granting layer
//!    (tenant, manifest, policy pack);
//! 2. the policy engine is asked (`Egress` on `Host::"<host>"`);
//! 3. the host name is resolved by the host and every address checked:
//!    loopback, private, link-local, the metadata address and the like are
//!    refused unless the tenant opened that range;
//! 4. a plain-HTTP request is then sent to the checked address itself (the
//!    `Host` header keeps the name), so a second, different DNS answer
//!    cannot slip in between check and connect.
//!
//! A refusal reaches the guest as `HTTP-request-denied` (allow-list,
//! policy) or `destination-IP-prohibited` (address), and the reason is
//! logged and kept for the call's error.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

use super::CallContext;
use crate::governance::egress::default_port;
use crate::governance::policy::{Action, EntityRef, Value as PolicyValue};

/// The per-instance hooks: the egress policy and where denials are noted.
pub struct EgressHooks {
    pub(crate) call: Arc<CallContext>,
    /// Made on the first request (most instances never send one).
    pub(crate) denials: Option<Denials>,
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (http::Response<WasiBody>, Box<dyn Future<Output = Result<(), HttpError>> + Send>),
                HttpError,
            >,
        > + Send,
>;

type Denials = Arc<Mutex<Vec<String>>>;

/// Logs a refusal and keeps it for the call's error.
fn note_denial(denials: &Denials, tenant: &str, reason: String) {
    tracing::warn!(target: "agenthost::egress", tenant, %reason, "egress denied");
    if let Ok(mut denials) = denials.lock() {
        denials.push(reason);
    }
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

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        drop(fut);
        let uri = request.uri().clone();
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let Some(host) = uri.host().map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned())
        else {
            return self
                .deny("egress denied: the request has no host".to_owned(), HttpError::HttpRequestUriInvalid);
        };
        let port = uri.port_u16().unwrap_or_else(|| default_port(&scheme));
        if let Err(reason) = self.call.tenant.charge_host_call() {
            return self.deny(reason, HttpError::HttpRequestDenied);
        }
        if let Err(reason) = self.call.grant.egress.check_url(&scheme, &host, port) {
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
        Box::new(async move {
            let deny = |reason: String, error: HttpError| {
                note_denial(&denials, &tenant, reason);
                error
            };
            let addresses: Vec<SocketAddr> = match host.parse::<IpAddr>() {
                Ok(ip) => vec![SocketAddr::new(ip, port)],
                Err(_) => match tokio::net::lookup_host((host.as_str(), port)).await {
                    Ok(found) => found.collect(),
                    Err(_) => {
                        return Err(HttpError::DnsError {
                            rcode: Some("no answer".to_owned()),
                            info_code: None,
                        });
                    }
                },
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
            if scheme == "http" {
                // Pin the checked address; the Host header keeps the name.
                let pinned = addresses[0];
                let path = uri.path_and_query().map_or("/", |p| p.as_str());
                let target = format!("http://{pinned}{path}");
                match target.parse::<http::Uri>() {
                    Ok(pinned_uri) => *request.uri_mut() = pinned_uri,
                    Err(_) => return Err(HttpError::HttpRequestUriInvalid),
                }
                if !request.headers().contains_key(http::header::HOST)
                    && let Ok(value) = http::HeaderValue::from_str(&format!("{host}:{port}"))
                {
                    request.headers_mut().insert(http::header::HOST, value);
                }
            }
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }
}
