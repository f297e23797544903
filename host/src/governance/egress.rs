//! Outbound network policy: an allow-list of `scheme://host:port` rules
//! from every granting layer, and an address check on what a name resolves
//! to. Loopback, private, link-local (with the cloud metadata address
//! 169.254.169.254), unspecified, multicast and shared (CGNAT) addresses
//! are refused unless a tenant lists the range in `allow_addresses`.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// One allow-list entry: `https://api.example.com`, `http://*.corp.example:8080`,
/// `https://example.com:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressRule {
    pub scheme: String,
    /// Lowercase host; a leading `*.` matches any subdomain (not the apex).
    pub host: String,
    /// `None` matches any port.
    pub port: Option<u16>,
    text: String,
}

impl EgressRule {
    /// Parses `scheme://host[:port]`.
    ///
    /// # Errors
    ///
    /// Names the rule and what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad =
            |why: &str| format!("`{text}` is not an egress rule ({why}); expected scheme://host[:port]");
        let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(bad("the scheme must be http or https"));
        }
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') || rest.is_empty() {
            return Err(bad("only a host and an optional port may follow the scheme"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, "*")) if !host.ends_with(']') || rest.starts_with('[') => (host, None),
            Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
                (host, Some(port.parse::<u16>().map_err(|_| bad("the port is not a number"))?))
            }
            _ => (rest, Some(default_port(&scheme))),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let bad_wildcard = host.contains('*') && (!host.starts_with("*.") || host[2..].contains('*'));
        if host.is_empty() || bad_wildcard {
            return Err(bad("a wildcard may only be a leading `*.`"));
        }
        Ok(EgressRule { scheme, host, port, text: text.to_owned() })
    }

    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let host_ok = match self.host.strip_prefix("*.") {
            Some(domain) => host.ends_with(&format!(".{domain}")),
            None => self.host == host,
        };
        self.scheme == scheme && host_ok && self.port.is_none_or(|p| p == port)
    }
}

impl fmt::Display for EgressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

pub fn default_port(scheme: &str) -> u16 {
    if scheme == "https" { 443 } else { 80 }
}

/// The egress a component has: the intersection of every layer's rules,
/// plus the address ranges its tenant explicitly opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// (source, rules): a request must match a rule of every layer. No
    /// layer at all means no egress.
    layers: Vec<(String, Vec<EgressRule>)>,
    allow_addresses: Vec<IpNet>,
    pub dns: bool,
    pub sockets: bool,
}

impl EgressPolicy {
    /// No network at all.
    pub fn none() -> Self {
        EgressPolicy::default()
    }

    /// Starts from a tenant's grant.
    ///
    /// # Errors
    ///
    /// A rule or range that does not parse.
    pub fn from_tenant(source: &str, grant: &super::tenant::NetworkGrant) -> Result<Self, String> {
        let rules = grant.allow.iter().map(|r| EgressRule::parse(r)).collect::<Result<Vec<_>, _>>()?;
        let allow_addresses = grant
            .allow_addresses
            .iter()
            .map(|c| c.parse::<IpNet>().map_err(|_| format!("`{c}` is not a CIDR range")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EgressPolicy {
            layers: vec![(source.to_owned(), rules)],
            allow_addresses,
            dns: grant.dns,
            sockets: grant.sockets,
        })
    }

    /// Narrows to requests `rules` also allow.
    ///
    /// # Errors
    ///
    /// A rule that does not parse.
    pub fn and(mut self, source: &str, rules: &[String]) -> Result<Self, String> {
        let rules = rules.iter().map(|r| EgressRule::parse(r)).collect::<Result<Vec<_>, _>>()?;
        self.layers.push((source.to_owned(), rules));
        Ok(self)
    }

    /// Whether any HTTP request could pass (decides whether `wasi:http` is linked).
    pub fn any_http(&self) -> bool {
        !self.layers.is_empty() && self.layers.iter().all(|(_, rules)| !rules.is_empty())
    }

    /// Which layer leaves no HTTP egress, for a load error.
    pub fn why_none(&self) -> String {
        match self.layers.iter().find(|(_, rules)| rules.is_empty()) {
            Some((source, _)) => format!("{source} allows no destination"),
            None if self.layers.is_empty() => "no network is granted (the development default)".to_owned(),
            None => "no destination is allowed".to_owned(),
        }
    }

    /// Checks a request's scheme, host and port against every layer.
    ///
    /// # Errors
    ///
    /// Names the destination and the layer that refused it.
    pub fn check_url(&self, scheme: &str, host: &str, port: u16) -> Result<(), String> {
        if self.layers.is_empty() {
            return Err(format!("egress to {scheme}://{host}:{port} denied: no network is granted"));
        }
        for (source, rules) in &self.layers {
            if !rules.iter().any(|rule| rule.matches(scheme, host, port)) {
                let listed: Vec<String> = rules.iter().map(ToString::to_string).collect();
                return Err(format!(
                    "egress to {scheme}://{host}:{port} denied: not on the allow-list of {source} ([{}])",
                    listed.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// Checks a resolved (or literal) address.
    ///
    /// # Errors
    ///
    /// Names the address and the range it falls in.
    pub fn check_addr(&self, host: &str, ip: IpAddr) -> Result<(), String> {
        let ip = canonical(ip);
        let Some(range) = restricted_range(ip) else { return Ok(()) };
        if self.allow_addresses.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        Err(format!(
            "egress to `{host}` denied: it resolves to {ip}, a {range} address, and the tenant does not allow that range (grants.network.allow_addresses)"
        ))
    }
}

impl EgressPolicy {
    /// Checks a raw socket address (`wasi:sockets`, when the tenant grants
    /// sockets): it must be in a range the tenant opened
    /// (`allow_addresses`) or be the literal IP of an allow-list rule of
    /// every layer, and pass [`EgressPolicy::check_addr`].
    ///
    /// # Errors
    ///
    /// Names the address and why.
    pub fn check_socket(&self, addr: std::net::SocketAddr) -> Result<(), String> {
        if !self.sockets {
            return Err(format!(
                "socket to {addr} denied: raw sockets are not granted (grants.network.sockets)"
            ));
        }
        let ip = canonical(addr.ip());
        let opened = self.allow_addresses.iter().any(|net| net.contains(&ip));
        let listed = !self.layers.is_empty()
            && self.layers.iter().all(|(_, rules)| {
                rules.iter().any(|rule| {
                    rule.host.parse::<IpAddr>().is_ok_and(|h| canonical(h) == ip)
                        && rule.port.is_none_or(|p| p == addr.port())
                })
            });
        if !opened && !listed {
            return Err(format!(
                "socket to {addr} denied: the address is neither in grants.network.allow_addresses nor an IP on the allow-list"
            ));
        }
        self.check_addr(&ip.to_string(), ip)
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The kind of restricted range `ip` is in, if any.
pub fn restricted_range(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.octets() == [169, 254, 169, 254] {
                Some("cloud metadata")
            } else if v4.is_loopback() {
                Some("loopback")
            } else if v4.is_private() {
                Some("private")
            } else if v4.is_link_local() {
                Some("link-local")
            } else if v4.is_unspecified() || a == 0 {
                Some("unspecified")
            } else if v4.is_multicast() || v4.is_broadcast() {
                Some("multicast/broadcast")
            } else if a == 100 && (64..128).contains(&b) {
                Some("shared (CGNAT)")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("loopback")
            } else if v6.is_unspecified() {
                Some("unspecified")
            } else if first & 0xfe00 == 0xfc00 {
                Some("private (unique local)")
            } else if first & 0xffc0 == 0xfe80 {
                Some("link-local")
            } else if v6.is_multicast() {
                Some("multicast/broadcast")
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_scheme_host_and_port() {
        let rule = EgressRule::parse("https://*.example.com").unwrap();
        assert!(rule.matches("https", "api.example.com", 443));
        assert!(!rule.matches("https", "example.com", 443));
        assert!(!rule.matches("https", "api.example.com.evil.net", 443));
        assert!(!rule.matches("http", "api.example.com", 80));
        assert!(!rule.matches("https", "api.example.com", 8443));
        let any_port = EgressRule::parse("http://localhost:*").unwrap();
        assert!(any_port.matches("http", "localhost", 8080));
        assert!(EgressRule::parse("ftp://x").is_err());
        assert!(EgressRule::parse("https://a.*.com").is_err());
        assert!(EgressRule::parse("https://x.com/path").is_err());
    }

    #[test]
    fn restricted_addresses_are_refused_unless_opened() {
        let none = EgressPolicy::none();
        for addr in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.5",
            "169.254.169.254",
            "::1",
            "::ffff:127.0.0.1",
            "fd00:ec2::254",
            "0.0.0.0",
        ] {
            let err = none.check_addr("h", addr.parse().unwrap()).unwrap_err();
            assert!(err.contains("denied"), "{addr}: {err}");
        }
        assert!(none.check_addr("h", "93.184.216.34".parse().unwrap()).is_ok());
        let grant = super::super::tenant::NetworkGrant {
            allow: vec!["http://localhost:*".into()],
            allow_addresses: vec!["127.0.0.0/8".into()],
            ..Default::default()
        };
        let open = EgressPolicy::from_tenant("tenant t", &grant).unwrap();
        assert!(open.check_addr("h", "127.0.0.1".parse().unwrap()).is_ok());
        assert!(open.check_addr("h", "169.254.169.254".parse().unwrap()).is_err());
    }
}
