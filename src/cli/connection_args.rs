//! Where RabbitMQ and Redis are, with the seed's variable names (`RABBITMQ_HOST`,
//! `REDIS_HOST`) and full URLs. Passwords are best given in mounted files
//! (`*_PASSWORD_FILE`) or the environment; a password flag is the last resort (it shows in
//! `ps`). No password is ever printed: `--help` hides the values, URLs are redacted by
//! structure. Defaults come from the adapters' settings types.

use crate::adapters::amqp::{AmqpSettings, QueueType};
use crate::adapters::redis_index::{RedisSettings, SentinelSettings};
use crate::config::{ConfigError, Secret, ServiceUrl};
use std::path::PathBuf;
use std::time::Duration;

/// RabbitMQ connection and names.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerArgs {
    /// RabbitMQ host, or several of a cluster as `host[:port],host[:port],...` (used when
    /// neither RABBITMQ_URLS nor RABBITMQ_URL is set).
    #[arg(long, env = "RABBITMQ_HOST", default_value = "localhost")]
    pub rabbitmq_host: String,
    /// Every broker of a cluster, comma-separated full URLs: a process connects to one and
    /// moves to the next when it goes. A URL without a user gets RABBITMQ_USER and the
    /// password settings. Overrides RABBITMQ_URL and RABBITMQ_HOST.
    #[arg(long, env = "RABBITMQ_URLS", hide_env_values = true)]
    pub rabbitmq_urls: Option<Secret>,
    /// RabbitMQ port (used when RABBITMQ_URL is not set).
    #[arg(long, env = "RABBITMQ_PORT", default_value_t = 5672)]
    pub rabbitmq_port: u16,
    /// Full URL, e.g. amqps://user:password@host:5671/vhost (overrides host, port, user,
    /// password, vhost).
    #[arg(long, env = "RABBITMQ_URL", hide_env_values = true)]
    pub rabbitmq_url: Option<Secret>,
    /// RabbitMQ user.
    #[arg(long, env = "RABBITMQ_USER", default_value = "guest")]
    pub rabbitmq_user: String,
    /// RabbitMQ password [default: guest]. Prefer RABBITMQ_PASSWORD_FILE or the
    /// environment: a flag shows in the process list.
    #[arg(long, env = "RABBITMQ_PASSWORD", hide_env_values = true)]
    pub rabbitmq_password: Option<Secret>,
    /// File holding the RabbitMQ password (a mounted secret).
    #[arg(long, env = "RABBITMQ_PASSWORD_FILE")]
    pub rabbitmq_password_file: Option<PathBuf>,
    /// RabbitMQ virtual host.
    #[arg(long, env = "RABBITMQ_VHOST", default_value = "/")]
    pub rabbitmq_vhost: String,
    /// Direct exchange images are published to.
    #[arg(long, env = "FACEREC_EXCHANGE", default_value_t = AmqpSettings::default().exchange)]
    pub exchange: String,
    /// Queue workers consume (the seed also spells it toWorkers).
    #[arg(long, env = "FACEREC_QUEUE", default_value_t = AmqpSettings::default().queue)]
    pub queue: String,
    /// Binding key of the queue on the exchange.
    #[arg(long, env = "FACEREC_ROUTING_KEY", default_value_t = AmqpSettings::default().routing_key)]
    pub routing_key: String,
    /// Queue that receives messages that can never be processed, with the reason.
    #[arg(long, env = "FACEREC_DEAD_LETTER_QUEUE", default_value_t = AmqpSettings::default().dead_letter_queue)]
    pub dead_letter_queue: String,
    /// Declare the work queue as classic (what seed producers declare) or quorum.
    #[arg(long, env = "FACEREC_QUEUE_TYPE", value_enum, default_value = "classic")]
    pub queue_type: QueueType,
    /// Topic exchange for progress lines.
    #[arg(long, env = "FACEREC_LOGS_EXCHANGE", default_value_t = AmqpSettings::default().logs_exchange)]
    pub logs_exchange: String,
    /// Declare the logs exchange durable when it has to be created.
    #[arg(long, env = "FACEREC_LOGS_DURABLE")]
    pub logs_durable: bool,
}

impl BrokerArgs {
    /// The AMQP URL these flags describe.
    ///
    /// # Errors
    /// A malformed `RABBITMQ_URL` / host, or an unreadable password file.
    pub fn url(&self) -> Result<ServiceUrl, ConfigError> {
        Ok(self.urls()?.swap_remove(0))
    }

    /// Every broker these flags name (one unless RABBITMQ_URLS or a RABBITMQ_HOST list).
    ///
    /// # Errors
    /// A malformed URL or host, or an unreadable password file.
    pub fn urls(&self) -> Result<Vec<ServiceUrl>, ConfigError> {
        if let Some(list) = &self.rabbitmq_urls {
            let mut urls = Vec::new();
            for item in list.expose().split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let url = ServiceUrl::parse("RABBITMQ_URLS", item, &["amqp", "amqps"])?;
                urls.push(if url.has_user() {
                    url
                } else {
                    url.with_credentials(&self.rabbitmq_user, &self.password()?)
                });
            }
            if urls.is_empty() {
                return Err(ConfigError::invalid("RABBITMQ_URLS", "no URL given"));
            }
            return Ok(urls);
        }
        if let Some(url) = &self.rabbitmq_url {
            return Ok(vec![ServiceUrl::parse("RABBITMQ_URL", url.expose(), &["amqp", "amqps"])?]);
        }
        let password = self.password()?;
        // The vhost is one path segment: "/" is sent as %2F.
        let vhost: String = url::form_urlencoded::byte_serialize(self.rabbitmq_vhost.as_bytes()).collect();
        host_list("RABBITMQ_HOST", &self.rabbitmq_host, self.rabbitmq_port)?
            .into_iter()
            .map(|(host, port)| {
                ServiceUrl::from_parts(
                    "RABBITMQ_HOST",
                    "amqp",
                    &host,
                    port,
                    Some(&self.rabbitmq_user),
                    Some(&password),
                    &format!("/{vhost}"),
                )
            })
            .collect()
    }

    fn password(&self) -> Result<Secret, ConfigError> {
        Ok(match (&self.rabbitmq_password_file, &self.rabbitmq_password) {
            (Some(file), _) => Secret::from_file("RABBITMQ_PASSWORD_FILE", file)?,
            (None, Some(p)) => p.clone(),
            (None, None) => Secret::new("guest"),
        })
    }

    /// Adapter settings for a process called `hostname`.
    ///
    /// # Errors
    /// See [`BrokerArgs::url`].
    pub fn settings(&self, hostname: &str, prefetch: u16, delivery_limit: u32) -> Result<AmqpSettings, ConfigError> {
        let brokers = self.urls()?;
        let mut s = AmqpSettings::new(brokers[0].clone(), hostname);
        if brokers.len() > 1 {
            s.brokers = brokers;
        }
        s.exchange = self.exchange.clone();
        s.queue = self.queue.clone();
        s.routing_key = self.routing_key.clone();
        s.dead_letter_queue = self.dead_letter_queue.clone();
        s.queue_type = self.queue_type;
        s.prefetch = prefetch;
        s.delivery_limit = delivery_limit;
        s.logs_exchange = self.logs_exchange.clone();
        s.logs_durable = self.logs_durable;
        Ok(s)
    }
}

/// Redis connection.
#[derive(Debug, Clone, clap::Args)]
pub struct RedisArgs {
    /// Redis host (used when REDIS_URL is not set).
    #[arg(long, env = "REDIS_HOST", default_value = "localhost")]
    pub redis_host: String,
    /// Redis port (used when REDIS_URL is not set).
    #[arg(long, env = "REDIS_PORT", default_value_t = 6379)]
    pub redis_port: u16,
    /// Full URL, e.g. rediss://:password@host:6380 (databases 0-4 are used whatever it says).
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,
    /// Redis password (AUTH). Prefer REDIS_PASSWORD_FILE or the environment: a flag shows
    /// in the process list.
    #[arg(long, env = "REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<Secret>,
    /// File holding the Redis password (a mounted secret).
    #[arg(long, env = "REDIS_PASSWORD_FILE")]
    pub redis_password_file: Option<PathBuf>,
    /// Prefix for every key (to share one Redis between several indexes; empty in production).
    #[arg(long, env = "FACEREC_REDIS_KEY_PREFIX", default_value_t = RedisSettings::default().key_prefix)]
    pub redis_key_prefix: String,
    /// Wait until this many replicas have each write before acknowledging a message.
    #[arg(long, env = "FACEREC_REDIS_WAIT_REPLICAS", default_value_t = RedisSettings::default().wait_replicas)]
    pub redis_wait_replicas: u32,
    /// Seconds a Redis command may take before it counts as failed.
    #[arg(long, env = "FACEREC_REDIS_TIMEOUT", default_value_t = RedisSettings::default().command_timeout.as_secs())]
    pub redis_timeout: u64,
    /// Sentinels to ask where the primary is, `host:port,host:port,...` (with
    /// REDIS_SENTINEL_MASTER); REDIS_HOST / REDIS_URL then only give password and TLS.
    #[arg(long, env = "REDIS_SENTINELS")]
    pub redis_sentinels: Option<String>,
    /// The name the sentinels monitor the primary under.
    #[arg(long, env = "REDIS_SENTINEL_MASTER")]
    pub redis_sentinel_master: Option<String>,
    /// Password of the sentinels (their `requirepass`). Prefer REDIS_SENTINEL_PASSWORD_FILE.
    #[arg(long, env = "REDIS_SENTINEL_PASSWORD", hide_env_values = true)]
    pub redis_sentinel_password: Option<Secret>,
    /// File holding the sentinels' password (a mounted secret).
    #[arg(long, env = "REDIS_SENTINEL_PASSWORD_FILE")]
    pub redis_sentinel_password_file: Option<PathBuf>,
}

impl RedisArgs {
    /// The Redis URL these flags describe.
    ///
    /// # Errors
    /// A malformed `REDIS_URL` / host, or an unreadable password file.
    pub fn url(&self) -> Result<ServiceUrl, ConfigError> {
        if let Some(url) = &self.redis_url {
            return ServiceUrl::parse("REDIS_URL", url.expose(), &["redis", "rediss"]);
        }
        let password = match (&self.redis_password_file, &self.redis_password) {
            (Some(file), _) => Some(Secret::from_file("REDIS_PASSWORD_FILE", file)?),
            (None, Some(p)) => Some(p.clone()),
            (None, None) => None,
        };
        ServiceUrl::from_parts("REDIS_HOST", "redis", &self.redis_host, self.redis_port, None, password.as_ref(), "")
    }

    /// Adapter settings.
    ///
    /// # Errors
    /// See [`RedisArgs::url`].
    pub fn settings(&self) -> Result<RedisSettings, ConfigError> {
        Ok(RedisSettings {
            url: self.url()?,
            key_prefix: self.redis_key_prefix.clone(),
            wait_replicas: self.redis_wait_replicas,
            command_timeout: Duration::from_secs(self.redis_timeout.max(1)),
            sentinel: self.sentinel()?,
            ..RedisSettings::default()
        })
    }

    /// The Sentinel settings, when REDIS_SENTINELS is set.
    ///
    /// # Errors
    /// A malformed sentinel list, sentinels without a master name (or the reverse), or an
    /// unreadable password file.
    pub fn sentinel(&self) -> Result<Option<SentinelSettings>, ConfigError> {
        let (list, master) = match (&self.redis_sentinels, &self.redis_sentinel_master) {
            (None, None) => return Ok(None),
            (Some(list), Some(master)) if !master.trim().is_empty() => (list, master.trim().to_owned()),
            (Some(_), _) => return Err(ConfigError::invalid("REDIS_SENTINEL_MASTER", "needed with REDIS_SENTINELS")),
            (None, Some(_)) => {
                return Err(ConfigError::invalid("REDIS_SENTINELS", "needed with REDIS_SENTINEL_MASTER"));
            }
        };
        let hosts = host_list("REDIS_SENTINELS", list, 26379)?;
        let password = match (&self.redis_sentinel_password_file, &self.redis_sentinel_password) {
            (Some(file), _) => Some(Secret::from_file("REDIS_SENTINEL_PASSWORD_FILE", file)?),
            (None, p) => p.clone(),
        };
        Ok(Some(SentinelSettings { hosts, master, password }))
    }
}

/// Parses `host[:port],host[:port],...` (IPv6 in brackets); `default_port` where none is given.
///
/// # Errors
/// An empty list, an empty host or a port that is not a number, naming `setting`.
pub fn host_list(setting: &'static str, text: &str, default_port: u16) -> Result<Vec<(String, u16)>, ConfigError> {
    let mut hosts = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (host, port) = match item.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && (!h.contains(':') || h.ends_with(']')) => {
                let port = p.parse().map_err(|_| ConfigError::invalid(setting, format!("{item:?}: bad port {p:?}")))?;
                (h, port)
            }
            _ => (item, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(ConfigError::invalid(setting, format!("{item:?}: no host")));
        }
        hosts.push((host.to_owned(), port));
    }
    if hosts.is_empty() {
        return Err(ConfigError::invalid(setting, "no host:port given"));
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(clap::Parser)]
    struct Args {
        #[command(flatten)]
        broker: BrokerArgs,
        #[command(flatten)]
        redis: RedisArgs,
    }

    fn parse(args: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("t").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn passwords_with_url_delimiters_are_encoded_and_never_shown() {
        let a = parse(&[
            "--rabbitmq-password",
            "Pa/ss#Secret1?",
            "--redis-password",
            "R/d#Secret2@",
            "--rabbitmq-vhost",
            "/",
        ]);
        let amqp = a.broker.settings("host-a", 2, 20).unwrap();
        let redis = a.redis.settings().unwrap();
        assert_eq!(amqp.url.expose(), "amqp://guest:Pa%2Fss%23Secret1%3F@localhost:5672/%2F");
        assert_eq!(redis.url.expose(), "redis://:R%2Fd%23Secret2%40@localhost:6379");
        let shown = format!("{amqp:?} {redis:?} {} {} {:?} {:?}", amqp.url, redis.url, a.broker, a.redis);
        assert!(!shown.contains("Secret1") && !shown.contains("Secret2"), "{shown}");
        assert_eq!(amqp.hostname, "host-a");
        assert_eq!(amqp.connection_name, "facerec@host-a");
    }

    #[test]
    fn urls_given_whole_are_hidden_in_debug_output() {
        let a = parse(&["--rabbitmq-url", "amqp://u:Pa%2Fss%23Secret1@h/", "--redis-url", "redis://:Secret2@h:1"]);
        let shown = format!("{:?} {:?} {:?} {:?}", a.broker, a.redis, a.broker.settings("h", 1, 1), a.redis.settings());
        assert!(!shown.contains("Secret1") && !shown.contains("Secret2"), "{shown}");
    }

    #[test]
    fn malformed_urls_and_unreadable_files_are_configuration_errors() {
        let a = parse(&["--redis-url", "redis://bad host:x"]);
        assert!(a.redis.settings().unwrap_err().to_string().starts_with("REDIS_URL: "));
        let a = parse(&["--rabbitmq-password-file", "/nonexistent/secret"]);
        let e = a.broker.settings("h", 1, 1).unwrap_err().to_string();
        assert!(e.starts_with("RABBITMQ_PASSWORD_FILE: cannot read /nonexistent/secret"), "{e}");
    }

    #[test]
    fn sentinel_lists_are_parsed_and_incomplete_ones_are_configuration_errors() {
        let a = parse(&["--redis-sentinels", "s1:26380, s2 ,[::1]:26381", "--redis-sentinel-master", "mymaster"]);
        let s = a.redis.settings().unwrap().sentinel.unwrap();
        let hosts = [("s1".to_owned(), 26380), ("s2".to_owned(), 26379), ("::1".to_owned(), 26381)];
        assert_eq!((s.hosts, s.master.as_str()), (hosts.to_vec(), "mymaster"));
        assert!(parse(&[]).redis.settings().unwrap().sentinel.is_none());
        let e = parse(&["--redis-sentinels", "s1"]).redis.settings().unwrap_err().to_string();
        assert!(e.starts_with("REDIS_SENTINEL_MASTER: "), "{e}");
        let e = parse(&["--redis-sentinels", "s1:x", "--redis-sentinel-master", "m"]).redis.settings().unwrap_err();
        assert!(e.to_string().starts_with("REDIS_SENTINELS: "), "{e}");
        let a =
            parse(&["--redis-sentinels", "s1", "--redis-sentinel-master", "m", "--redis-sentinel-password", "Sec3"]);
        let shown = format!("{:?} {:?}", a.redis, a.redis.settings());
        assert!(!shown.contains("Sec3"), "{shown}");
    }

    #[test]
    fn broker_lists_from_urls_or_hosts() {
        let a = parse(&["--rabbitmq-host", "r1,r2:5673", "--rabbitmq-password", "Sec4"]);
        let s = a.broker.settings("h", 1, 1).unwrap();
        let shown: Vec<&str> = s.brokers.iter().map(ServiceUrl::expose).collect();
        assert_eq!(shown, ["amqp://guest:Sec4@r1:5672/%2F", "amqp://guest:Sec4@r2:5673/%2F"]);
        assert_eq!(s.url.expose(), shown[0]);
        let a = parse(&["--rabbitmq-urls", "amqp://a:1/%2F, amqp://u:p@b:2/v", "--rabbitmq-user", "me"]);
        let s = a.broker.settings("h", 1, 1).unwrap();
        let shown: Vec<&str> = s.brokers.iter().map(ServiceUrl::expose).collect();
        assert_eq!(shown, ["amqp://me:guest@a:1/%2F", "amqp://u:p@b:2/v"]);
        assert!(parse(&[]).broker.settings("h", 1, 1).unwrap().brokers.is_empty(), "one broker: no list");
        let e = parse(&["--rabbitmq-urls", "http://x"]).broker.settings("h", 1, 1).unwrap_err().to_string();
        assert!(e.starts_with("RABBITMQ_URLS: "), "{e}");
    }

    #[test]
    fn clap_defaults_are_the_settings_defaults() {
        let a = parse(&[]);
        let (amqp, default) = (a.broker.settings("h", 2, 20).unwrap(), AmqpSettings::default());
        assert_eq!(
            (&amqp.exchange, &amqp.queue, &amqp.routing_key, &amqp.dead_letter_queue, &amqp.logs_exchange),
            (
                &default.exchange,
                &default.queue,
                &default.routing_key,
                &default.dead_letter_queue,
                &default.logs_exchange
            )
        );
        let (redis, default) = (a.redis.settings().unwrap(), RedisSettings::default());
        assert_eq!(
            (&redis.key_prefix, redis.wait_replicas, redis.command_timeout),
            (&default.key_prefix, default.wait_replicas, default.command_timeout)
        );
    }
}
