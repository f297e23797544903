//! Ed25519 keys and signatures over canonical JSON.
//!
//! Keys are stored as PKCS#8 PEM (private) and SPKI PEM (public), the
//! formats `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout`
//! produce, so operators can make and inspect them with standard tools.
//! A key's id is `ed25519:` followed by the first 16 hex digits of the
//! sha256 of its 32 public-key bytes.
//!
//! Canonical JSON (what every signature in agenthost covers): objects with
//! keys sorted by their UTF-8 bytes, no whitespace, strings and numbers as
//! `serde_json` writes them. Signed documents never contain floats.

use std::fmt::Write as _;
use std::path::Path;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A private signing key and its id.
#[derive(Clone)]
pub struct KeyPair {
    signing: SigningKey,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair").field("id", &self.id()).finish_non_exhaustive()
    }
}

impl KeyPair {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        let seed: [u8; 32] = rand::random();
        KeyPair { signing: SigningKey::from_bytes(&seed) }
    }

    /// Reads a PKCS#8 PEM private key.
    ///
    /// # Errors
    ///
    /// Names the file and what is wrong with it.
    pub fn read(path: &Path) -> Result<Self, String> {
        let pem = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the signing key {}: {e}", path.display()))?;
        Self::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses a PKCS#8 PEM private key.
    ///
    /// # Errors
    ///
    /// When the text is not an Ed25519 private key.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let signing = SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| format!("not an Ed25519 private key in PKCS#8 PEM form: {e}"))?;
        Ok(KeyPair { signing })
    }

    /// A key from 32 seed bytes (tests that need the same key twice).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        KeyPair { signing: SigningKey::from_bytes(&seed) }
    }

    /// The private key as PKCS#8 PEM.
    ///
    /// # Errors
    ///
    /// When encoding fails (it does not for a valid key).
    pub fn private_pem(&self) -> Result<String, String> {
        self.signing
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|e| format!("cannot encode the private key: {e}"))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey { key: self.signing.verifying_key() }
    }

    pub fn id(&self) -> String {
        self.public().id()
    }

    /// Signs the canonical form of `document`; the signature as hex.
    pub fn sign_json(&self, document: &Value) -> String {
        hex::encode(self.signing.sign(canonical_json(document).as_bytes()).to_bytes())
    }

    /// Signs raw bytes; the signature as hex.
    pub fn sign_bytes(&self, bytes: &[u8]) -> String {
        hex::encode(self.signing.sign(bytes).to_bytes())
    }
}

/// A public key that verifies signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
}

impl PublicKey {
    /// Reads an SPKI PEM public key (or derives it from a PKCS#8 private key
    /// file, so an operator can point at either).
    ///
    /// # Errors
    ///
    /// Names the file and what is wrong with it.
    pub fn read(path: &Path) -> Result<Self, String> {
        let pem = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the public key {}: {e}", path.display()))?;
        Self::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parses an SPKI PEM public key.
    ///
    /// # Errors
    ///
    /// When the text is not an Ed25519 public key.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        if let Ok(key) = VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey { key });
        }
        SigningKey::from_pkcs8_pem(pem)
            .map(|signing| PublicKey { key: signing.verifying_key() })
            .map_err(|e| format!("not an Ed25519 public key in SPKI PEM form: {e}"))
    }

    /// The key as SPKI PEM.
    ///
    /// # Errors
    ///
    /// When encoding fails (it does not for a valid key).
    pub fn pem(&self) -> Result<String, String> {
        self.key.to_public_key_pem(LineEnding::LF).map_err(|e| format!("cannot encode the public key: {e}"))
    }

    /// `ed25519:<16 hex digits>`.
    pub fn id(&self) -> String {
        let digest = Sha256::digest(self.key.as_bytes());
        format!("ed25519:{}", hex::encode(&digest[..8]))
    }

    /// Checks a hex signature over the canonical form of `document`.
    ///
    /// # Errors
    ///
    /// `malformed` when the signature is not 64 hex-encoded bytes,
    /// `mismatch` when it does not verify.
    pub fn verify_json(&self, document: &Value, signature_hex: &str) -> Result<(), SignatureError> {
        self.verify_bytes(canonical_json(document).as_bytes(), signature_hex)
    }

    /// Checks a hex signature over raw bytes.
    ///
    /// # Errors
    ///
    /// As [`PublicKey::verify_json`].
    pub fn verify_bytes(&self, bytes: &[u8], signature_hex: &str) -> Result<(), SignatureError> {
        let raw = hex::decode(signature_hex).map_err(|_| SignatureError::Malformed)?;
        let raw: [u8; 64] = raw.try_into().map_err(|_| SignatureError::Malformed)?;
        self.key.verify(bytes, &Signature::from_bytes(&raw)).map_err(|_| SignatureError::Mismatch)
    }
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    Malformed,
    Mismatch,
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignatureError::Malformed => "the signature is not 64 hex-encoded bytes",
            SignatureError::Mismatch => {
                "the signature does not match the content (altered, or signed by another key)"
            }
        })
    }
}

/// Writes a fresh key pair: `<stem>.key` (PKCS#8 PEM, mode 0600) and
/// `<stem>.pub` (SPKI PEM). Returns the key id.
///
/// # Errors
///
/// When a file exists already or cannot be written.
pub fn write_key_pair(stem: &Path) -> Result<(String, std::path::PathBuf, std::path::PathBuf), String> {
    let pair = KeyPair::generate();
    let private = stem.with_extension("key");
    let public = stem.with_extension("pub");
    for path in [&private, &public] {
        if path.exists() {
            return Err(format!("{} exists already; refusing to overwrite a key", path.display()));
        }
    }
    write_private(&private, &pair.private_pem()?)?;
    std::fs::write(&public, pair.public().pem()?)
        .map_err(|e| format!("cannot write {}: {e}", public.display()))?;
    Ok((pair.id(), private, public))
}

fn write_private(path: &Path, pem: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(pem.as_bytes()).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The canonical text of a JSON value (see the module docs).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{}", Value::String(key.clone()));
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => {
            let _ = write!(out, "{scalar}");
        }
    }
}

/// `sha256:<hex>` of some bytes.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_form_sorts_keys_at_every_depth() {
        let a = json!({"b": 1, "a": {"y": [2, {"d": 1, "c": 2}], "x": "s"}});
        assert_eq!(canonical_json(&a), r#"{"a":{"x":"s","y":[2,{"c":2,"d":1}]},"b":1}"#);
    }

    #[test]
    fn a_signature_covers_content_not_key_order() {
        let pair = KeyPair::generate();
        let doc = json!({"b": 1, "a": 2});
        let signature = pair.sign_json(&doc);
        assert_eq!(pair.public().verify_json(&json!({"a": 2, "b": 1}), &signature), Ok(()));
        assert_eq!(
            pair.public().verify_json(&json!({"a": 3, "b": 1}), &signature),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(pair.public().verify_json(&doc, "zz"), Err(SignatureError::Malformed));
        let pem = pair.public().pem().unwrap();
        assert_eq!(PublicKey::from_pem(&pem).unwrap().id(), pair.id());
    }
}
