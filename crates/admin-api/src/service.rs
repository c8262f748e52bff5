//! The gRPC service: every method authenticates its caller, checks the role
//! it needs, runs, and (if it changes anything, or was refused) writes the
//! audit trail. The work itself is in the modules named after the resource.

use std::future::Future;
use std::sync::Arc;

use async_nats::jetstream;
use hostaway_client::HostawayClient;
use service_kit::nats::Topology;
use store::PgPool;
use store::crypto::CredentialCipher;
use sync_dispatcher::queue::JobQueue;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use crate::accounts::PendingSecrets;
use crate::auth::{self, Caller, Method};
use crate::metrics::ApiMetrics;
use crate::proto::admin_service_server::AdminService;
use crate::proto::*;
use crate::server::AdminApiSettings;

/// What every method may use.
#[derive(Debug)]
pub struct Context {
    pub pool: PgPool,
    pub cipher: Arc<CredentialCipher>,
    /// Shares the dispatchers' budgets, circuits and tokens (ADR 0011).
    pub hostaway: HostawayClient,
    /// Client secrets being checked by a connect or a rotation, before
    /// they are stored.
    pub pending: PendingSecrets,
    pub js: jetstream::Context,
    pub queue: JobQueue,
    pub topology: Topology,
    pub settings: AdminApiSettings,
    /// Requests per Hostaway window an account is granted by default.
    pub account_budget: u32,
    pub metrics: ApiMetrics,
}

#[derive(Debug, Clone)]
pub struct AdminApi {
    pub(crate) ctx: Arc<Context>,
}

impl AdminApi {
    pub fn new(ctx: Context) -> Self {
        Self { ctx: Arc::new(ctx) }
    }
}

/// The account a request is about, for the audit trail (known before the
/// request is checked, so a refused call is attributed too).
pub trait Target {
    fn account(&self) -> Option<&str> {
        None
    }
}

macro_rules! targets_account {
    ($($message:ty),* $(,)?) => {
        $(impl Target for $message {
            fn account(&self) -> Option<&str> {
                Some(self.account_id.as_str()).filter(|a| !a.is_empty())
            }
        })*
    };
}

targets_account!(
    ConnectAccountRequest,
    GetAccountRequest,
    SetAccountEnabledRequest,
    RotateCredentialsRequest,
    FinishRotationRequest,
    ListListingsRequest,
    LinkListingRequest,
    UnlinkListingRequest,
    GetChannelConfigRequest,
    UpdateChannelConfigRequest,
    GetSyncStatusRequest,
    TriggerSyncRequest,
    ReemitBookingEventsRequest,
    ListAuditEntriesRequest,
    ListBookingsRequest,
);

impl Target for ListAccountsRequest {}
impl Target for GetDeadLetterRequest {}
impl Target for PurgeDeadLettersRequest {}
impl Target for ListBlocksRequest {}
impl Target for ListDoubleBookingsRequest {}
impl Target for ListWebhooksRequest {}
impl Target for ListParkedWebhooksRequest {}

impl Target for ListDeadLettersRequest {
    fn account(&self) -> Option<&str> {
        dead_letter_account(self.filter.as_ref())
    }
}
impl Target for ReplayDeadLettersRequest {
    fn account(&self) -> Option<&str> {
        dead_letter_account(self.filter.as_ref())
    }
}
impl Target for ResolveDeadLettersRequest {
    fn account(&self) -> Option<&str> {
        dead_letter_account(self.filter.as_ref())
    }
}

fn dead_letter_account(filter: Option<&DeadLetterFilter>) -> Option<&str> {
    filter
        .map(|f| f.account_id.as_str())
        .filter(|a| !a.is_empty())
}

/// What a method did, for the audit trail: identifiers and settings, never
/// a secret.
pub type Detail = serde_json::Value;

impl AdminApi {
    async fn call<Req, Res, F, Fut>(
        &self,
        request: Request<Req>,
        method: Method,
        work: F,
    ) -> Result<Response<Res>, Status>
    where
        Req: Target + Send + 'static,
        Res: Send + 'static,
        F: FnOnce(Arc<Context>, Caller, Req) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(Res, Detail), Status>> + Send + 'static,
    {
        let ctx = Arc::clone(&self.ctx);
        let caller = match auth::authenticate(&ctx.pool, request.metadata()).await {
            Ok(caller) => caller,
            Err(status) => {
                ctx.metrics.calls(method, "unauthenticated");
                return Err(status);
            }
        };
        let request = request.into_inner();
        let account = request.account().map(str::to_owned);
        let span = tracing::info_span!(
            "admin call",
            method = method.name(),
            actor = %caller.name,
            role = %caller.role,
            account_id = account.as_deref().unwrap_or("")
        );
        // Run to the end on a task of its own: a caller that hangs up or
        // times out mid-call leaves neither half-done work nor a change
        // without its audit row.
        let call = async move {
            if caller.role < method.required_role() {
                ctx.metrics.calls(method, "denied");
                tracing::warn!(
                    needs = %method.required_role(),
                    "call refused: the token's role does not allow it"
                );
                let detail = serde_json::json!({"needs": method.required_role().as_str()});
                audit(&ctx, &caller, method, account.as_deref(), "denied", detail).await;
                return Err(Status::permission_denied(format!(
                    "{} needs the {} role; this token is a {}",
                    method.name(),
                    method.required_role(),
                    caller.role
                )));
            }
            match work(Arc::clone(&ctx), caller.clone(), request).await {
                Ok((response, detail)) => {
                    ctx.metrics.calls(method, "ok");
                    if method.mutates() {
                        tracing::info!(%detail, "done");
                        audit(&ctx, &caller, method, account.as_deref(), "ok", detail).await;
                    }
                    Ok(Response::new(response))
                }
                Err(status) => {
                    ctx.metrics.calls(method, "error");
                    tracing::info!(code = ?status.code(), message = status.message(), "failed");
                    if method.mutates() {
                        let detail = serde_json::json!({
                            "code": format!("{:?}", status.code()),
                            "message": status.message(),
                        });
                        audit(&ctx, &caller, method, account.as_deref(), "error", detail).await;
                    }
                    Err(status)
                }
            }
        }
        .instrument(span);
        tokio::spawn(call).await.unwrap_or_else(|error| {
            tracing::error!(%error, method = method.name(), "admin call panicked");
            Err(Status::internal("the call failed (see the service's log)"))
        })
    }
}

/// Writes one audit row. A row that cannot be written is logged with
/// everything it held: the call has happened either way.
async fn audit(
    ctx: &Context,
    caller: &Caller,
    method: Method,
    account: Option<&str>,
    outcome: &str,
    detail: Detail,
) {
    let entry = store::admin::NewAuditEntry {
        token_id: Some(caller.token_id),
        actor: &caller.name,
        role: caller.role.as_str(),
        method: method.name(),
        account_id: account,
        outcome,
        detail,
    };
    if let Err(error) = store::admin::audit(&ctx.pool, &entry).await {
        tracing::error!(%error, ?entry, "audit row not written");
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn connect_account(
        &self,
        request: Request<ConnectAccountRequest>,
    ) -> Result<Response<ConnectAccountResponse>, Status> {
        self.call(request, Method::ConnectAccount, |ctx, _, req| async move {
            crate::accounts::connect(&ctx, req).await
        })
        .await
    }

    async fn list_accounts(
        &self,
        request: Request<ListAccountsRequest>,
    ) -> Result<Response<ListAccountsResponse>, Status> {
        self.call(request, Method::ListAccounts, |ctx, _, _| async move {
            crate::accounts::list(&ctx).await
        })
        .await
    }

    async fn get_account(
        &self,
        request: Request<GetAccountRequest>,
    ) -> Result<Response<Account>, Status> {
        self.call(request, Method::GetAccount, |ctx, _, req| async move {
            let account = crate::convert::account(&req.account_id)?;
            Ok((crate::accounts::get(&ctx, &account).await?, Detail::Null))
        })
        .await
    }

    async fn set_account_enabled(
        &self,
        request: Request<SetAccountEnabledRequest>,
    ) -> Result<Response<Account>, Status> {
        self.call(
            request,
            Method::SetAccountEnabled,
            |ctx, _, req| async move { crate::accounts::set_enabled(&ctx, req).await },
        )
        .await
    }

    async fn rotate_credentials(
        &self,
        request: Request<RotateCredentialsRequest>,
    ) -> Result<Response<Account>, Status> {
        self.call(
            request,
            Method::RotateCredentials,
            |ctx, _, req| async move { crate::accounts::rotate(&ctx, req).await },
        )
        .await
    }

    async fn finish_rotation(
        &self,
        request: Request<FinishRotationRequest>,
    ) -> Result<Response<Account>, Status> {
        self.call(request, Method::FinishRotation, |ctx, _, req| async move {
            crate::accounts::finish_rotation(&ctx, req).await
        })
        .await
    }

    async fn list_listings(
        &self,
        request: Request<ListListingsRequest>,
    ) -> Result<Response<ListListingsResponse>, Status> {
        self.call(request, Method::ListListings, |ctx, _, req| async move {
            crate::listings::list(&ctx, req).await
        })
        .await
    }

    async fn link_listing(
        &self,
        request: Request<LinkListingRequest>,
    ) -> Result<Response<Listing>, Status> {
        self.call(request, Method::LinkListing, |ctx, _, req| async move {
            crate::listings::link(&ctx, req).await
        })
        .await
    }

    async fn unlink_listing(
        &self,
        request: Request<UnlinkListingRequest>,
    ) -> Result<Response<UnlinkListingResponse>, Status> {
        self.call(request, Method::UnlinkListing, |ctx, _, req| async move {
            crate::listings::unlink(&ctx, req).await
        })
        .await
    }

    async fn get_channel_config(
        &self,
        request: Request<GetChannelConfigRequest>,
    ) -> Result<Response<ChannelConfig>, Status> {
        self.call(
            request,
            Method::GetChannelConfig,
            |ctx, _, req| async move { crate::config::get(&ctx, req).await },
        )
        .await
    }

    async fn update_channel_config(
        &self,
        request: Request<UpdateChannelConfigRequest>,
    ) -> Result<Response<ChannelConfig>, Status> {
        self.call(
            request,
            Method::UpdateChannelConfig,
            |ctx, caller, req| async move { crate::config::update(&ctx, &caller, req).await },
        )
        .await
    }

    async fn list_dead_letters(
        &self,
        request: Request<ListDeadLettersRequest>,
    ) -> Result<Response<ListDeadLettersResponse>, Status> {
        self.call(request, Method::ListDeadLetters, |ctx, _, req| async move {
            crate::dead_letters::list(&ctx, req).await
        })
        .await
    }

    async fn get_dead_letter(
        &self,
        request: Request<GetDeadLetterRequest>,
    ) -> Result<Response<DeadLetter>, Status> {
        self.call(request, Method::GetDeadLetter, |ctx, _, req| async move {
            crate::dead_letters::get(&ctx, req).await
        })
        .await
    }

    async fn replay_dead_letters(
        &self,
        request: Request<ReplayDeadLettersRequest>,
    ) -> Result<Response<DeadLetterOutcomes>, Status> {
        self.call(
            request,
            Method::ReplayDeadLetters,
            |ctx, _, req| async move { crate::dead_letters::replay(&ctx, req).await },
        )
        .await
    }

    async fn resolve_dead_letters(
        &self,
        request: Request<ResolveDeadLettersRequest>,
    ) -> Result<Response<DeadLetterOutcomes>, Status> {
        self.call(
            request,
            Method::ResolveDeadLetters,
            |ctx, _, req| async move { crate::dead_letters::resolve(&ctx, req).await },
        )
        .await
    }

    async fn purge_dead_letters(
        &self,
        request: Request<PurgeDeadLettersRequest>,
    ) -> Result<Response<PurgeDeadLettersResponse>, Status> {
        self.call(
            request,
            Method::PurgeDeadLetters,
            |ctx, _, req| async move { crate::dead_letters::purge(&ctx, req).await },
        )
        .await
    }

    async fn get_sync_status(
        &self,
        request: Request<GetSyncStatusRequest>,
    ) -> Result<Response<SyncStatus>, Status> {
        self.call(request, Method::GetSyncStatus, |ctx, _, req| async move {
            crate::sync::status(&ctx, req).await
        })
        .await
    }

    async fn trigger_sync(
        &self,
        request: Request<TriggerSyncRequest>,
    ) -> Result<Response<TriggerSyncResponse>, Status> {
        self.call(request, Method::TriggerSync, |ctx, _, req| async move {
            crate::sync::trigger(&ctx, req).await
        })
        .await
    }

    async fn reemit_booking_events(
        &self,
        request: Request<ReemitBookingEventsRequest>,
    ) -> Result<Response<ReemitBookingEventsResponse>, Status> {
        self.call(
            request,
            Method::ReemitBookingEvents,
            |ctx, _, req| async move { crate::sync::reemit(&ctx, req).await },
        )
        .await
    }

    async fn list_audit_entries(
        &self,
        request: Request<ListAuditEntriesRequest>,
    ) -> Result<Response<ListAuditEntriesResponse>, Status> {
        self.call(
            request,
            Method::ListAuditEntries,
            |ctx, _, req| async move { crate::sync::audit_entries(&ctx, req).await },
        )
        .await
    }

    async fn list_bookings(
        &self,
        request: Request<ListBookingsRequest>,
    ) -> Result<Response<ListBookingsResponse>, Status> {
        self.call(request, Method::ListBookings, |ctx, _, req| async move {
            crate::inbound::bookings(&ctx, req).await
        })
        .await
    }

    async fn list_blocks(
        &self,
        request: Request<ListBlocksRequest>,
    ) -> Result<Response<ListBlocksResponse>, Status> {
        self.call(request, Method::ListBlocks, |ctx, _, req| async move {
            crate::inbound::blocks(&ctx, req).await
        })
        .await
    }

    async fn list_double_bookings(
        &self,
        request: Request<ListDoubleBookingsRequest>,
    ) -> Result<Response<ListDoubleBookingsResponse>, Status> {
        self.call(
            request,
            Method::ListDoubleBookings,
            |ctx, _, _| async move { crate::inbound::double_bookings(&ctx).await },
        )
        .await
    }

    async fn list_webhooks(
        &self,
        request: Request<ListWebhooksRequest>,
    ) -> Result<Response<ListWebhooksResponse>, Status> {
        self.call(request, Method::ListWebhooks, |ctx, _, req| async move {
            crate::inbound::webhooks(&ctx, req).await
        })
        .await
    }

    async fn list_parked_webhooks(
        &self,
        request: Request<ListParkedWebhooksRequest>,
    ) -> Result<Response<ListParkedWebhooksResponse>, Status> {
        self.call(
            request,
            Method::ListParkedWebhooks,
            |ctx, _, req| async move { crate::inbound::parked(&ctx, req).await },
        )
        .await
    }
}
