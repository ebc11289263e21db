//! Where RabbitMQ and Redis are, with the seed's variable names (`RABBITMQ_HOST`,
//! `REDIS_HOST`) and full URLs. Passwords come from the environment or mounted files
//! and are never printed (`--help` hides their values, logs redact URLs).

use crate::adapters::amqp::{AmqpSettings, QueueType};
use crate::adapters::redis_index::RedisSettings;
use crate::config::{Secret, encode_userinfo};
use std::path::PathBuf;
use std::time::Duration;

/// RabbitMQ connection and names.
#[derive(Debug, Clone, clap::Args)]
pub struct BrokerArgs {
    /// RabbitMQ host (used when RABBITMQ_URL is not set).
    #[arg(long, env = "RABBITMQ_HOST", default_value = "localhost")]
    pub rabbitmq_host: String,
    /// RabbitMQ port (used when RABBITMQ_URL is not set).
    #[arg(long, env = "RABBITMQ_PORT", default_value_t = 5672)]
    pub rabbitmq_port: u16,
    /// Full URL, e.g. amqps://user:password@host:5671/vhost (overrides host, port, user,
    /// password, vhost).
    #[arg(long, env = "RABBITMQ_URL", hide_env_values = true)]
    pub rabbitmq_url: Option<String>,
    /// RabbitMQ user.
    #[arg(long, env = "RABBITMQ_USER", default_value = "guest")]
    pub rabbitmq_user: String,
    /// RabbitMQ password [default: guest]
    #[arg(long, env = "RABBITMQ_PASSWORD", hide_env_values = true)]
    pub rabbitmq_password: Option<String>,
    /// File holding the RabbitMQ password (a mounted secret).
    #[arg(long, env = "RABBITMQ_PASSWORD_FILE")]
    pub rabbitmq_password_file: Option<PathBuf>,
    /// RabbitMQ virtual host.
    #[arg(long, env = "RABBITMQ_VHOST", default_value = "/")]
    pub rabbitmq_vhost: String,
    /// Direct exchange images are published to.
    #[arg(long, env = "FACEREC_EXCHANGE", default_value = "toWorker")]
    pub exchange: String,
    /// Queue workers consume (the seed also spells it toWorkers).
    #[arg(long, env = "FACEREC_QUEUE", default_value = "toWorker")]
    pub queue: String,
    /// Binding key of the queue on the exchange.
    #[arg(long, env = "FACEREC_ROUTING_KEY", default_value = "toWorker")]
    pub routing_key: String,
    /// Queue that receives messages that can never be processed, with the reason.
    #[arg(long, env = "FACEREC_DEAD_LETTER_QUEUE", default_value = "toWorker.dead")]
    pub dead_letter_queue: String,
    /// Declare the work queue as classic (what seed producers declare) or quorum.
    #[arg(long, env = "FACEREC_QUEUE_TYPE", value_enum, default_value = "classic")]
    pub queue_type: QueueType,
    /// Topic exchange for progress lines.
    #[arg(long, env = "FACEREC_LOGS_EXCHANGE", default_value = "logs")]
    pub logs_exchange: String,
    /// Declare the logs exchange durable when it has to be created.
    #[arg(long, env = "FACEREC_LOGS_DURABLE")]
    pub logs_durable: bool,
}

impl BrokerArgs {
    /// The AMQP URL these flags describe.
    ///
    /// # Errors
    /// The password file cannot be read.
    pub fn url(&self) -> Result<Secret, String> {
        if let Some(url) = &self.rabbitmq_url {
            return Ok(Secret::new(url.clone()));
        }
        let password = match (&self.rabbitmq_password_file, &self.rabbitmq_password) {
            (Some(file), _) => Secret::from_file(file)?,
            (None, Some(p)) => Secret::new(p.clone()),
            (None, None) => Secret::new("guest"),
        };
        let vhost = encode_userinfo(&self.rabbitmq_vhost);
        Ok(Secret::new(format!(
            "amqp://{}:{}@{}:{}/{vhost}",
            encode_userinfo(&self.rabbitmq_user),
            encode_userinfo(password.expose()),
            self.rabbitmq_host,
            self.rabbitmq_port
        )))
    }

    /// The host shown in "Connecting to rabbitmq(HOST)".
    pub fn host(&self) -> String {
        match &self.rabbitmq_url {
            Some(url) => crate::config::url_host(url),
            None => self.rabbitmq_host.clone(),
        }
    }

    /// Adapter settings.
    ///
    /// # Errors
    /// See [`BrokerArgs::url`].
    pub fn settings(&self, prefetch: u16, delivery_limit: u32) -> Result<AmqpSettings, String> {
        let mut s = AmqpSettings::new(self.url()?.expose());
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
    pub redis_url: Option<String>,
    /// Redis password (AUTH).
    #[arg(long, env = "REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<String>,
    /// File holding the Redis password (a mounted secret).
    #[arg(long, env = "REDIS_PASSWORD_FILE")]
    pub redis_password_file: Option<PathBuf>,
    /// Prefix for every key (to share one Redis between several indexes; empty in production).
    #[arg(long, env = "FACEREC_REDIS_KEY_PREFIX", default_value = "")]
    pub redis_key_prefix: String,
    /// Wait until this many replicas have each write before acknowledging a message.
    #[arg(long, env = "FACEREC_REDIS_WAIT_REPLICAS", default_value_t = 0)]
    pub redis_wait_replicas: u32,
    /// Seconds a Redis command may take before it counts as failed.
    #[arg(long, env = "FACEREC_REDIS_TIMEOUT", default_value_t = 10)]
    pub redis_timeout: u64,
}

impl RedisArgs {
    /// The Redis URL these flags describe.
    ///
    /// # Errors
    /// The password file cannot be read.
    pub fn url(&self) -> Result<Secret, String> {
        if let Some(url) = &self.redis_url {
            return Ok(Secret::new(url.clone()));
        }
        let password = match (&self.redis_password_file, &self.redis_password) {
            (Some(file), _) => Some(Secret::from_file(file)?),
            (None, Some(p)) => Some(Secret::new(p.clone())),
            (None, None) => None,
        };
        let auth = password.map(|p| format!(":{}@", encode_userinfo(p.expose()))).unwrap_or_default();
        Ok(Secret::new(format!("redis://{auth}{}:{}", self.redis_host, self.redis_port)))
    }

    /// The host shown in "Connecting to ... redis(HOST)".
    pub fn host(&self) -> String {
        match &self.redis_url {
            Some(url) => crate::config::url_host(url),
            None => self.redis_host.clone(),
        }
    }

    /// Adapter settings.
    ///
    /// # Errors
    /// See [`RedisArgs::url`].
    pub fn settings(&self) -> Result<RedisSettings, String> {
        Ok(RedisSettings {
            url: self.url()?.expose().to_owned(),
            key_prefix: self.redis_key_prefix.clone(),
            wait_replicas: self.redis_wait_replicas,
            command_timeout: Duration::from_secs(self.redis_timeout.max(1)),
            ..RedisSettings::default()
        })
    }
}
