//! Outbound network policy: an allow-list of `scheme://host:port` rules
//! from every granting layer (tenant, manifest, policy pack ceiling), and
//! an address check on what a name resolves to. HTTP(S) rules name hosts;
//! `tcp://` and `udp://` rules name the addresses (an IP or a CIDR range)
//! and ports raw `wasi:sockets` may reach. Loopback, private, link-local
//! (with the cloud metadata address 169.254.169.254), unspecified,
//! multicast, shared (CGNAT) and site-local addresses — and the IPv6 forms
//! that embed them (IPv4-mapped, IPv4-compatible, NAT64, 6to4) — are
//! refused unless a tenant lists the range in `allow_addresses`.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// One allow-list entry: `https://api.example.com`, `http://*.corp.example:8080`,
/// `https://example.com:*`, `tcp://203.0.113.7:5432`, `udp://10.1.0.0/16:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressRule {
    pub scheme: String,
    /// Lowercase host; a leading `*.` matches any subdomain (not the apex).
    pub host: String,
    /// For `tcp`/`udp` rules: the address range.
    pub net: Option<IpNet>,
    /// `None` matches any port.
    pub port: Option<u16>,
    text: String,
}

/// Whether a rule's scheme is for raw sockets rather than HTTP.
fn is_socket_scheme(scheme: &str) -> bool {
    scheme == "tcp" || scheme == "udp"
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
        if is_socket_scheme(&scheme) {
            return Self::parse_socket(text, scheme, rest);
        }
        if scheme != "http" && scheme != "https" {
            return Err(bad("the scheme must be http, https, tcp or udp"));
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
        Ok(EgressRule { scheme, host, net: None, port, text: text.to_owned() })
    }

    /// `tcp://<ip or cidr>:<port or *>`; IPv6 in brackets.
    fn parse_socket(text: &str, scheme: String, rest: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("`{text}` is not a socket rule ({why}); expected {scheme}://<ip or cidr>:<port or *>")
        };
        let (host, port) = rest.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let port = match port {
            "*" => None,
            p => Some(p.parse::<u16>().map_err(|_| bad("the port is not a number"))?),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let net = match host.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => {
                host.parse::<IpAddr>().map(IpNet::from).map_err(|_| bad("not an IP address or range"))?
            }
        };
        Ok(EgressRule { scheme, host: net.to_string(), net: Some(net), port, text: text.to_owned() })
    }

    /// Whether a socket rule lets `use_scheme` (`tcp`/`udp`) reach `addr`.
    pub fn matches_socket(&self, use_scheme: &str, addr: std::net::SocketAddr) -> bool {
        let ip = canonical(addr.ip());
        self.scheme == use_scheme
            && self.net.is_some_and(|net| net.contains(&ip) || net.contains(&addr.ip()))
            && self.port.is_none_or(|p| p == addr.port())
    }

    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        if is_socket_scheme(&self.scheme) {
            return false;
        }
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
    /// Name lookups through `wasi:sockets/ip-name-lookup`.
    pub dns: bool,
    /// Raw TCP/UDP through `wasi:sockets`, to addresses a `tcp://`/`udp://`
    /// rule of every layer allows.
    pub sockets: bool,
    /// Which layer turned DNS or sockets off, for errors and `inspect`.
    off: Vec<(&'static str, String)>,
    /// HTTP methods it may send; `None`: any. A `read` tool gets GET and
    /// HEAD unless its tenant grants more (`grants.network.read_tier_methods`).
    pub methods: Option<Vec<String>>,
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
        let mut policy = EgressPolicy {
            layers: vec![(source.to_owned(), rules)],
            allow_addresses,
            dns: grant.dns,
            sockets: grant.sockets,
            off: Vec::new(),
            methods: None,
        };
        if !grant.dns {
            policy.off.push(("dns", format!("{source} does not grant name lookups (grants.network.dns)")));
        }
        if !grant.sockets {
            policy.off.push(("sockets", format!("{source} does not grant sockets (grants.network.sockets)")));
        }
        Ok(policy)
    }

    /// Turns name lookups off, saying which layer did.
    pub fn without_dns(&mut self, why: String) {
        if self.dns {
            self.dns = false;
            self.off.push(("dns", why));
        }
    }

    /// Turns raw sockets off, saying which layer did.
    pub fn without_sockets(&mut self, why: String) {
        if self.sockets {
            self.sockets = false;
            self.off.push(("sockets", why));
        }
    }

    /// Whether any socket could be opened: sockets on, and a `tcp://` or
    /// `udp://` rule in every layer.
    pub fn sockets_granted(&self) -> bool {
        self.sockets
            && !self.layers.is_empty()
            && self.layers.iter().all(|(_, rules)| rules.iter().any(|r| is_socket_scheme(&r.scheme)))
    }

    /// Why name lookups are refused.
    pub fn why_no_dns(&self) -> String {
        self.off
            .iter()
            .find(|(what, _)| *what == "dns")
            .map_or_else(|| "name lookups are not granted".to_owned(), |(_, why)| why.clone())
    }

    /// Why raw sockets are refused.
    pub fn why_no_sockets(&self) -> String {
        if let Some((_, why)) = self.off.iter().find(|(what, _)| *what == "sockets") {
            return why.clone();
        }
        match self.layers.iter().find(|(_, rules)| !rules.iter().any(|r| is_socket_scheme(&r.scheme))) {
            Some((source, _)) => format!("{source} allows no socket destination (no tcp:// or udp:// rule)"),
            None => "sockets are not granted".to_owned(),
        }
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

    /// Whether any HTTP request could pass (decides whether `wasi:http` is live).
    pub fn any_http(&self) -> bool {
        !self.layers.is_empty()
            && self.layers.iter().all(|(_, rules)| rules.iter().any(|r| !is_socket_scheme(&r.scheme)))
    }

    /// Which layer leaves no HTTP egress, for a load error.
    pub fn why_none(&self) -> String {
        match self.layers.iter().find(|(_, rules)| !rules.iter().any(|r| !is_socket_scheme(&r.scheme))) {
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

    /// Checks an HTTP method against what the tier allows.
    ///
    /// # Errors
    ///
    /// Names the method and the rule.
    pub fn check_method(&self, method: &str) -> Result<(), String> {
        match &self.methods {
            // Methods are case-sensitive: `get` is not GET.
            Some(allowed) if !allowed.iter().any(|m| m == method) => Err(format!(
                "a {method} request is refused: a read-tier component may send only {} (the tenant can allow more in grants.network.read_tier_methods)",
                allowed.join(", ")
            )),
            _ => Ok(()),
        }
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
    /// Checks a raw socket connection (`wasi:sockets`): sockets granted,
    /// the address and port on a `tcp://`/`udp://` rule of every layer,
    /// and [`EgressPolicy::check_addr`] (a restricted range only if the
    /// tenant opened it).
    ///
    /// # Errors
    ///
    /// Names the address and the layer or rule that refused it.
    pub fn check_socket(&self, scheme: &str, addr: std::net::SocketAddr) -> Result<(), String> {
        if !self.sockets {
            return Err(format!("{scheme} socket to {addr} denied: {}", self.why_no_sockets()));
        }
        if self.layers.is_empty() {
            return Err(format!("{scheme} socket to {addr} denied: no network is granted"));
        }
        for (source, rules) in &self.layers {
            if !rules.iter().any(|rule| rule.matches_socket(scheme, addr)) {
                let listed: Vec<String> =
                    rules.iter().filter(|r| is_socket_scheme(&r.scheme)).map(ToString::to_string).collect();
                return Err(format!(
                    "{scheme} socket to {addr} denied: not on the socket allow-list of {source} ([{}])",
                    listed.join(", ")
                ));
            }
        }
        let ip = canonical(addr.ip());
        self.check_addr(&ip.to_string(), ip)
    }
}

/// An IPv6 address that carries an IPv4 address (IPv4-mapped, the
/// deprecated IPv4-compatible form, the NAT64 well-known prefix
/// `64:ff9b::/96` and 6to4 `2002::/16`) as the IPv4 address it reaches,
/// so that every range check sees where a connection really goes.
pub fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    let o = v6.octets();
    let tail = std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15]);
    // ::a.b.c.d (but not :: and ::1, which are themselves).
    if s[..6].iter().all(|&x| x == 0) && (s[6] != 0 || s[7] > 1) {
        return IpAddr::V4(tail);
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|&x| x == 0) {
        return IpAddr::V4(tail);
    }
    if s[0] == 0x2002 {
        return IpAddr::V4(std::net::Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    ip
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
            } else if a == 192 && b == 0 && v4.octets()[2] == 0 {
                // 192.0.0.192 is a metadata address on some clouds.
                Some("IETF protocol assignment")
            } else if a == 198 && (b == 18 || b == 19) {
                Some("benchmarking")
            } else if a >= 240 {
                Some("reserved")
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
            } else if first & 0xffc0 == 0xfec0 {
                Some("site-local")
            } else if first == 0x2001 && v6.segments()[1] == 0 {
                // Teredo tunnels to an IPv4 address it hides.
                Some("Teredo")
            } else if first == 0x2001 && v6.segments()[1] == 0x0db8 {
                Some("documentation")
            } else if first == 0x64 && v6.segments()[1] == 0xff9b && v6.segments()[2] == 1 {
                // 64:ff9b:1::/48: NAT64 for local use (RFC 8215); where it
                // leads is the operator's private network.
                Some("private (local-use NAT64)")
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
            // NAT64, IPv4-compatible, 6to4 and site-local forms.
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "::127.0.0.1",
            "::169.254.169.254",
            "2002:7f00:1::1",
            "fec0::1",
            "192.0.0.192",
            "198.18.0.1",
            "240.0.0.1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        ] {
            let err = none.check_addr("h", addr.parse().unwrap()).unwrap_err();
            assert!(err.contains("denied"), "{addr}: {err}");
        }
        assert!(none.check_addr("h", "93.184.216.34".parse().unwrap()).is_ok());
        assert!(none.check_addr("h", "64:ff9b::5db8:d822".parse().unwrap()).is_ok());
        assert!(none.check_addr("h", "2606:4700::1111".parse().unwrap()).is_ok());
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
