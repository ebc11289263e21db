//! Redis behind Sentinel: where the sentinels are, which primary they watch, and the
//! replies that mean "this server is not (or no longer) a usable primary".
//!
//! fred asks the sentinels for the primary's address at every (re)connection and checks
//! its `ROLE`, so following a failover is reconnecting. A killed primary drops the
//! connection; a demoted one that stays up answers writes with `READONLY`, which is why
//! those replies reconnect instead of only failing the command.

use crate::config::Secret;
use fred::types::config::{ReconnectError, Server, ServerConfig};

/// Sentinels that know the primary (`REDIS_SENTINELS`, `REDIS_SENTINEL_MASTER`).
#[derive(Debug, Clone)]
pub struct SentinelSettings {
    /// `host:port` of each sentinel; one that answers is enough.
    pub hosts: Vec<(String, u16)>,
    /// The name the sentinels monitor the primary under (`sentinel monitor <name> ...`).
    pub master: String,
    /// Password of the sentinels themselves (`requirepass` in sentinel.conf), if any. The
    /// primary's own password comes from the Redis URL as without Sentinel.
    pub password: Option<Secret>,
}

impl SentinelSettings {
    /// fred's server configuration for these sentinels.
    pub(super) fn server_config(&self) -> ServerConfig {
        ServerConfig::Sentinel {
            hosts: self.hosts.iter().map(|(h, p)| Server::new(h.as_str(), *p)).collect(),
            service_name: self.master.clone(),
            username: None,
            password: self.password.as_ref().map(|p| p.expose().to_owned()),
        }
    }
}

/// Replies after which the connection is dropped and the primary looked up again: the
/// server was demoted (`READONLY`), lost its primary (`MASTERDOWN`), is reloading its data
/// after a restart (`LOADING`), or has too few replicas for writes (`NOREPLICAS`). The
/// command that got one fails as transient, so its message is tried again.
pub(super) const RECONNECT_ERRORS: [ReconnectError; 4] =
    [ReconnectError::ReadOnly, ReconnectError::MasterDown, ReconnectError::Loading, ReconnectError::NoReplicas];

/// Whether a Redis error text is one of [`RECONNECT_ERRORS`] (also when a Lua script
/// passes it on inside its own error).
pub(super) fn is_failover_reply(details: &str) -> bool {
    ["READONLY", "MASTERDOWN", "LOADING", "NOREPLICAS"].iter().any(|code| details.contains(code))
}
