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
    #[error("{what} {path}: {source}")]
    File {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS settings of the client: {0}")]
    Tls(#[source] tonic::transport::Error),
    #[error("cannot reach the operations API at {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// PEM files of a client's TLS: the CA that signed the server's certificate
/// (else the system's roots), and the client's own certificate for mTLS.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    pub ca: Option<std::path::PathBuf>,
    pub identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl ClientTls {
    fn config(&self) -> Result<tonic::transport::ClientTlsConfig, ClientError> {
        let read = |what: &'static str, path: &std::path::Path| {
            std::fs::read(path).map_err(|source| ClientError::File {
                what,
                path: path.display().to_string(),
                source,
            })
        };
        let mut config = tonic::transport::ClientTlsConfig::new().with_webpki_roots();
        if let Some(ca) = &self.ca {
            config = config.ca_certificate(tonic::transport::Certificate::from_pem(read(
                "ADMIN_API_CA_FILE",
                ca,
            )?));
        }
        if let Some((certificate, key)) = &self.identity {
            config = config.identity(tonic::transport::Identity::from_pem(
                read("ADMIN_API_CLIENT_CERT_FILE", certificate)?,
                read("ADMIN_API_CLIENT_KEY_FILE", key)?,
            ));
        }
        Ok(config)
    }
}

/// Connects to the API at `url` (`http://host:50051`, or `https://`).
pub async fn connect(url: &str, token: Option<&SecretString>) -> Result<AdminClient, ClientError> {
    connect_with(url, token, &ClientTls::default()).await
}

/// As [`connect`], with the TLS settings of `tls` for an `https://` URL.
pub async fn connect_with(
    url: &str,
    token: Option<&SecretString>,
    tls: &ClientTls,
) -> Result<AdminClient, ClientError> {
    let bearer = Bearer::new(token)?;
    let mut endpoint = Channel::from_shared(url.to_owned()).map_err(|_| ClientError::Url {
        url: url.to_owned(),
    })?;
    if url.starts_with("https://") {
        endpoint = endpoint
            .tls_config(tls.config()?)
            .map_err(ClientError::Tls)?;
    }
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
