//! The per-call gate of a tool (and of a write-high or critical agent):
//! the policy's decision, then its tier's obligations — the write-low
//! quota, the critical enable, approvals (tokens checked and spent, or a
//! pending request recorded).

use crate::audit;
use crate::capabilities::{CallContext, Refusal, World};
use crate::error::{ErrorKind, InvokeError};
use crate::governance::approvals::{self, ApprovalRequest, CallBinding, Selection, Status};
use crate::governance::policy::{Action, EntityRef, Query, Value as PolicyValue, tier_rank};
use crate::governance::{Tier, approval_store};

use super::context::{CallInput, Principal};
use super::{HostInner, Kind, LoadedComponent};

impl HostInner {
    /// The per-call gate of a tool invocation: policy, then the obligations
    /// of its tier.
    pub(super) async fn govern(
        &self,
        tool: &LoadedComponent,
        input: &CallInput<'_>,
        call: &CallContext,
        principal: Principal<'_>,
    ) -> Result<(), InvokeError> {
        let tier = tool.tier.unwrap_or(Tier::Critical);
        let tenant = tool.tenant();
        call.judge(|| Query {
            principal: principal.entity(tenant),
            action: Action::InvokeTool,
            resource: EntityRef::new("Tool", format!("{tenant}/{}", tool.id().name)),
            context: [
                ("tenant", PolicyValue::String(tenant.to_owned())),
                ("tier", PolicyValue::String(tier.as_str().to_owned())),
                ("tier_rank", PolicyValue::Long(tier_rank(tier))),
                ("depth", PolicyValue::Long(i64::from(call.depth))),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        })
        .map_err(|refusal| {
            let e = match refusal {
                Refusal::Denied { reason, policies } => {
                    InvokeError { policies: policies.into(), ..InvokeError::denied(reason) }
                }
                Refusal::Failed(e) => InvokeError::new(e.kind(), format!("the policy check failed: {e}")),
            };
            e.with_component(tool.id())
        })?;
        self.obligations(tool, input, call).await
    }

    /// The obligations of the tool's tier, once the policy allowed the call.
    pub(super) async fn obligations(
        &self,
        tool: &LoadedComponent,
        input: &CallInput<'_>,
        call: &CallContext,
    ) -> Result<(), InvokeError> {
        let tier = tool.tier.unwrap_or(Tier::Critical);
        let tenant = &tool.subject.tenant;
        let name = &tool.id().name;
        let fail = |e: InvokeError| e.with_component(tool.id());
        match tier {
            Tier::Read => Ok(()),
            // write_low_per_minute counts tool calls; an agent's run is not one.
            Tier::WriteLow if tool.world == World::Agent => Ok(()),
            Tier::WriteLow => tenant.write_low.take(1).map_err(|limit| {
                fail(
                    InvokeError::new(
                        ErrorKind::LimitExceeded,
                        format!(
                            "tenant `{}` made {limit} write-low calls this minute (quota write_low_per_minute)",
                            tenant.id()
                        ),
                    )
                    .with_limit("write_low_per_minute", limit),
                )
            }),
            Tier::WriteHigh | Tier::Critical => {
                if tier == Tier::Critical && !tenant.config.grants.enable_critical.iter().any(|t| t == name) {
                    return Err(fail(InvokeError::denied(format!(
                        "`{name}` is a critical tool and tenant `{}` has not enabled it (grants.enable_critical); critical tools are denied by default",
                        tenant.id()
                    ))));
                }
                self.check_approvals(tool, tier, input, call).await.map_err(fail)
            }
        }
    }

    /// Approval tokens for a write-high (one) or critical (two distinct
    /// approvers) call; none presented records a pending request.
    pub(super) async fn check_approvals(
        &self,
        tool: &LoadedComponent,
        tier: Tier,
        input: &CallInput<'_>,
        call: &CallContext,
    ) -> Result<(), InvokeError> {
        let tenant = &tool.subject.tenant;
        let tool_ref = tool.id().label();
        let input_digest = input.digest();
        let (sensitive, sensitive_names): (&[Vec<String>], &[String]) = match &tool.kind {
            Kind::Tool { sensitive, .. } => (&sensitive.0, &sensitive.1),
            Kind::Agent { .. } => (&[], &[]),
        };
        let binding = CallBinding {
            tenant: tenant.id(),
            tool: &tool_ref,
            tool_digest: &tool.id().digest,
            input_digest,
            run_id: &call.trace.run_id,
            requested_by: &call.requested_by,
            requested_by_key: call.requested_by_key.as_deref(),
        };
        let needed = tier.approvals_needed();
        let selection = approvals::select(&call.approvals, &tool.id().name, &binding, &tenant.approvers);
        let Selection { approvers, valid, problems } = &selection;
        let store = self.governance.approvals();
        if let Some(chosen) = selection.spend(needed) {
            let store = store.ok_or_else(|| {
                InvokeError::internal("this host has no approvals store to record token use")
            })?;
            // The trail records every use: a token whose marker file was
            // deleted is still spent.
            if let Some(audit) = &self.audit {
                for token in &chosen {
                    let spent = audit
                        .mentions(&token.claims.nonce)
                        .map_err(|e| InvokeError::internal(e.to_string()))?;
                    if spent {
                        return Err(InvokeError::denied(format!(
                            "the approval token of `{}` for request `{}` was already used (the audit trail records its use); a token is good for one call",
                            token.claims.approver, token.claims.request_id
                        )));
                    }
                }
            }
            let mut used = Vec::new();
            let mut nonces = Vec::new();
            for (spent, token) in chosen.iter().enumerate() {
                if let Err(e) = store.consume(token).await {
                    // The call does not run: the tokens this loop already
                    // marked (a critical call's first) are not spent either.
                    store.release(&chosen[..spent]).await;
                    return Err(e.into());
                }
                used.push(format!("{} ({})", token.claims.approver, token.claims.request_id));
                nonces.push(token.claims.nonce.clone());
            }
            tracing::info!(target: "agenthost::decision", tenant = tenant.id(), tool = %tool_ref, tier = tier.as_str(), approvals = ?used, "approved call runs");
            let what = serde_json::json!({
                "tool": tool_ref,
                "digest": tool.id().digest,
                "tier": tier.as_str(),
                "input_digest": input_digest,
                "tokens": used,
                "nonces": nonces,
            });
            if let Err(e) = call.evidence(audit::Kind::Approval, "used", what, None) {
                store.release(&chosen).await;
                return Err(InvokeError::internal(e));
            }
            return Ok(());
        }
        if valid.len() > approvers.len() || (!valid.is_empty() && needed > 1) {
            return Err(InvokeError::denied(format!(
                "{tool_ref} is {tier} and needs approvals from {needed} distinct approvers; the valid tokens presented come from {} ({})",
                approvers.len(),
                approvers.join(", ")
            )));
        }
        if let Some(problem) = problems.first() {
            return Err(InvokeError::denied(format!(
                "{tool_ref} needs approval and the token presented is refused: {problem}"
            )));
        }
        let store = store.ok_or_else(|| {
            InvokeError::denied(format!("{tool_ref} is {tier} and needs approval, but this host has no approvals store (no data directory)"))
        })?;
        let now = approvals::now_secs();
        let request = store
            .create_signed(
                ApprovalRequest {
                    id: String::new(),
                    tenant: tenant.id().to_owned(),
                    tool: tool_ref.clone(),
                    tool_digest: tool.id().digest.clone(),
                    tier,
                    input_digest: input_digest.to_owned(),
                    preview: approvals::preview(input.value, sensitive, sensitive_names),
                    requested_by: call.requested_by.clone(),
                    requested_by_key: call.requested_by_key.clone(),
                    trace_id: call.trace.trace_id.clone(),
                    run_id: call.trace.run_id.clone(),
                    created_at: now,
                    expires_at: now + approvals::REQUEST_TTL_SECS,
                    approvals_needed: needed,
                    status: Status::Pending,
                    decisions: Vec::new(),
                    tokens: Vec::new(),
                    host_signature: None,
                    resume: None,
                },
                self.request_key.as_ref(),
                tenant
                    .config
                    .quotas
                    .pending_approvals
                    .map_or(approval_store::DEFAULT_WAITING, |n| n as usize),
            )
            .await?;
        call.issued(&request.id);
        let hint = if tenant.approvers.len() < needed {
            format!(
                "; note that tenant `{}` has {} approver(s) configured ([approvers] in its tenant file)",
                tenant.id(),
                tenant.approvers.len()
            )
        } else {
            String::new()
        };
        let what = serde_json::json!({
            "request": request.id,
            "tool": tool_ref,
            "tier": tier.as_str(),
            "input_digest": input_digest,
            "approvals_needed": needed,
        });
        call.evidence(audit::Kind::Approval, "requested", what, None).map_err(InvokeError::internal)?;
        let mut e = InvokeError::new(
            ErrorKind::ApprovalRequired,
            format!(
                "{tool_ref} is {tier}: it runs once {needed} approver(s) approve request {} (`agenthost approvals approve {}`, or POST .../approvals/{}:approve), then re-submit the same call with it (`--approval {}`, or \"approval_request\": \"{}\" in the body){hint}",
                request.id, request.id, request.id, request.id, request.id
            ),
        );
        e.approval_request = Some(request.id);
        Err(e)
    }
}
