//! `facerec api`: the REST front-end (the course's routes and `/api/v1`) in front of the
//! workers, with the worker's RabbitMQ and Redis settings.

use super::connection_args::{BrokerArgs, RedisArgs};
use crate::api::ApiSettings;
use crate::api::fetch::FetchPolicy;
use crate::api::server::ServerLimits;
use crate::app::{self, api::ApiConfig, api::FrontEnd};
use crate::config::{ConfigError, Secret};
use std::path::PathBuf;

/// Run the REST front-end.
#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// RabbitMQ.
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Redis.
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Address to listen on.
    #[arg(long, env = "FACEREC_API_ADDR", default_value = "0.0.0.0:5000")]
    pub addr: String,
    /// Token, limits, CORS, URL fetching.
    #[command(flatten)]
    pub front: FrontEndArgs,
    /// How this process names itself: log routing keys `<name>.rest.info` [default: the host name]
    #[arg(long, env = "FACEREC_HOSTNAME")]
    pub hostname: Option<String>,
}

/// The HTTP front-end's flags, shared by `facerec api` and `facerec serve` (the address is
/// each command's own: their defaults differ).
#[derive(Debug, clap::Args)]
pub struct FrontEndArgs {
    /// Bearer token required on /scan/*, /match/* and /api/v1/* (health and metrics stay
    /// open). Prefer FACEREC_API_TOKEN_FILE: a flag shows in the process list.
    #[arg(long, env = "FACEREC_API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the bearer token (a mounted secret).
    #[arg(long, env = "FACEREC_API_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Fetch URLs on loopback, private and link-local addresses too (local development
    /// and tests only: it lets clients reach the server's own network).
    #[arg(long, env = "FACEREC_API_ALLOW_PRIVATE_URLS", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_private_urls: bool,
    /// Largest request body (an image), in bytes [default: the worker's image limit].
    #[arg(long, env = "FACEREC_API_MAX_BODY_BYTES", default_value_t = ApiSettings::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Connections served at once.
    #[arg(long, env = "FACEREC_API_MAX_CONNECTIONS", default_value_t = ServerLimits::default().max_connections)]
    pub max_connections: usize,
    /// Submissions get 503 + Retry-After while the work queue holds more messages than
    /// this (0: off, the default). The depth is read at most once a second.
    #[arg(long, env = "FACEREC_API_MAX_QUEUE", default_value_t = 0)]
    pub max_queue: u64,
    /// Origins allowed to call the API from a browser (comma-separated, `*` for any).
    /// Unset: no CORS headers at all.
    #[arg(long, env = "FACEREC_API_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
}

impl FrontEndArgs {
    /// The checked settings, listening on `addr`, naming log lines after `host`.
    ///
    /// # Errors
    /// The first setting that cannot be used.
    pub fn config(&self, addr: &str, host: String) -> Result<FrontEnd, ConfigError> {
        let addr = addr.parse().map_err(|e| ConfigError::invalid("FACEREC_API_ADDR", format!("{addr:?}: {e}")))?;
        let token = match (&self.token_file, &self.token) {
            (Some(file), _) => Some(Secret::from_file("FACEREC_API_TOKEN_FILE", file)?),
            (None, Some(t)) => Some(Secret::new(t.clone())),
            (None, None) => None,
        };
        if token.as_ref().is_some_and(|t| t.expose().trim().is_empty()) {
            return Err(ConfigError::invalid("FACEREC_API_TOKEN", "the token is empty"));
        }
        let token = token.map(|t| Secret::new(t.expose().trim()));
        if self.max_body_bytes == 0 {
            return Err(ConfigError::invalid("FACEREC_API_MAX_BODY_BYTES", "must be above 0"));
        }
        let cors_origins: Vec<String> =
            self.cors_origins.iter().map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()).collect();
        if let Some(bad) = cors_origins.iter().find(|o| o.as_str() != "*" && !o.contains("://")) {
            return Err(ConfigError::invalid(
                "FACEREC_API_CORS_ORIGINS",
                format!("{bad:?} is not an origin like https://app.example"),
            ));
        }
        let api = ApiSettings {
            hostname: host,
            max_body_bytes: self.max_body_bytes,
            token,
            max_queue: (self.max_queue > 0).then_some(self.max_queue),
            cors_origins,
            ..ApiSettings::default()
        };
        let fetch = FetchPolicy {
            allow_private: self.allow_private_urls,
            max_bytes: self.max_body_bytes,
            ..FetchPolicy::default()
        };
        let server = ServerLimits { max_connections: self.max_connections.max(1), ..ServerLimits::default() };
        Ok(FrontEnd { addr, api, fetch, server })
    }
}

impl ApiArgs {
    /// The checked configuration.
    ///
    /// # Errors
    /// The first setting that cannot be used.
    pub fn config(&self) -> Result<ApiConfig, ConfigError> {
        let host = app::hostname(self.hostname.as_deref());
        let amqp = self.broker.settings(&host, 1, 20)?;
        let redis = self.redis.settings()?;
        let front = self.front.config(&self.addr, host)?;
        Ok(ApiConfig { amqp, redis, front })
    }
}

/// Serves until SIGTERM/SIGINT.
///
/// # Errors
/// See [`app::api::run`].
pub async fn run(args: ApiArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    println!(
        "Serving on {} (rabbitmq {}, redis {})",
        config.front.addr,
        config.amqp.url.host(),
        config.redis.url.host()
    );
    app::api::run(config, crate::shutdown::on_signals()).await?;
    Ok(())
}
