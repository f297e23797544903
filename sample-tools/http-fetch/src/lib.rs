//! `http-fetch` (risk tier: read): GETs a URL through `wasi:http` (or
//! sends another method, for the tests of what a read tool may send) and
//! returns the status, the content type and up to 64 KiB of the body as
//! text. It can reach only what the host's egress policy lets through; a
//! refusal comes back as `denied` with the host's error code.

use agenthost_guest_sdk::{Error, RiskTier, Tool, ToolSpec, Value, export_tool, json};
use serde_json::json;
use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, Method, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

/// Most body bytes returned.
const MAX_BODY: usize = 64 * 1024;

struct HttpFetch;

impl Tool for HttpFetch {
    fn spec() -> ToolSpec {
        ToolSpec::new("http-fetch", env!("CARGO_PKG_VERSION"))
            .description("Fetches a web page or API response (GET) and returns its status and text.")
            .input_schema(json!({
                "type": "object",
                "properties": {
                    "url": { "type": "string", "pattern": "^https?://", "maxLength": 2048 },
                    "method": { "enum": ["GET", "HEAD", "POST", "PUT", "DELETE"] }
                },
                "required": ["url"],
                "additionalProperties": false
            }))
            .risk_tier(RiskTier::Read)
    }

    fn invoke(input: Value) -> Result<Value, Error> {
        let url = json::str_field(&input, "url")?;
        let (scheme, rest) =
            url.split_once("://").ok_or_else(|| Error::InvalidInput("`url` has no scheme".into()))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let request = OutgoingRequest::new(Fields::new());
        let scheme = if scheme == "https" { Scheme::Https } else { Scheme::Http };
        let bad = |what: &str| Error::InvalidInput(format!("`url` has an invalid {what}"));
        let method = match input.get("method").and_then(Value::as_str).unwrap_or("GET") {
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            _ => Method::Get,
        };
        request.set_method(&method).map_err(|()| bad("method"))?;
        request.set_scheme(Some(&scheme)).map_err(|()| bad("scheme"))?;
        request.set_authority(Some(authority)).map_err(|()| bad("host"))?;
        request.set_path_with_query(Some(path)).map_err(|()| bad("path"))?;

        let pending = outgoing_handler::handle(request, None).map_err(refused)?;
        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(refused(code)),
            Some(Err(())) | None => return Err(Error::Internal("the response was already taken".into())),
        };
        let status = response.status();
        let mut content_type = String::new();
        for (name, value) in response.headers().entries() {
            if name.eq_ignore_ascii_case("content-type") {
                content_type = String::from_utf8_lossy(&value).into_owned();
            }
        }
        let body = response.consume().map_err(|()| Error::Internal("no response body".into()))?;
        let stream = body.stream().map_err(|()| Error::Internal("no response body stream".into()))?;
        let mut bytes = Vec::new();
        let mut truncated = false;
        loop {
            match stream.blocking_read(16 * 1024) {
                Ok(chunk) => {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() > MAX_BODY {
                        bytes.truncate(MAX_BODY);
                        truncated = true;
                        break;
                    }
                }
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(Error::Unavailable(format!(
                        "reading the body failed: {}",
                        e.to_debug_string()
                    )));
                }
            }
        }
        Ok(json!({
            "status": status,
            "content_type": content_type,
            "body": String::from_utf8_lossy(&bytes),
            "truncated": truncated,
        }))
    }
}

/// A host refusal is `denied`; a network failure is `unavailable`.
fn refused(code: ErrorCode) -> Error {
    match code {
        ErrorCode::HttpRequestDenied | ErrorCode::DestinationIpProhibited => {
            Error::Denied(format!("the host refused the request ({code:?})"))
        }
        other => Error::Unavailable(format!("the request failed ({other:?})")),
    }
}

export_tool!(HttpFetch);
