//! Unified webhook objects (`/v1/webhooks/unifiedWebhooks`): `{id, isEnabled,
//! url, login, password, alertingEmailAddress}`. Hostaway masks the password
//! (`"****"`) when it reads one back.

use domain::Patch;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use crate::json::Record;
use crate::{MappingError, Problem};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnifiedWebhook {
    pub id: String,
    pub is_enabled: bool,
    pub url: String,
    pub login: Option<String>,
    /// Whether a password is set (Hostaway shows it masked).
    pub has_password: bool,
    pub alerting_email_address: Option<String>,
}

pub fn parse_unified_webhook(map: &Map<String, Value>) -> Result<UnifiedWebhook, MappingError> {
    let r = Record::new(map);
    let id = match r.id("id", &["id"])? {
        Patch::Set(id) => id,
        _ => return Err(MappingError::new("id", Problem::Missing)),
    };
    Ok(UnifiedWebhook {
        id,
        is_enabled: r.flag("isEnabled", &["isEnabled"])?.set().unwrap_or(false),
        url: r
            .text_up_to("url", &["url"], 2000)?
            .set()
            .unwrap_or_default(),
        login: r.text("login", &["login"])?.set(),
        has_password: r.text("password", &["password"])?.set().is_some(),
        alerting_email_address: r
            .text("alertingEmailAddress", &["alertingEmailAddress"])?
            .set(),
    })
}

/// The body of a create or update.
#[derive(Debug, Clone)]
pub struct UnifiedWebhookRequest {
    pub is_enabled: bool,
    pub url: String,
    pub login: Option<String>,
    pub password: Option<SecretString>,
    pub alerting_email_address: Option<String>,
}

impl UnifiedWebhookRequest {
    /// The JSON body. The password is exposed here and nowhere else.
    pub fn to_json(&self) -> Value {
        json!({
            "isEnabled": u8::from(self.is_enabled),
            "url": self.url,
            "login": self.login,
            "password": self.password.as_ref().map(|p| p.expose_secret().to_owned()),
            "alertingEmailAddress": self.alerting_email_address,
        })
    }
}
