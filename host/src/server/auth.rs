//! Who is calling: bearer JWTs checked against the issuers in host.toml
//! (`[[server.issuers]]`), mapped to a [`Caller`] with a subject, tenants
//! and roles.
//!
//! Trust boundary: the token is attacker-controlled until it verifies.
//! The algorithm comes from the configured key, never from the token's
//! header (no `none`, no RSA key used as an HMAC secret); `exp`, `iss`,
//! `aud` and `sub` are required; the keys come from the config directory.

use std::collections::BTreeSet;
use std::path::Path;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

use crate::settings::IssuerSettings;

/// The largest bearer token looked at, in bytes.
pub const MAX_TOKEN: usize = 8 * 1024;

/// What a caller may do. A route names the role it needs; a caller has the
/// roles its token lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Invoke tools, run agents, read their own runs.
    TenantUser,
    /// Deploy versions, set aliases, promote, roll back.
    Deployer,
    /// Decide approval requests.
    Approver,
    /// See tenants, health and every tenant's metadata, never payloads.
    Operator,
    /// Query and verify the audit trail.
    Auditor,
}

impl Role {
    pub fn parse(name: &str) -> Option<Role> {
        Some(match name {
            "tenant-user" => Role::TenantUser,
            "deployer" => Role::Deployer,
            "approver" => Role::Approver,
            "operator" => Role::Operator,
            "auditor" => Role::Auditor,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::TenantUser => "tenant-user",
            Role::Deployer => "deployer",
            Role::Approver => "approver",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
        }
    }

    /// Roles whose tenants claim may be `*` (every tenant): those that see
    /// metadata and evidence, not those that act inside a tenant.
    fn may_span_tenants(self) -> bool {
        matches!(self, Role::Operator | Role::Auditor)
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`: the principal policies, approvals and audit see.
    pub subject: String,
    pub issuer: String,
    /// The tenants it acts in; `*` for every tenant.
    pub tenants: BTreeSet<String>,
    pub roles: BTreeSet<Role>,
}

impl Caller {
    /// Whether the caller has `role` in `tenant`.
    pub fn may(&self, role: Role, tenant: &str) -> bool {
        self.roles.contains(&role)
            && (self.tenants.contains(tenant) || (role.may_span_tenants() && self.tenants.contains("*")))
    }

    /// Whether the caller has `role` at all (for routes over every tenant).
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Why a token was refused (401).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

struct IssuerKey {
    kid: Option<String>,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

struct Issuer {
    settings: IssuerSettings,
    keys: Vec<IssuerKey>,
}

/// The issuers a server trusts, with their keys.
pub struct Verifier {
    issuers: Vec<Issuer>,
    /// Tokens that verified, by their sha256, until their `exp`: a client
    /// that sends the same token on every request pays for one signature
    /// check, not one per request.
    verified: std::sync::Mutex<std::collections::HashMap<[u8; 32], (Caller, u64)>>,
}

/// How many verified tokens are remembered (the map is emptied when full).
const VERIFIED_CACHE: usize = 4096;

fn family(algorithm: Algorithm) -> Vec<Algorithm> {
    match algorithm {
        Algorithm::EdDSA => vec![Algorithm::EdDSA],
        Algorithm::ES256 | Algorithm::ES384 => vec![algorithm],
        _ => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
    }
}

/// A PEM public key and the algorithms it may verify.
fn pem_key(pem: &[u8]) -> Option<(DecodingKey, Vec<Algorithm>)> {
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Some((key, vec![Algorithm::EdDSA]));
    }
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Some((key, family(Algorithm::RS256)));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(pem) {
        // P-256 or P-384: the token's header picks, the key's curve checks.
        return Some((key, vec![Algorithm::ES256, Algorithm::ES384]));
    }
    None
}

impl Verifier {
    /// Reads every issuer's keys (paths relative to `config_dir`).
    ///
    /// # Errors
    ///
    /// Names the issuer and the key file that cannot be read or used.
    pub fn load(issuers: &[IssuerSettings], config_dir: &Path) -> Result<Verifier, String> {
        let mut loaded = Vec::new();
        for settings in issuers {
            let what = format!("[[server.issuers]] `{}`", settings.issuer);
            if let Some(prefix) = settings.subject_prefix.as_deref()
                && prefix.starts_with(crate::vocab::EVENT_PRINCIPAL_PREFIX)
            {
                return Err(format!(
                    "{what}: subject_prefix `{prefix}` begins with `{}`, which the host keeps for event-driven runs",
                    crate::vocab::EVENT_PRINCIPAL_PREFIX
                ));
            }
            let mut keys = Vec::new();
            for path in &settings.keys {
                let full = config_dir.join(path);
                let pem = std::fs::read(&full)
                    .map_err(|e| format!("{what}: cannot read key {}: {e}", full.display()))?;
                let (key, algorithms) = pem_key(&pem).ok_or_else(|| {
                    format!("{what}: {} is not an Ed25519, RSA or EC public key in PEM", full.display())
                })?;
                keys.push(IssuerKey { kid: None, key, algorithms });
            }
            if let Some(path) = &settings.jwks {
                let full = config_dir.join(path);
                let text = std::fs::read_to_string(&full)
                    .map_err(|e| format!("{what}: cannot read the JWKS {}: {e}", full.display()))?;
                let set: JwkSet = serde_json::from_str(&text)
                    .map_err(|e| format!("{what}: {} is not a JWKS: {e}", full.display()))?;
                for jwk in &set.keys {
                    let kid = jwk.common.key_id.clone();
                    let key = DecodingKey::from_jwk(jwk)
                        .map_err(|e| format!("{what}: JWKS key {kid:?} cannot be used: {e}"))?;
                    let algorithms = match &jwk.algorithm {
                        AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
                        AlgorithmParameters::RSA(_) => family(Algorithm::RS256),
                        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                            EllipticCurve::P384 => vec![Algorithm::ES384],
                            _ => vec![Algorithm::ES256],
                        },
                        AlgorithmParameters::OctetKey(_) => {
                            return Err(format!(
                                "{what}: JWKS key {kid:?} is a shared secret; only public keys are accepted"
                            ));
                        }
                    };
                    keys.push(IssuerKey { kid, key, algorithms });
                }
            }
            if keys.is_empty() {
                return Err(format!("{what} lists no keys (keys = [...] or jwks = \"...\")"));
            }
            loaded.push(Issuer { settings: settings.clone(), keys });
        }
        if issuers.len() > 1 {
            // Distinct is not enough: with `okta:` and `okta:eu:`, the first
            // issuer's subject `eu:alice` would be the second's `alice`.
            let prefixes: Vec<&str> =
                issuers.iter().map(|i| i.subject_prefix.as_deref().unwrap_or_default()).collect();
            for (i, issuer) in issuers.iter().enumerate() {
                let mine = prefixes[i];
                let clash = prefixes.iter().enumerate().any(|(j, other)| j != i && other.starts_with(mine));
                if mine.is_empty() || clash {
                    return Err(format!(
                        "[[server.issuers]] `{}`: with several issuers each needs a subject_prefix that no other issuer's begins with (e.g. \"okta:\" and \"dev:\"), so that no issuer can mint another's subjects",
                        issuer.issuer
                    ));
                }
            }
        }
        Ok(Verifier { issuers: loaded, verified: std::sync::Mutex::new(std::collections::HashMap::new()) })
    }

    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    /// Checks a bearer token and maps its claims.
    ///
    /// # Errors
    ///
    /// Why it was refused: malformed, unknown issuer, bad signature,
    /// expired, wrong audience, missing subject, no known role.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        if token.len() > MAX_TOKEN {
            return Err(AuthError(format!("the bearer token is longer than {MAX_TOKEN} bytes")));
        }
        use sha2::Digest as _;
        let key: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let now = crate::governance::approvals::now_secs();
        if let Ok(cache) = self.verified.lock()
            && let Some((caller, exp)) = cache.get(&key)
            && now < *exp
        {
            return Ok(caller.clone());
        }
        let (caller, exp) = self.verify_uncached(token)?;
        if let Ok(mut cache) = self.verified.lock() {
            if cache.len() >= VERIFIED_CACHE {
                cache.clear();
            }
            cache.insert(key, (caller.clone(), exp));
        }
        Ok(caller)
    }

    /// [`Verifier::verify`] without the cache; also returns `exp`.
    fn verify_uncached(&self, token: &str) -> Result<(Caller, u64), AuthError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError(format!("the bearer token is malformed: {e}")))?;
        // The issuer is read unverified only to pick its keys.
        let claimed =
            unverified_issuer(token).ok_or_else(|| AuthError("the bearer token has no `iss`".into()))?;
        let issuer = self.issuers.iter().find(|i| i.settings.issuer == claimed).ok_or_else(|| {
            AuthError(format!("issuer `{}` is not trusted by this server", crate::text::clip(&claimed)))
        })?;
        let mut last = AuthError("no key of the issuer verifies the token".into());
        for key in &issuer.keys {
            if key.kid.is_some() && header.kid.is_some() && key.kid != header.kid {
                continue;
            }
            if !key.algorithms.contains(&header.alg) {
                last = AuthError(format!("algorithm {:?} does not fit the issuer's key", header.alg));
                continue;
            }
            let mut validation = Validation::new(header.alg);
            validation.algorithms = key.algorithms.clone();
            validation.set_issuer(&[&issuer.settings.issuer]);
            validation.set_audience(&[&issuer.settings.audience]);
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation.validate_nbf = true;
            validation.leeway = issuer.settings.leeway_secs;
            match jsonwebtoken::decode::<Value>(token, &key.key, &validation) {
                Ok(data) => {
                    // Remembered only until `exp` (less the leeway it was granted).
                    let exp = data.claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
                    return caller(&issuer.settings, &data.claims).map(|c| (c, exp));
                }
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind as K;
                    last = AuthError(match e.kind() {
                        K::ExpiredSignature => "the bearer token has expired".to_owned(),
                        K::ImmatureSignature => "the bearer token is not valid yet (nbf)".to_owned(),
                        K::InvalidSignature => "the bearer token's signature does not verify".to_owned(),
                        K::InvalidAudience => {
                            format!("the bearer token is not for audience `{}`", issuer.settings.audience)
                        }
                        K::MissingRequiredClaim(claim) => format!("the bearer token has no `{claim}`"),
                        _ => format!("the bearer token is refused: {e}"),
                    });
                    if !matches!(e.kind(), K::InvalidSignature | K::InvalidAlgorithm) {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }
}

/// The `iss` of an unverified token, to choose which keys check it.
fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_owned)
}

/// A claim as a list of strings: a JSON array, or one space-separated string.
fn strings(claims: &Value, name: &str) -> Vec<String> {
    match claims.get(name) {
        Some(Value::Array(items)) => {
            items.iter().filter_map(|v| v.as_str().map(str::to_owned)).take(256).collect()
        }
        Some(Value::String(s)) => s.split_whitespace().take(256).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

fn caller(issuer: &IssuerSettings, claims: &Value) -> Result<Caller, AuthError> {
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or_default();
    if sub.is_empty() || sub.len() > 128 || sub.chars().any(char::is_control) {
        return Err(AuthError("the bearer token's `sub` is empty, too long or not printable".into()));
    }
    let subject = format!("{}{sub}", issuer.subject_prefix.as_deref().unwrap_or_default());
    if crate::vocab::is_reserved_principal(&subject) {
        return Err(AuthError(format!(
            "the bearer token's subject `{}` is a name the host keeps for itself (`{}…`, `{}…`, `{}`, `{}`)",
            crate::text::clip(&subject),
            crate::vocab::EVENT_PRINCIPAL_PREFIX,
            crate::vocab::DIRECT_PRINCIPAL_PREFIX,
            crate::vocab::HOST_PRINCIPAL,
            crate::vocab::ANONYMOUS_PRINCIPAL
        )));
    }
    let allowed =
        |list: &Option<Vec<String>>, item: &str| list.as_ref().is_none_or(|l| l.iter().any(|x| x == item));
    let roles: BTreeSet<Role> = strings(claims, &issuer.roles_claim)
        .iter()
        .filter(|r| allowed(&issuer.roles, r))
        .filter_map(|r| Role::parse(r))
        .collect();
    if roles.is_empty() {
        return Err(AuthError(format!(
            "the bearer token grants no known role in `{}` (tenant-user, deployer, approver, operator, auditor)",
            issuer.roles_claim
        )));
    }
    Ok(Caller {
        subject,
        issuer: issuer.issuer.clone(),
        tenants: strings(claims, &issuer.tenants_claim)
            .into_iter()
            .filter(|t| allowed(&issuer.tenants, t))
            .collect(),
        roles,
    })
}

/// What `agenthost token issue` puts in a token.
pub struct TokenRequest<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub subject: &'a str,
    pub tenants: &'a [String],
    pub roles: &'a [String],
    pub ttl_secs: u64,
}

/// Mints an EdDSA token with an ed25519 private key (PKCS#8 PEM), for
/// development and tests.
///
/// # Errors
///
/// An unknown role, or a key that is not an ed25519 private key.
pub fn issue(request: &TokenRequest<'_>, private_pem: &[u8], key_id: &str) -> Result<String, String> {
    for role in request.roles {
        if Role::parse(role).is_none() {
            return Err(format!(
                "role `{role}` is not one of tenant-user, deployer, approver, operator, auditor"
            ));
        }
    }
    let now = crate::governance::approvals::now_secs();
    let claims = json!({
        "iss": request.issuer,
        "aud": request.audience,
        "sub": request.subject,
        "tenants": request.tenants,
        "roles": request.roles,
        "iat": now,
        "nbf": now,
        "exp": now.saturating_add(request.ttl_secs),
    });
    let key = EncodingKey::from_ed_pem(private_pem)
        .map_err(|e| format!("not an ed25519 private key (PKCS#8 PEM): {e}"))?;
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key_id.to_owned());
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| format!("cannot sign the token: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyPair;
    use base64::Engine as _;

    fn settings(keys: Vec<std::path::PathBuf>, jwks: Option<std::path::PathBuf>) -> IssuerSettings {
        IssuerSettings {
            issuer: "idp".into(),
            audience: "agenthost".into(),
            keys,
            jwks,
            tenants_claim: "tenants".into(),
            roles_claim: "roles".into(),
            leeway_secs: 0,
            subject_prefix: None,
            tenants: None,
            roles: None,
        }
    }

    fn token(key: &KeyPair, roles: &[&str]) -> String {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        let request = TokenRequest {
            issuer: "idp",
            audience: "agenthost",
            subject: "ursula",
            tenants: &["acme".to_owned()],
            roles: &roles,
            ttl_secs: 600,
        };
        issue(&request, key.private_pem().expect("pem").as_bytes(), &key.id()).expect("token")
    }

    #[test]
    fn a_jwks_key_verifies_and_its_own_algorithm_is_the_only_one_accepted() {
        let dir = tempfile::tempdir().expect("dir");
        let key = KeyPair::generate();
        // The raw Ed25519 key is the last 32 bytes of its SPKI encoding.
        let pem = key.public().pem().expect("pem");
        let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(der).expect("der");
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&der[der.len() - 32..]);
        let jwks =
            json!({ "keys": [{ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": key.id(), "alg": "EdDSA" }] });
        std::fs::write(dir.path().join("jwks.json"), jwks.to_string()).expect("write");
        let verifier =
            Verifier::load(&[settings(vec![], Some("jwks.json".into()))], dir.path()).expect("load");
        let caller = verifier.verify(&token(&key, &["tenant-user"])).expect("verifies");
        assert_eq!(caller.subject, "ursula");
        assert!(caller.may(Role::TenantUser, "acme") && !caller.may(Role::TenantUser, "globex"));
        assert!(!caller.may(Role::Deployer, "acme"));

        // HS256 with the public key as the shared secret: refused.
        let header =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(
            json!({ "iss": "idp", "aud": "agenthost", "sub": "mallory", "roles": ["operator"], "tenants": ["*"], "exp": 4_000_000_000u64 })
                .to_string(),
        );
        let forged = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &json!({ "iss": "idp", "aud": "agenthost", "sub": "mallory", "roles": ["operator"], "exp": 4_000_000_000u64 }),
            &EncodingKey::from_secret(pem.as_bytes()),
        )
        .expect("hs256");
        assert!(verifier.verify(&forged).is_err());
        assert!(verifier.verify(&format!("{header}.{claims}.")).is_err(), "alg none-like tokens are refused");
        // Another key's signature, a token without a known role.
        assert!(verifier.verify(&token(&KeyPair::generate(), &["tenant-user"])).is_err());
        let unknown_role = jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &json!({ "iss": "idp", "aud": "agenthost", "sub": "ursula", "roles": ["superuser"], "tenants": ["acme"], "exp": 4_000_000_000u64 }),
            &EncodingKey::from_ed_pem(key.private_pem().expect("pem").as_bytes()).expect("key"),
        )
        .expect("token");
        let refused = verifier.verify(&unknown_role).expect_err("refused");
        assert!(refused.0.contains("no known role"), "{refused}");
    }

    #[test]
    fn a_remembered_token_still_expires_and_star_is_for_operators_and_auditors_only() {
        let dir = tempfile::tempdir().expect("dir");
        let key = KeyPair::generate();
        std::fs::write(dir.path().join("idp.pub"), key.public().pem().expect("pem")).expect("write");
        let verifier = Verifier::load(&[settings(vec!["idp.pub".into()], None)], dir.path()).expect("load");
        let t = token(&key, &["tenant-user"]);
        verifier.verify(&t).expect("verifies");
        // The remembered entry is what answers while it lasts…
        let set = |subject: &str, exp: u64| {
            let mut cache = verifier.verified.lock().expect("lock");
            for (caller, e) in cache.values_mut() {
                caller.subject = subject.to_owned();
                *e = exp;
            }
        };
        set("remembered", u64::MAX);
        assert_eq!(verifier.verify(&t).expect("cached").subject, "remembered");
        // …and never past its `exp`: then the token is checked afresh.
        set("remembered", 0);
        assert_eq!(verifier.verify(&t).expect("re-verified").subject, "ursula");
        let star = Caller {
            subject: "olga".into(),
            issuer: "idp".into(),
            tenants: ["*".to_owned()].into(),
            roles: [Role::Operator, Role::TenantUser].into(),
        };
        assert!(star.may(Role::Operator, "acme"));
        assert!(!star.may(Role::TenantUser, "acme"), "`*` never lets a caller act inside a tenant");
    }
}

#[cfg(test)]
mod scoping {
    use super::*;

    #[test]
    fn an_issuer_names_only_its_own_subjects_tenants_and_roles() {
        let mut a = IssuerSettings {
            issuer: "a".into(),
            audience: "agenthost".into(),
            keys: vec![],
            jwks: None,
            tenants_claim: "tenants".into(),
            roles_claim: "roles".into(),
            leeway_secs: 0,
            subject_prefix: Some("a:".into()),
            tenants: Some(vec!["acme".into()]),
            roles: Some(vec!["tenant-user".into()]),
        };
        let claims = json!({ "sub": "alice", "tenants": ["acme", "globex", "*"], "roles": ["tenant-user", "operator"] });
        let c = caller(&a, &claims).expect("caller");
        assert_eq!(c.subject, "a:alice");
        assert_eq!(c.tenants, ["acme".to_owned()].into());
        assert_eq!(c.roles, [Role::TenantUser].into());
        a.roles = Some(vec!["deployer".into()]);
        assert!(caller(&a, &claims).is_err(), "no role left is no caller");

        // Names the host keeps for itself are nobody's subject.
        let mut bare = a.clone();
        bare.subject_prefix = None;
        bare.roles = None;
        for sub in ["event:billing", "lambda:ursula", "agenthost", "anonymous"] {
            let claims = json!({ "sub": sub, "tenants": ["acme"], "roles": ["tenant-user"] });
            let refused = caller(&bare, &claims).expect_err(sub);
            assert!(refused.0.contains("keeps for itself"), "{sub}: {}", refused.0);
        }
        let mut ev = bare.clone();
        ev.subject_prefix = Some("ev".into());
        let claims = json!({ "sub": "ent:billing", "tenants": ["acme"], "roles": ["tenant-user"] });
        let refused = caller(&ev, &claims).expect_err("a prefix and a subject that add up to `event:`");
        assert!(refused.0.contains("keeps for itself"), "{}", refused.0);
        let claims = json!({ "sub": "eventual", "tenants": ["acme"], "roles": ["tenant-user"] });
        assert_eq!(caller(&bare, &claims).expect("not reserved").subject, "eventual");

        // Two issuers without distinct prefixes are refused at load.
        let dir = tempfile::tempdir().expect("dir");
        let key = crate::keys::KeyPair::generate();
        std::fs::write(dir.path().join("k.pub"), key.public().pem().expect("pem")).expect("write");
        let mut one = a.clone();
        one.keys = vec!["k.pub".into()];
        let mut events = one.clone();
        events.subject_prefix = Some("event:x:".into());
        let refused = Verifier::load(&[events], dir.path()).err().expect("an event: prefix is refused");
        assert!(refused.contains("event-driven runs"), "{refused}");
        let mut two = one.clone();
        two.issuer = "b".into();
        assert!(Verifier::load(&[one.clone(), two.clone()], dir.path()).is_err());
        two.subject_prefix = Some("a:eu:".into());
        assert!(
            Verifier::load(&[one.clone(), two.clone()], dir.path()).is_err(),
            "`a:` would mint `a:eu:`'s subjects"
        );
        two.subject_prefix = Some("b:".into());
        assert!(Verifier::load(&[one, two], dir.path()).is_ok());
    }
}
