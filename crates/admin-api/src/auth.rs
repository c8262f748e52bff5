//! Who may call what: bearer tokens with one role each, and the role each
//! method needs.

use std::fmt;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use store::PgPool;
use tonic::Status;
use tonic::metadata::MetadataMap;
use uuid::Uuid;

/// Ordered: each role may do what the ones below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Viewer,
    Operator,
    Owner,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Owner];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Owner => "owner",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == text)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every method of the API, with the role it needs and whether it changes
/// anything (what is audited).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    ConnectAccount,
    ListAccounts,
    GetAccount,
    SetAccountEnabled,
    RotateCredentials,
    FinishRotation,
    ListListings,
    LinkListing,
    UnlinkListing,
    GetChannelConfig,
    UpdateChannelConfig,
    ListDeadLetters,
    GetDeadLetter,
    ReplayDeadLetters,
    ResolveDeadLetters,
    PurgeDeadLetters,
    GetSyncStatus,
    TriggerSync,
    ReemitBookingEvents,
    ListAuditEntries,
    ListBookings,
    ListBlocks,
    ListDoubleBookings,
    ListWebhooks,
    ListParkedWebhooks,
}

impl Method {
    pub const ALL: [Method; 25] = [
        Method::ConnectAccount,
        Method::ListAccounts,
        Method::GetAccount,
        Method::SetAccountEnabled,
        Method::RotateCredentials,
        Method::FinishRotation,
        Method::ListListings,
        Method::LinkListing,
        Method::UnlinkListing,
        Method::GetChannelConfig,
        Method::UpdateChannelConfig,
        Method::ListDeadLetters,
        Method::GetDeadLetter,
        Method::ReplayDeadLetters,
        Method::ResolveDeadLetters,
        Method::PurgeDeadLetters,
        Method::GetSyncStatus,
        Method::TriggerSync,
        Method::ReemitBookingEvents,
        Method::ListAuditEntries,
        Method::ListBookings,
        Method::ListBlocks,
        Method::ListDoubleBookings,
        Method::ListWebhooks,
        Method::ListParkedWebhooks,
    ];

    /// The specification's "Owner role only" for credentials; operators
    /// repair and configure; viewers read.
    pub fn required_role(self) -> Role {
        match self {
            Method::ConnectAccount | Method::RotateCredentials | Method::FinishRotation => {
                Role::Owner
            }
            Method::SetAccountEnabled
            | Method::LinkListing
            | Method::UnlinkListing
            | Method::UpdateChannelConfig
            | Method::ReplayDeadLetters
            | Method::ResolveDeadLetters
            | Method::PurgeDeadLetters
            | Method::TriggerSync
            | Method::ReemitBookingEvents => Role::Operator,
            Method::ListAccounts
            | Method::GetAccount
            | Method::ListListings
            | Method::GetChannelConfig
            | Method::ListDeadLetters
            | Method::GetDeadLetter
            | Method::GetSyncStatus
            | Method::ListAuditEntries
            | Method::ListBookings
            | Method::ListBlocks
            | Method::ListDoubleBookings
            | Method::ListWebhooks
            | Method::ListParkedWebhooks => Role::Viewer,
        }
    }

    pub fn mutates(self) -> bool {
        self.required_role() > Role::Viewer
    }

    pub fn name(self) -> &'static str {
        match self {
            Method::ConnectAccount => "ConnectAccount",
            Method::ListAccounts => "ListAccounts",
            Method::GetAccount => "GetAccount",
            Method::SetAccountEnabled => "SetAccountEnabled",
            Method::RotateCredentials => "RotateCredentials",
            Method::FinishRotation => "FinishRotation",
            Method::ListListings => "ListListings",
            Method::LinkListing => "LinkListing",
            Method::UnlinkListing => "UnlinkListing",
            Method::GetChannelConfig => "GetChannelConfig",
            Method::UpdateChannelConfig => "UpdateChannelConfig",
            Method::ListDeadLetters => "ListDeadLetters",
            Method::GetDeadLetter => "GetDeadLetter",
            Method::ReplayDeadLetters => "ReplayDeadLetters",
            Method::ResolveDeadLetters => "ResolveDeadLetters",
            Method::PurgeDeadLetters => "PurgeDeadLetters",
            Method::GetSyncStatus => "GetSyncStatus",
            Method::TriggerSync => "TriggerSync",
            Method::ReemitBookingEvents => "ReemitBookingEvents",
            Method::ListAuditEntries => "ListAuditEntries",
            Method::ListBookings => "ListBookings",
            Method::ListBlocks => "ListBlocks",
            Method::ListDoubleBookings => "ListDoubleBookings",
            Method::ListWebhooks => "ListWebhooks",
            Method::ListParkedWebhooks => "ListParkedWebhooks",
        }
    }
}

/// The holder of a live token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub token_id: Uuid,
    pub name: String,
    pub role: Role,
}

/// A token's prefix: recognisable in a leaked-secret scan.
pub const TOKEN_PREFIX: &str = "hwa_";

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A token is `hwa_` and 43 characters of base64url: 256 random bits.
fn well_formed(token: &str) -> bool {
    token.len() == TOKEN_PREFIX.len() + 43
        && token.starts_with(TOKEN_PREFIX)
        && token[TOKEN_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Issues a token: stored hashed, returned once.
pub async fn issue_token(
    pool: &PgPool,
    name: &str,
    role: Role,
) -> Result<(Uuid, SecretString), store::StoreError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(store::StoreError::Invalid(
            "a token's name is 1-100 printable characters".into(),
        ));
    }
    let random = store::crypto::CredentialCipher::random_bytes();
    let token = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    );
    let id = Uuid::now_v7();
    store::admin::insert_token(pool, id, name, role.as_str(), &digest(&token)).await?;
    Ok((id, SecretString::from(token)))
}

/// Why a call is not authenticated. Deliberately vague towards the caller.
pub fn unauthenticated() -> Status {
    Status::unauthenticated("a valid bearer token is required (authorization: Bearer hwa_…)")
}

/// The caller a request's `authorization` header names, if its token is live.
pub async fn authenticate(pool: &PgPool, metadata: &MetadataMap) -> Result<Caller, Status> {
    let header = metadata
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .ok_or_else(unauthenticated)?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .ok_or_else(unauthenticated)?;
    if !well_formed(token) {
        return Err(unauthenticated());
    }
    let secret = SecretString::from(token.to_owned());
    let found = store::admin::use_token(pool, &digest(secret.expose_secret()))
        .await
        .map_err(|error| {
            tracing::warn!(%error, "cannot check a token");
            Status::unavailable("cannot check the token now; try again")
        })?;
    let token = found.ok_or_else(unauthenticated)?;
    let role = Role::parse(&token.role).ok_or_else(|| {
        tracing::error!(token_id = %token.id, role = token.role, "token with an unknown role");
        Status::internal("the token's role is not known")
    })?;
    Ok(Caller {
        token_id: token.id,
        name: token.name,
        role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_every_method_needs_one() {
        assert!(Role::Owner > Role::Operator && Role::Operator > Role::Viewer);
        for method in Method::ALL {
            assert_eq!(
                method.mutates(),
                method.required_role() != Role::Viewer,
                "{method:?}"
            );
        }
        assert_eq!(Method::ConnectAccount.required_role(), Role::Owner);
        assert_eq!(Method::RotateCredentials.required_role(), Role::Owner);
        assert_eq!(Method::ReplayDeadLetters.required_role(), Role::Operator);
        assert_eq!(Method::ListDeadLetters.required_role(), Role::Viewer);
    }

    #[test]
    fn only_well_formed_tokens_are_looked_up() {
        let good = format!("{TOKEN_PREFIX}{}", "a".repeat(43));
        assert!(well_formed(&good));
        for bad in [
            String::new(),
            "hwa_".into(),
            format!("xyz_{}", "a".repeat(43)),
            format!("{TOKEN_PREFIX}{}", "a".repeat(42)),
            format!("{TOKEN_PREFIX}{}!", "a".repeat(42)),
            format!("{TOKEN_PREFIX}{}", "é".repeat(21)),
        ] {
            assert!(!well_formed(&bad), "{bad}");
        }
    }
}
