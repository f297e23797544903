//! Where approval requests and spent tokens are kept, and the decisions
//! made on them.
//!
//! [`ApprovalStore`] holds the rules (who may decide, what a token must be
//! bound to, a token spent once); [`ApprovalRecords`] is where its records
//! live. Two places:
//!
//! - [`FileRecords`], under `<data-dir>/approvals/` (`requests/<id>.json`,
//!   `consumed/<token-nonce>`, `waiting/<id>` holding its expiry): one machine — the CLI and a server sharing
//!   a data directory. A token's use is an exclusive create, so it holds
//!   across processes; a decision is a read-modify-write serialised in the
//!   process.
//! - the memory backend (`MemoryApprovals` in the brokers, used when
//!   `[memory] backend = "dynamodb"`): every replica of a server and every
//!   Lambda execution environment sees the same requests. A decision is a
//!   compare-and-set on the request's version, a token's use a create that
//!   fails if it exists, so two processes deciding at once, or presenting
//!   one token at once, cannot both win.
//!
//! A store of the second kind starts unconnected (governance loads before
//! the backends open) and refuses every call until [`ApprovalStore::connect`]
//! gives it its records: a host never silently falls back to a local
//! directory other replicas cannot see.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};

use sha2::{Digest, Sha256};

use super::approvals::{
    ApprovalRequest, ApprovalToken, Approver, ApproverDecision, REQUEST_TTL_SECS, Resume, Status,
    TokenClaims, now_secs,
};
use super::error::ApprovalError;
use crate::keys::{KeyPair, PublicKey};

/// A boxed future of a records backend.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How long a decided or expired request stays listable (and a spent
/// token's mark kept past its expiry), in seconds.
pub const KEPT_AFTER_SECS: u64 = 7 * 24 * 60 * 60;
/// The most requests a listing reads.
pub const MAX_LISTED: usize = 1000;
/// Requests a tenant may have waiting for decisions at once, unless its
/// `[quotas] pending_approvals` says otherwise.
pub const DEFAULT_WAITING: usize = 100;
/// How often a decision is tried again when another process wrote first.
const ATTEMPTS: usize = 8;

/// A stored request: its bytes, and the version a write is checked against.
#[derive(Debug, Clone)]
pub struct Stored {
    pub bytes: Vec<u8>,
    pub version: u64,
}

/// Where requests and spent-token marks live.
pub trait ApprovalRecords: Send + Sync {
    /// Where, for messages: `files under …`, `the memory backend (dynamodb)`.
    fn describe(&self) -> String;

    /// The request `id` (already checked to be well formed), if stored.
    fn load<'a>(&'a self, id: &'a str) -> Pending<'a, Result<Option<Stored>, ApprovalError>>;

    /// Writes the request if the stored version is `expected` (`0`: only
    /// if absent); `Ok(false)` when another writer came first. The record
    /// may be dropped after `keep_until` (Unix seconds).
    fn store<'a>(
        &'a self,
        id: &'a str,
        bytes: Vec<u8>,
        expected: u64,
        keep_until: u64,
    ) -> Pending<'a, Result<bool, ApprovalError>>;

    /// Ids of stored requests (of one tenant, or all), at most `limit`.
    fn ids<'a>(
        &'a self,
        tenant: Option<&'a str>,
        limit: usize,
    ) -> Pending<'a, Result<Vec<String>, ApprovalError>>;

    /// Marks (`true`) or unmarks request `id` as holding a paused workflow.
    fn set_parked<'a>(
        &'a self,
        id: &'a str,
        parked: bool,
        keep_until: u64,
    ) -> Pending<'a, Result<(), ApprovalError>>;

    /// Ids of requests marked as holding a paused workflow, at most `limit`.
    fn parked(&self, limit: usize) -> Pending<'_, Result<Vec<String>, ApprovalError>>;

    /// Marks (`true`, until `expires_at`) or unmarks request `id` as waiting
    /// for decisions (counted under the tenant its id names).
    fn set_waiting<'a>(
        &'a self,
        id: &'a str,
        waiting: bool,
        expires_at: u64,
    ) -> Pending<'a, Result<(), ApprovalError>>;

    /// How many of `tenant`'s requests wait for decisions (marked and not
    /// expired), counted up to `limit`.
    fn waiting<'a>(&'a self, tenant: &'a str, limit: usize) -> Pending<'a, Result<usize, ApprovalError>>;

    /// Marks a token's nonce used; `Ok(false)` when it already was.
    fn mark_used<'a>(&'a self, nonce: &'a str, keep_until: u64) -> Pending<'a, Result<bool, ApprovalError>>;

    /// Takes a mark back (a call that then did not run).
    fn unmark<'a>(&'a self, nonce: &'a str) -> Pending<'a, Result<(), ApprovalError>>;

    fn is_used<'a>(&'a self, nonce: &'a str) -> Pending<'a, Result<bool, ApprovalError>>;
}

/// The store of requests and consumed tokens.
pub struct ApprovalStore {
    records: OnceLock<Arc<dyn ApprovalRecords>>,
    /// The directory of a store of files.
    dir: Option<PathBuf>,
    /// For an unconnected store: where its records are to come from.
    awaits: &'static str,
}

impl std::fmt::Debug for ApprovalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at =
            self.records.get().map_or_else(|| format!("unconnected ({})", self.awaits), |r| r.describe());
        f.debug_struct("ApprovalStore").field("records", &at).finish()
    }
}

impl ApprovalStore {
    /// A store under `dir` (created).
    ///
    /// # Errors
    ///
    /// When the directories cannot be created.
    pub fn open(dir: &Path) -> Result<Self, ApprovalError> {
        let mut store = ApprovalStore::unconnected("files");
        store.connect(Arc::new(FileRecords::open(dir)?))?;
        store.dir = Some(dir.to_owned());
        Ok(store)
    }

    /// A store whose records come later ([`ApprovalStore::connect`]), from
    /// `awaits` (named in the error a call gets before then).
    pub fn unconnected(awaits: &'static str) -> Self {
        ApprovalStore { records: OnceLock::new(), dir: None, awaits }
    }

    /// The directory of a store of files (`None` for a shared one).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Gives the store its records, once.
    ///
    /// # Errors
    ///
    /// When it has records already.
    pub fn connect(&self, records: Arc<dyn ApprovalRecords>) -> Result<(), ApprovalError> {
        self.records
            .set(records)
            .map_err(|_| ApprovalError::Internal("the approvals store is connected already".to_owned()))
    }

    pub fn is_connected(&self) -> bool {
        self.records.get().is_some()
    }

    /// Where the records are kept, for messages.
    pub fn describe(&self) -> String {
        self.records.get().map_or_else(|| format!("unconnected ({})", self.awaits), |r| r.describe())
    }

    fn records(&self) -> Result<&Arc<dyn ApprovalRecords>, ApprovalError> {
        self.records.get().ok_or_else(|| {
            ApprovalError::Unavailable(format!(
                "approvals are kept in {} and this process has not connected to it",
                self.awaits
            ))
        })
    }

    /// Records a new pending request, signed with `host_key` when given,
    /// unless its tenant has `at_most` requests waiting for decisions
    /// already (a tenant's calls cannot bury its approvers, or fill the
    /// store, with requests nobody will read). The count is read before the
    /// write: calls that need approval at the very same moment (across
    /// replicas) may pass the bound by as many as they are.
    ///
    /// # Errors
    ///
    /// [`ApprovalError::TooMany`] at the bound; when it cannot be encoded
    /// or written.
    pub async fn create_signed(
        &self,
        mut request: ApprovalRequest,
        host_key: Option<&KeyPair>,
        at_most: usize,
    ) -> Result<ApprovalRequest, ApprovalError> {
        let records = self.records()?;
        if records.waiting(&request.tenant, at_most).await? >= at_most {
            return Err(ApprovalError::TooMany { tenant: request.tenant.clone(), limit: at_most });
        }
        for _ in 0..ATTEMPTS {
            // The tenant is part of the id, so a shared store keeps each
            // tenant's requests apart (one tenant's many requests never
            // crowd another's out of a listing).
            request.id = format!("apr-{}-{}", request.tenant, hex::encode(rand::random::<[u8; 8]>()));
            request.host_signature = None;
            if let Some(key) = host_key {
                let content = request.signed_content().map_err(ApprovalError::Internal)?;
                request.host_signature = Some(super::manifest::ManifestSignature {
                    key_id: key.id(),
                    value: key.sign_json(&content),
                });
            }
            let bytes = encode(&request)?;
            let keep = keep_until(&request);
            if records.store(&request.id, bytes, 0, keep).await? {
                if let Err(e) = records.set_waiting(&request.id, true, request.expires_at).await {
                    // The request stands (its call was refused for want of
                    // it); only the bound undercounts until it expires.
                    tracing::warn!(target: "agenthost::approvals", id = %request.id, error = %e, "a new approval request is not counted as waiting");
                }
                return Ok(request);
            }
        }
        Err(ApprovalError::Internal("cannot find a free approval request id".to_owned()))
    }

    /// [`ApprovalStore::create_signed`] without a host key, bounded by
    /// [`DEFAULT_WAITING`].
    ///
    /// # Errors
    ///
    /// As [`ApprovalStore::create_signed`].
    pub async fn create(&self, request: ApprovalRequest) -> Result<ApprovalRequest, ApprovalError> {
        self.create_signed(request, None, DEFAULT_WAITING).await
    }

    async fn load(&self, id: &str) -> Result<(ApprovalRequest, u64), ApprovalError> {
        check_id(id)?;
        let records = self.records()?;
        let Some(stored) = records.load(id).await? else {
            return Err(ApprovalError::NotFound(id.to_owned()));
        };
        let request: ApprovalRequest =
            serde_json::from_slice(&stored.bytes).map_err(|e| ApprovalError::Corrupt {
                what: format!("approval request `{id}` in {}", records.describe()),
                detail: e.to_string(),
            })?;
        // A record stored under one id that says another is not that request.
        if request.id != id {
            return Err(ApprovalError::Corrupt {
                what: format!("approval request `{id}` in {}", records.describe()),
                detail: format!("it names itself `{}`", crate::text::clip(&request.id)),
            });
        }
        Ok((request, stored.version))
    }

    /// One request.
    ///
    /// # Errors
    ///
    /// `not-found` for an unknown id; a record that cannot be read or parsed
    /// is the store's own failure, not a missing request.
    pub async fn get(&self, id: &str) -> Result<ApprovalRequest, ApprovalError> {
        self.load(id).await.map(|(request, _)| request)
    }

    /// Every request (at most [`MAX_LISTED`]), newest first, optionally of
    /// one tenant. Records that do not parse are left out (and logged).
    ///
    /// # Errors
    ///
    /// When the records cannot be listed.
    pub async fn list(&self, tenant: Option<&str>) -> Result<Vec<ApprovalRequest>, ApprovalError> {
        let records = self.records()?.clone();
        let ids = records.ids(tenant, MAX_LISTED).await?;
        // A few reads at once: a remote store answers each in milliseconds.
        let mut reads = tokio::task::JoinSet::new();
        let mut requests = Vec::new();
        let mut ids = ids.into_iter();
        loop {
            while reads.len() < 16
                && let Some(id) = ids.next()
            {
                let records = records.clone();
                reads.spawn(async move {
                    let stored = records.load(&id).await;
                    (id, stored)
                });
            }
            let Some(done) = reads.join_next().await else { break };
            let Ok((id, stored)) = done else { continue };
            let request = match stored {
                Ok(Some(stored)) => {
                    serde_json::from_slice::<ApprovalRequest>(&stored.bytes).ok().filter(|r| r.id == id)
                }
                Ok(None) => continue,
                Err(e) => return Err(e),
            };
            match request {
                Some(request) if tenant.is_none_or(|t| t == request.tenant) => requests.push(request),
                Some(_) => {}
                None => {
                    tracing::warn!(target: "agenthost::approvals", id, "an approval request record does not parse; left out of the listing")
                }
            }
        }
        requests.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(requests)
    }

    /// Reads, changes and writes a request back, again when another
    /// process wrote it in between.
    async fn update<T>(
        &self,
        id: &str,
        mut change: impl FnMut(&mut ApprovalRequest) -> Result<T, ApprovalError>,
    ) -> Result<(ApprovalRequest, T), ApprovalError> {
        let records = self.records()?;
        for _ in 0..ATTEMPTS {
            let (mut request, version) = self.load(id).await?;
            let was_pending = request.status == Status::Pending;
            let out = change(&mut request)?;
            let bytes = encode(&request)?;
            let keep = keep_until(&request);
            if records.store(id, bytes, version, keep).await? {
                // Decided now: it no longer counts against its tenant.
                if was_pending
                    && request.status != Status::Pending
                    && let Err(e) = records.set_waiting(id, false, 0).await
                {
                    tracing::warn!(target: "agenthost::approvals", id, error = %e, "a decided request still counts as waiting until it expires");
                }
                return Ok((request, out));
            }
        }
        Err(ApprovalError::Unavailable(format!(
            "approval request `{id}` was changed by others {ATTEMPTS} times while this decision was made; try again"
        )))
    }

    /// Records an approver's decision. On approval, signs and stores a token
    /// bound to the request and returns it.
    ///
    /// # Errors
    ///
    /// The request is unknown, expired or decided; the approver made the
    /// request or already decided it.
    pub async fn decide(
        &self,
        id: &str,
        approver: &Approver<'_>,
        approved: bool,
        reason: &str,
        token_ttl_secs: u64,
    ) -> Result<(ApprovalRequest, Option<ApprovalToken>), ApprovalError> {
        let Approver { name, key, os_user } = *approver;
        self.update(id, |request| {
            check_decidable(request, name, &key.id(), os_user)?;
            let token = if approved {
                let claims = TokenClaims::for_request(request, name, token_ttl_secs);
                Some(ApprovalToken::sign(claims, key).map_err(ApprovalError::Internal)?)
            } else {
                None
            };
            apply(request, name, key.id(), reason, token.clone());
            Ok(token)
        })
        .await
    }

    /// Records a token an approver signed elsewhere (`approvals approve
    /// --server`), after checking it: signed by `key` (the tenant's key
    /// for its approver), bound to this request as it reads now, not
    /// outliving it, and not the requester's own.
    ///
    /// # Errors
    ///
    /// As [`ApprovalStore::decide`], and `refused` for a token that does
    /// not verify or is bound to anything else.
    pub async fn record_token(
        &self,
        id: &str,
        token: ApprovalToken,
        key: &PublicKey,
        reason: &str,
    ) -> Result<ApprovalRequest, ApprovalError> {
        let refused = |m: String| ApprovalError::Refused(m);
        token.verify_signature(key).map_err(refused)?;
        let c = &token.claims;
        check_nonce(&c.nonce)?;
        let (request, ()) = self
            .update(id, |request| {
                check_decidable(request, &c.approver, &c.key_id, None)?;
                let bound = c.request_id == request.id
                    && c.tenant == request.tenant
                    && c.tool == request.tool
                    && c.tool_digest == request.tool_digest
                    && c.input_digest == request.input_digest
                    && c.run_id == request.run_id;
                if !bound {
                    return Err(refused(format!(
                        "the token of `{}` is not bound to request `{id}` as it reads now (request, tenant, tool, digests and run must all match)",
                        c.approver
                    )));
                }
                if c.expires_at > request.expires_at || c.expires_at <= now_secs() {
                    return Err(refused(format!(
                        "the token of `{}` expires at {}, which is past the request's expiry ({}) or already gone",
                        c.approver, c.expires_at, request.expires_at
                    )));
                }
                apply(request, &c.approver, c.key_id.clone(), reason, Some(token.clone()));
                Ok(())
            })
            .await?;
        Ok(request)
    }

    /// Records a denial by an approver authenticated some other way (a
    /// bearer token): `key_id` names how (`jwt:<issuer>`).
    ///
    /// # Errors
    ///
    /// As [`ApprovalStore::decide`].
    pub async fn record_denial(
        &self,
        id: &str,
        approver: &str,
        key_id: &str,
        reason: &str,
    ) -> Result<ApprovalRequest, ApprovalError> {
        let (request, ()) = self
            .update(id, |request| {
                check_decidable(request, approver, key_id, None)?;
                apply(request, approver, key_id.to_owned(), reason, None);
                Ok(())
            })
            .await?;
        Ok(request)
    }

    /// Parks a paused workflow on a pending request: it is answered once
    /// the request is decided or expires ([`ApprovalStore::take_resume`]).
    ///
    /// # Errors
    ///
    /// An unknown request, or one that waits for another workflow already.
    pub async fn attach_resume(&self, id: &str, resume: Resume) -> Result<ApprovalRequest, ApprovalError> {
        let records = self.records()?;
        let (request, ()) = self
            .update(id, |request| {
                if request.resume.is_some() {
                    return Err(ApprovalError::Refused(format!(
                        "approval request `{id}` already resumes a workflow"
                    )));
                }
                request.resume = Some(resume.clone());
                Ok(())
            })
            .await?;
        records.set_parked(id, true, keep_until(&request)).await?;
        Ok(request)
    }

    /// Requests marked as holding a paused workflow (at most [`MAX_LISTED`]).
    ///
    /// # Errors
    ///
    /// When the marks cannot be listed.
    pub async fn parked(&self) -> Result<Vec<String>, ApprovalError> {
        self.records()?.parked(MAX_LISTED).await
    }

    /// Takes the paused workflow of a request that is decided (or expired),
    /// once across every process: whoever takes it answers it.
    ///
    /// # Errors
    ///
    /// As [`ApprovalStore::get`].
    pub async fn take_resume(&self, id: &str) -> Result<Option<(ApprovalRequest, Resume)>, ApprovalError> {
        let now = now_secs();
        let records = self.records()?;
        let read = match self.get(id).await {
            Ok(read) => read,
            // Gone (its record expired): nothing waits on it any more.
            Err(ApprovalError::NotFound(_)) => {
                records.set_parked(id, false, 0).await?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if read.resume.is_none() {
            records.set_parked(id, false, 0).await?;
            return Ok(None);
        }
        if !read.is_settled(now) {
            return Ok(None);
        }
        let (request, taken) = self
            .update(id, |request| Ok(if request.is_settled(now) { request.resume.take() } else { None }))
            .await?;
        if taken.is_some() {
            records.set_parked(id, false, 0).await?;
        }
        Ok(taken.map(|resume| (request, resume)))
    }

    /// Consumes a token's single use.
    ///
    /// # Errors
    ///
    /// `already used` (refused) when it was consumed before; a use that
    /// cannot be recorded is the store's own failure.
    pub async fn consume(&self, token: &ApprovalToken) -> Result<(), ApprovalError> {
        let nonce = &token.claims.nonce;
        check_nonce(nonce)?;
        let records = self.records()?;
        let keep = token.claims.expires_at.saturating_add(KEPT_AFTER_SECS);
        if records.mark_used(nonce, keep).await? {
            Ok(())
        } else {
            Err(ApprovalError::Refused(format!(
                "the approval token of `{}` for request `{}` was already used; a token is good for one call",
                token.claims.approver, token.claims.request_id
            )))
        }
    }

    /// Takes back the use of tokens this process just consumed for a call
    /// that then did not run, so that they are not lost. Best effort: a
    /// mark that cannot be removed leaves its token spent, the safe side.
    pub async fn release(&self, tokens: &[&ApprovalToken]) {
        let Ok(records) = self.records() else { return };
        for token in tokens {
            if let Err(e) = records.unmark(&token.claims.nonce).await {
                tracing::warn!(target: "agenthost::approvals", nonce = %token.claims.nonce, error = %e, "cannot take back a token's use");
            }
        }
    }

    /// Whether the token's use is recorded (a store that cannot say counts
    /// it as used).
    pub async fn is_consumed(&self, token: &ApprovalToken) -> bool {
        match self.records() {
            Ok(records) => records.is_used(&token.claims.nonce).await.unwrap_or(true),
            Err(_) => true,
        }
    }
}

fn check_id(id: &str) -> Result<(), ApprovalError> {
    if id.is_empty() || id.len() > 96 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(ApprovalError::BadId(crate::text::clip(id)));
    }
    Ok(())
}

fn check_nonce(nonce: &str) -> Result<(), ApprovalError> {
    if nonce.is_empty() || nonce.len() > 64 || !nonce.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApprovalError::Refused("the token's nonce is malformed".to_owned()));
    }
    Ok(())
}

/// The tenant an id names (`apr-<tenant>-<16 hex>`); `None` for ids made
/// before ids named it.
pub fn tenant_of(id: &str) -> Option<&str> {
    let (tenant, random) = id.strip_prefix("apr-")?.rsplit_once('-')?;
    let ok = random.len() == 16
        && random.bytes().all(|b| b.is_ascii_hexdigit())
        && super::tenant::valid_id(tenant);
    ok.then_some(tenant)
}

fn encode(request: &ApprovalRequest) -> Result<Vec<u8>, ApprovalError> {
    serde_json::to_vec(request).map_err(|e| ApprovalError::Internal(e.to_string()))
}

fn keep_until(request: &ApprovalRequest) -> u64 {
    request
        .expires_at
        .max(request.created_at.saturating_add(REQUEST_TTL_SECS))
        .saturating_add(KEPT_AFTER_SECS)
}

/// Whether `approver` may decide `request` now: not denied, not expired,
/// not the requester (by name, key or OS user), not decided by them before.
fn check_decidable(
    request: &ApprovalRequest,
    approver: &str,
    key_id: &str,
    os_user: Option<&str>,
) -> Result<(), ApprovalError> {
    let id = &request.id;
    if request.status == Status::Denied {
        return Err(ApprovalError::Refused(format!(
            "approval request `{id}` was denied; it cannot be decided again"
        )));
    }
    if now_secs() >= request.expires_at {
        return Err(ApprovalError::Refused(format!(
            "approval request `{id}` expired at {}",
            request.expires_at
        )));
    }
    // The same person, as far as the host can tell: the same name, the
    // same key, or (for a request made as an OS user) the same OS user.
    let same = approver == request.requested_by
        || request.requested_by_key.as_deref() == Some(key_id)
        || os_user == Some(request.requested_by.as_str());
    if same {
        return Err(ApprovalError::Refused(format!(
            "`{approver}` made request `{id}` (as `{}`: same name, key or OS user) and cannot approve or deny it: another approver must",
            request.requested_by
        )));
    }
    if request.decisions.iter().any(|d| d.approver == approver) {
        return Err(ApprovalError::Refused(format!("`{approver}` has already decided request `{id}`")));
    }
    Ok(())
}

/// Adds a decision (and, for an approval, its token) to a request.
fn apply(
    request: &mut ApprovalRequest,
    approver: &str,
    key_id: String,
    reason: &str,
    token: Option<ApprovalToken>,
) {
    request.decisions.push(ApproverDecision {
        approver: approver.to_owned(),
        key_id,
        approved: token.is_some(),
        at: now_secs(),
        reason: reason.to_owned(),
    });
    match token {
        Some(token) => {
            request.tokens.push(token);
            if request.tokens.len() >= request.approvals_needed {
                request.status = Status::Approved;
            }
        }
        None => request.status = Status::Denied,
    }
}

/// Requests and marks as files under one directory.
#[derive(Debug)]
pub struct FileRecords {
    dir: PathBuf,
    /// Serialises read-compare-write of request files in this process.
    write: Mutex<()>,
}

impl FileRecords {
    /// Opens (creating) `dir` with `requests/` and `consumed/` in it.
    ///
    /// # Errors
    ///
    /// When the directories cannot be created.
    pub fn open(dir: &Path) -> Result<Self, ApprovalError> {
        for sub in ["requests", "consumed", "parked", "waiting"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| ApprovalError::io("create the approvals store at", dir, e))?;
        }
        Ok(FileRecords { dir: dir.to_owned(), write: Mutex::new(()) })
    }

    fn request_path(&self, id: &str) -> PathBuf {
        self.dir.join("requests").join(format!("{id}.json"))
    }

    /// The file's version: a digest of its bytes (never 0, which means absent).
    fn version_of(bytes: &[u8]) -> u64 {
        let digest = Sha256::digest(bytes);
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first) | 1
    }

    fn read(&self, id: &str) -> Result<Option<Stored>, ApprovalError> {
        let path = self.request_path(id);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(Stored { version: Self::version_of(&bytes), bytes })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ApprovalError::io("read", path, e)),
        }
    }

    fn write(&self, id: &str, bytes: &[u8], expected: u64) -> Result<bool, ApprovalError> {
        let _guard = self
            .write
            .lock()
            .map_err(|_| ApprovalError::Internal("the approvals lock is poisoned".to_owned()))?;
        // Other processes on this directory (the CLI beside a server) too:
        // an exclusive lock on the request's lock file around the
        // read-compare-rename (released when the file closes).
        let lock_path = self.dir.join("requests").join(format!("{id}.lock"));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| ApprovalError::io("open the lock", &lock_path, e))?;
        lock.lock().map_err(|e| ApprovalError::io("lock", &lock_path, e))?;
        let current = self.read(id)?.map_or(0, |s| s.version);
        if current != expected {
            return Ok(false);
        }
        let path = self.request_path(id);
        let tmp = path.with_extension(format!("tmp-{}", hex::encode(rand::random::<[u8; 4]>())));
        std::fs::write(&tmp, bytes).map_err(|e| ApprovalError::io("write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| ApprovalError::io("write", &path, e))?;
        Ok(true)
    }

    /// Writes `<dir>/<kind>/<id>` with `content` (whole or not at all, by
    /// rename: a reader never sees half a mark), or removes it (`None`;
    /// one already gone is fine).
    fn mark(&self, kind: &'static str, id: &str, content: Option<&str>) -> Result<(), ApprovalError> {
        check_id(id)?;
        let dir = self.dir.join(kind);
        let path = dir.join(id);
        let done = match content {
            Some(content) => {
                let tmp = dir.join(format!(".{id}.{}", hex::encode(rand::random::<[u8; 4]>())));
                std::fs::write(&tmp, content).and_then(|()| std::fs::rename(&tmp, &path))
            }
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                done => done,
            },
        };
        done.map_err(|e| ApprovalError::io("write the mark", path, e))
    }

    fn consumed(&self, nonce: &str) -> PathBuf {
        self.dir.join("consumed").join(nonce)
    }
}

impl ApprovalRecords for FileRecords {
    fn describe(&self) -> String {
        format!("files under {}", self.dir.display())
    }

    fn load<'a>(&'a self, id: &'a str) -> Pending<'a, Result<Option<Stored>, ApprovalError>> {
        Box::pin(async move { self.read(id) })
    }

    fn store<'a>(
        &'a self,
        id: &'a str,
        bytes: Vec<u8>,
        expected: u64,
        _keep_until: u64,
    ) -> Pending<'a, Result<bool, ApprovalError>> {
        Box::pin(async move { self.write(id, &bytes, expected) })
    }

    fn ids<'a>(
        &'a self,
        tenant: Option<&'a str>,
        limit: usize,
    ) -> Pending<'a, Result<Vec<String>, ApprovalError>> {
        Box::pin(async move {
            let dir = self.dir.join("requests");
            let entries = std::fs::read_dir(&dir).map_err(|e| ApprovalError::io("read", &dir, e))?;
            let mut ids = Vec::new();
            for entry in entries.filter_map(Result::ok) {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "json")
                    && let Some(id) = path.file_stem().and_then(|s| s.to_str())
                    && check_id(id).is_ok()
                    // Ids made before they named the tenant are read to tell.
                    && (tenant.is_none() || tenant_of(id).is_none_or(|t| Some(t) == tenant))
                {
                    ids.push(id.to_owned());
                }
            }
            // The newest are what a listing is for: keep them when there are more.
            if ids.len() > limit {
                ids.sort_by_cached_key(|id| {
                    std::cmp::Reverse(
                        std::fs::metadata(self.request_path(id)).and_then(|m| m.modified()).ok(),
                    )
                });
                ids.truncate(limit);
            }
            Ok(ids)
        })
    }

    fn set_parked<'a>(
        &'a self,
        id: &'a str,
        parked: bool,
        _keep_until: u64,
    ) -> Pending<'a, Result<(), ApprovalError>> {
        Box::pin(async move { self.mark("parked", id, parked.then_some("")) })
    }

    fn set_waiting<'a>(
        &'a self,
        id: &'a str,
        waiting: bool,
        expires_at: u64,
    ) -> Pending<'a, Result<(), ApprovalError>> {
        Box::pin(async move { self.mark("waiting", id, waiting.then(|| expires_at.to_string()).as_deref()) })
    }

    fn waiting<'a>(&'a self, tenant: &'a str, limit: usize) -> Pending<'a, Result<usize, ApprovalError>> {
        Box::pin(async move {
            let dir = self.dir.join("waiting");
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
                Err(e) => return Err(ApprovalError::io("read", &dir, e)),
            };
            let now = now_secs();
            let mut count = 0;
            for entry in entries.filter_map(Result::ok) {
                let name = entry.file_name();
                if name.to_str().is_none_or(|id| tenant_of(id) != Some(tenant)) {
                    continue;
                }
                // A mark names its expiry; an expired one goes. One that
                // does not read counts (the bound errs on the safe side).
                let until =
                    std::fs::read_to_string(entry.path()).ok().and_then(|t| t.trim().parse::<u64>().ok());
                if let Some(until) = until
                    && until <= now
                {
                    let _ = std::fs::remove_file(entry.path());
                    continue;
                }
                count += 1;
                if count >= limit {
                    break;
                }
            }
            Ok(count)
        })
    }

    fn parked(&self, limit: usize) -> Pending<'_, Result<Vec<String>, ApprovalError>> {
        Box::pin(async move {
            let dir = self.dir.join("parked");
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(ApprovalError::io("read", &dir, e)),
            };
            Ok(entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .filter(|id| check_id(id).is_ok())
                .take(limit)
                .collect())
        })
    }

    fn mark_used<'a>(&'a self, nonce: &'a str, _keep_until: u64) -> Pending<'a, Result<bool, ApprovalError>> {
        Box::pin(async move {
            let path = self.consumed(nonce);
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(ApprovalError::io("record the token's use at", path, e)),
            }
        })
    }

    fn unmark<'a>(&'a self, nonce: &'a str) -> Pending<'a, Result<(), ApprovalError>> {
        Box::pin(async move {
            let path = self.consumed(nonce);
            std::fs::remove_file(&path).map_err(|e| ApprovalError::io("remove", path, e))
        })
    }

    fn is_used<'a>(&'a self, nonce: &'a str) -> Pending<'a, Result<bool, ApprovalError>> {
        Box::pin(async move { Ok(self.consumed(nonce).exists()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writers that do not share a process lock (two processes on one data
    /// directory) still cannot both win a compare-and-set.
    #[test]
    fn a_decision_on_files_is_one_writer_at_a_time_across_processes() {
        let dir = tempfile::tempdir().unwrap();
        let id = "apr-acme-0123456789abcdef";
        FileRecords::open(dir.path()).unwrap().write(id, b"first", 0).unwrap();
        let version = FileRecords::version_of(b"first");
        let won = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for n in 0..8 {
                let (dir, won) = (dir.path(), &won);
                scope.spawn(move || {
                    // Each its own store: no lock in common but the file's.
                    let records = FileRecords::open(dir).unwrap();
                    if records.write(id, format!("writer {n}").as_bytes(), version).unwrap() {
                        won.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                });
            }
        });
        assert_eq!(won.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn an_id_names_its_tenant_and_old_ids_name_none() {
        assert_eq!(tenant_of("apr-acme-0123456789abcdef"), Some("acme"));
        assert_eq!(tenant_of("apr-east-2-0123456789abcdef"), Some("east-2"));
        assert_eq!(tenant_of("apr-0123456789abcdef"), None);
        assert_eq!(tenant_of("apr-Acme-0123456789abcdef"), None);
        assert_eq!(tenant_of("apr--0123456789abcdef"), None);
    }
}
