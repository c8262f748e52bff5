//! A client of the API that sends a bearer token with every call (the CLI's
//! and the tests').

use secrecy::{ExposeSecret, SecretString};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::proto::admin_service_client::AdminServiceClient;

/// Adds `authorization: Bearer <token>` to every request (none: no header).
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bearer([REDACTED])")
    }
}

impl Bearer {
    pub fn new(token: Option<&SecretString>) -> Result<Self, ClientError> {
        token
            .map(|t| {
                format!("Bearer {}", t.expose_secret())
                    .parse()
                    .map_err(|_| ClientError::Token)
            })
            .transpose()
            .map(Self)
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type AdminClient = AdminServiceClient<InterceptedService<Channel, Bearer>>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the token is not printable ASCII")]
    Token,
    #[error("{url} is not a valid URL of the operations API")]
    Url { url: String },
    #[error("cannot reach the operations API at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// Connects to the API at `url` (`http://host:50051`; `https://` when TLS
/// terminates in front of it).
pub async fn connect(url: &str, token: Option<&SecretString>) -> Result<AdminClient, ClientError> {
    let bearer = Bearer::new(token)?;
    let endpoint = Channel::from_shared(url.to_owned()).map_err(|_| ClientError::Url {
        url: url.to_owned(),
    })?;
    let channel = endpoint
        .connect_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await
        .map_err(|source| ClientError::Connect {
            url: url.to_owned(),
            source,
        })?;
    Ok(AdminServiceClient::with_interceptor(channel, bearer))
}
