//! The production [`FaceIndex`]: Redis, in exactly the seed's databases 1-4, plus a face
//! cache in this process that follows a change log, so matching an image against the whole
//! collection costs O(1) round trips.
//!
//! | db | key | value |
//! |---|---|---|
//! | 1 | name | image hash (string) |
//! | 2 | image hash | set of names |
//! | 3 | image hash | set of encodings (1024 bytes: 128 little-endian f64) |
//! | 4 | image hash | set of hashes of images with a matching face (both ways) |
//! | 0 | `facerec:*` | change log, per-image fingerprint and status, pair distances, failures, layouts, thumbnails, the recorded tolerance, the worker registry |
//!
//! Adding a new image: (1) one script stores its faces in db 3 (with its layout and
//! thumbnail in db 0) and appends it to the change log, returning everything logged since this worker last looked; (2) the faces are
//! compared in memory with every cached face; (3) one script writes the matches both ways,
//! the distances and, last, the name. Round trips per new image: 3 (is-known, store,
//! commit), plus one per 2,000 images other workers added since the last look beyond the
//! first 2,000. A known image: 2 (is-known, add-name). Because each image is logged in the
//! same atomic step that stores its faces, and compared only after that, two workers
//! racing on two images of one person always link them: whichever is logged second sees
//! the first.
//!
//! Keys of the wrong type (written by another program) never leave half an image: every
//! key an image's own writes touch is type-checked in the store script before its first
//! write (a foreign-typed one dead-letters the image, nothing written); the commit script
//! checks again before its first write and leaves out matches whose keys are foreign; a
//! failed commit rolls the stored faces back (one more round trip, on failure only). The
//! change-log read skips foreign db 3 keys, as the start-up load does.
//!
//! At start the cache is built from db 3 itself (not from the log), so a database filled
//! by another program that follows the schema is matched against in full.

mod failures;
mod maintenance;
mod maintenance_scripts;
mod recent;
mod scripts;
mod sentinel;
mod tolerance;

pub use sentinel::SentinelSettings;
pub use tolerance::{HEARTBEAT, REGISTRATION_LIFETIME, RegisteredWorker, WRITE_BATCH, WriteReport};

use crate::config::ServiceUrl;
use crate::face::Encoding;
use crate::hash::ImageHash;
use crate::matching::FaceSet;
use crate::ports::{FaceIndex, Forgotten, ImageFailure, ImageLayout, ImageMatch, ImageRecord, IndexError, NewImage};
use async_trait::async_trait;
use fred::prelude::*;
use fred::types::scripts::Script;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// How to reach Redis and run the index.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://[:password@]host:port` or `rediss://` for TLS (shown redacted). A database
    /// in the URL is ignored: the schema fixes databases 0-4.
    pub url: ServiceUrl,
    /// Put in front of every key (tests; several indexes in one Redis). Empty in production.
    pub key_prefix: String,
    /// Approximate length the change log is trimmed to. A worker that falls further behind
    /// reloads its cache from db 3.
    pub log_max_len: u64,
    /// Longest time one command may take before it counts as a failure (transient).
    pub command_timeout: Duration,
    /// After each write, wait for this many replicas to acknowledge it (Redis `WAIT`).
    pub wait_replicas: u32,
    /// Find the primary through these sentinels (the URL's host and port are then unused;
    /// its password and TLS still apply to the primary).
    pub sentinel: Option<SentinelSettings>,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: ServiceUrl::parse("REDIS_URL", "redis://127.0.0.1:6379", &["redis"]).expect("static URL"),
            key_prefix: String::new(),
            log_max_len: 200_000,
            command_timeout: Duration::from_secs(10),
            wait_replicas: 0,
            sentinel: None,
        }
    }
}

/// Changes read from the log per round trip.
const BATCH: i64 = 2000;
/// db 3 keys read per round trip while loading.
const LOAD_PAGE: i64 = 500;

struct Scripts {
    add_faces: Script,
    changes: Script,
    commit: Script,
    add_name: Script,
    is_known: Script,
    hash_of: Script,
    image: Script,
    match_names: Script,
    thumbnail: Script,
    load_page: Script,
    last_id: Script,
    rollback: Script,
}

/// The Redis index with its synced face cache.
pub struct RedisIndex {
    client: Client,
    scripts: Scripts,
    settings: RedisSettings,
    faces: Arc<RwLock<FaceSet>>,
    /// Last change-log id applied to `faces` (`None` until loaded). Held across a store
    /// round trip, so cache updates from concurrent images of this worker never skip an entry.
    cursor: tokio::sync::Mutex<Option<String>>,
}

impl RedisIndex {
    /// Connects (one attempt). The face cache is loaded by [`RedisIndex::load_cache`], or
    /// by the first `add_image`; queries (`image`, `hash_of`) never need it.
    ///
    /// # Errors
    /// [`IndexError::Unavailable`] when Redis cannot be reached; the caller retries.
    pub async fn connect(settings: RedisSettings) -> Result<Self, IndexError> {
        let mut config = Config::from_url(settings.url.expose())
            .map_err(|e| IndexError::Rejected(format!("REDIS_URL {}: {e}", settings.url)))?;
        // The schema fixes the databases; scripts SELECT them and return to 0.
        config.database = None;
        if let Some(sentinel) = &settings.sentinel {
            config.server = sentinel.server_config();
        }
        let timeout = settings.command_timeout;
        let client = Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = timeout;
                c.internal_command_timeout = timeout;
                c.max_command_attempts = 2;
                c.reconnect_errors = sentinel::RECONNECT_ERRORS.to_vec();
            })
            .with_performance_config(|p| p.default_command_timeout = timeout)
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .build()
            .map_err(unavailable)?;
        tokio::time::timeout(timeout, client.init())
            .await
            .map_err(|_| IndexError::Unavailable(format!("no answer from Redis within {timeout:?}")))?
            .map_err(unavailable)?;
        let index = Self {
            client,
            scripts: Scripts {
                add_faces: Script::from_lua(scripts::add_faces()),
                changes: Script::from_lua(scripts::changes()),
                commit: Script::from_lua(scripts::commit()),
                add_name: Script::from_lua(format!(
                    "{}{}",
                    maintenance_scripts::ADD_NAME_ERASED_GUARD,
                    scripts::add_name()
                )),
                is_known: Script::from_lua(scripts::IS_KNOWN),
                hash_of: Script::from_lua(scripts::HASH_OF),
                image: Script::from_lua(scripts::IMAGE),
                match_names: Script::from_lua(scripts::MATCH_NAMES),
                thumbnail: Script::from_lua(scripts::THUMBNAIL),
                load_page: Script::from_lua(scripts::LOAD_PAGE),
                last_id: Script::from_lua(scripts::LAST_ID),
                rollback: Script::from_lua(scripts::ROLLBACK),
            },
            settings,
            faces: Arc::default(),
            cursor: tokio::sync::Mutex::new(None),
        };
        Ok(index)
    }

    /// Builds the face cache from db 3 (once; later calls do nothing).
    ///
    /// # Errors
    /// [`IndexError::Unavailable`] when Redis fails while loading; the caller retries.
    pub async fn load_cache(&self) -> Result<(), IndexError> {
        let mut cursor = self.cursor.lock().await;
        if cursor.is_none() {
            let mut fresh = String::new();
            self.reload(&mut fresh).await?;
            *cursor = Some(fresh);
        }
        Ok(())
    }

    /// Whether the connection to Redis is up.
    pub fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    /// Whether the face cache was loaded.
    pub fn cache_loaded(&self) -> bool {
        self.cursor.try_lock().map_or(true, |c| c.is_some())
    }

    /// Faces held in the cache.
    pub fn cached_faces(&self) -> usize {
        self.faces.read().expect("cache lock").faces()
    }

    /// Bytes held by the cache's face rows.
    pub fn cache_bytes(&self) -> usize {
        self.faces.read().expect("cache lock").heap_bytes()
    }

    /// Closes the connection.
    pub async fn close(&self) {
        let _ = self.client.quit().await;
    }

    async fn run(&self, script: &Script, args: Vec<Value>) -> Result<Value, IndexError> {
        let reply = script.evalsha_with_reload::<Value, _, _>(&self.client, Vec::<Key>::new(), args).await;
        reply.map_err(|e| {
            // fred reconnects by itself on a reply that starts with one of these codes; a
            // script may pass one on inside its own error text, so reconnect here too.
            if sentinel::is_failover_reply(e.details()) {
                let client = self.client.clone();
                tokio::spawn(async move { client.force_reconnection().await });
            }
            classify(e)
        })
    }

    fn prefix(&self) -> Value {
        Value::from(self.settings.key_prefix.as_str())
    }

    /// Rebuilds the cache from db 3. The log position is read first: anything stored
    /// while the pages are read is in the log after it, and is picked up by the next sync.
    async fn reload(&self, cursor: &mut String) -> Result<(), IndexError> {
        let started = Instant::now();
        let last = self.run(&self.scripts.last_id, vec![self.prefix()]).await?;
        *cursor = text(&last).unwrap_or_else(|| "0-0".into());
        let mut fresh = FaceSet::default();
        let (mut scan, mut skipped) = ("0".to_owned(), 0usize);
        let load_page =
            |scan: &str| self.run(&self.scripts.load_page, vec![self.prefix(), scan.into(), LOAD_PAGE.into()]);
        let mut page = load_page(&scan).await?;
        loop {
            let mut items = array(page)?.into_iter();
            scan = items.next().as_ref().and_then(text).ok_or_else(|| malformed("load page"))?;
            if scan == "0" {
                skipped += maintenance::apply_changes(&mut fresh, items)?;
                break;
            }
            // The next page is requested before this one is parsed, so Redis builds it while
            // this thread converts and inserts (docs/PERFORMANCE.md: load time).
            let mut next = std::pin::pin!(load_page(&scan));
            let first = futures::poll!(next.as_mut());
            skipped += maintenance::apply_changes(&mut fresh, items)?;
            page = match first {
                std::task::Poll::Ready(page) => page?,
                std::task::Poll::Pending => next.await?,
            };
        }
        if skipped > 0 {
            tracing::warn!(skipped, "db 3 values that are not 1024-byte encodings were ignored");
        }
        tracing::info!(
            faces = fresh.faces(),
            images = fresh.images(),
            seconds = started.elapsed().as_secs_f64(),
            "face cache loaded from Redis db 3"
        );
        *self.faces.write().expect("cache lock") = fresh;
        crate::memory::release_free_memory();
        Ok(())
    }

    /// Applies a `changes` reply to the cache; returns (more to read, gap in the log).
    fn apply(&self, reply: Value, cursor: &mut String) -> Result<(bool, bool), IndexError> {
        let mut items = array(reply)?.into_iter();
        let last = items.next().as_ref().and_then(text).ok_or_else(|| malformed("changes"))?;
        let more = items.next().and_then(|v| v.as_i64()).unwrap_or(0) == 1;
        let gap = items.next().and_then(|v| v.as_i64()).unwrap_or(0) == 1;
        let foreign = items.next().and_then(|v| v.as_i64()).unwrap_or(0);
        if gap {
            return Ok((false, true));
        }
        if foreign > 0 {
            tracing::warn!(
                skipped = foreign,
                "change log: db 3 keys that are not sets (another program's) were ignored"
            );
        }
        let mut faces = self.faces.write().expect("cache lock");
        maintenance::apply_changes(&mut faces, items)?;
        *cursor = last;
        Ok((more, false))
    }

    /// Stores the faces, brings the cache up to date, and returns the matches.
    async fn store_and_compare(&self, image: &NewImage, tolerance: f64) -> Result<Vec<ImageMatch>, IndexError> {
        let mut args: Vec<Value> = vec![
            self.prefix(),
            image.hash.as_str().into(),
            image.name.as_str().into(),
            image.fingerprint.as_str().into(),
            Value::Null, // cursor, filled below under the lock
            self.settings.log_max_len.to_string().into(),
            BATCH.into(),
            layout_json(image)?.into(),
            Value::Bytes(image.thumbnail.clone().unwrap_or_default().into()),
        ];
        args.extend(image.faces.iter().map(|e| Value::Bytes(e.to_le_bytes().to_vec().into())));
        {
            let mut guard = self.cursor.lock().await;
            if guard.is_none() {
                let mut fresh = String::new();
                self.reload(&mut fresh).await?;
                *guard = Some(fresh);
            }
            let cursor = guard.as_mut().expect("loaded above");
            args[4] = cursor.as_str().into();
            let reply = self.run(&self.scripts.add_faces, args).await?;
            let mut parts = array(reply)?.into_iter();
            let own_id = parts.next().as_ref().and_then(text).ok_or_else(|| malformed("store"))?;
            let changes = parts.next().ok_or_else(|| malformed("store"))?;
            let (mut more, gap) = self.apply(changes, cursor)?;
            if gap {
                tracing::warn!(
                    "this worker's change-log position is not in the log (trimmed, or lost in a Redis \
                     failover); reloading the face cache from db 3"
                );
                self.reload(cursor).await?;
            } else if !more {
                *cursor = own_id;
            }
            while more {
                let reply =
                    self.run(&self.scripts.changes, vec![self.prefix(), cursor.as_str().into(), BATCH.into()]).await?;
                let (again, gap) = self.apply(reply, cursor)?;
                if gap {
                    self.reload(cursor).await?;
                    break;
                }
                more = again;
            }
            self.faces.write().expect("cache lock").insert(&image.hash, &image.faces);
        }
        // Matching reads every cached face: CPU work, kept off the async executor.
        let (faces, queries, hash) = (self.faces.clone(), image.faces.clone(), image.hash.clone());
        tokio::task::spawn_blocking(move || faces.read().expect("cache lock").matches(&queries, tolerance, Some(&hash)))
            .await
            .map_err(|e| IndexError::Unavailable(format!("matching task failed: {e}")))
    }

    /// The failure path of `add_image`: removes what ADD_FACES stored if COMMIT did not
    /// happen (scripts.rs: ROLLBACK), so no nameless `pending` image stays for later images
    /// to link to. Best effort: when Redis is unreachable the image stays `pending` until
    /// its message is tried again. Returns `error`, the failure that led here.
    async fn roll_back(&self, hash: &ImageHash, error: IndexError) -> IndexError {
        match self.run(&self.scripts.rollback, vec![self.prefix(), hash.as_str().into()]).await {
            Ok(n) if n.as_i64() == Some(1) => {
                tracing::info!(%hash, %error, "image not committed; its stored faces were rolled back");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(%hash, %error, rollback = %e, "image not committed and not rolled back"),
        }
        error
    }

    async fn wait_for_replicas(&self) -> Result<(), IndexError> {
        if self.settings.wait_replicas == 0 {
            return Ok(());
        }
        let want = i64::from(self.settings.wait_replicas);
        let timeout_ms = self.settings.command_timeout.as_millis() as i64;
        let acked: i64 = self
            .client
            .custom(fred::cmd!("WAIT"), vec![Value::from(want), Value::from(timeout_ms)])
            .await
            .map_err(classify)?;
        if acked < want {
            return Err(IndexError::Unavailable(format!("only {acked} of {want} replicas acknowledged the write")));
        }
        Ok(())
    }
}

#[async_trait]
impl FaceIndex for RedisIndex {
    async fn is_known(&self, hash: &ImageHash) -> Result<bool, IndexError> {
        let n = self.run(&self.scripts.is_known, vec![self.prefix(), hash.as_str().into()]).await?;
        Ok(n.as_i64() == Some(1))
    }

    async fn add_name(&self, hash: &ImageHash, name: &str) -> Result<(), IndexError> {
        self.run(&self.scripts.add_name, vec![self.prefix(), hash.as_str().into(), name.into()]).await?;
        self.wait_for_replicas().await
    }

    async fn add_image(&self, image: &NewImage, tolerance: f64) -> Result<Vec<ImageMatch>, IndexError> {
        let mut matches = match self.store_and_compare(image, tolerance).await {
            Ok(matches) => matches,
            Err(e) => return Err(self.roll_back(&image.hash, e).await),
        };
        let mut args: Vec<Value> = vec![self.prefix(), image.hash.as_str().into(), image.name.as_str().into()];
        for m in &matches {
            args.push(m.hash.as_str().into());
            // Shortest text that reads back as the same f64.
            args.push(format!("{:?}", m.distance).into());
        }
        let left_out = match self.run(&self.scripts.commit, args).await {
            Ok(reply) => array(reply)?,
            Err(e) => return Err(self.roll_back(&image.hash, e).await),
        };
        for pair in left_out.chunks_exact(2) {
            let (other, why) = (text(&pair[0]).unwrap_or_default(), text(&pair[1]).unwrap_or_default());
            tracing::warn!(hash = %image.hash, other = %other, reason = %why, "matching image not linked");
            matches.retain(|m| m.hash.as_str() != other);
        }
        self.wait_for_replicas().await?;
        Ok(matches)
    }

    async fn image(&self, hash: &ImageHash) -> Result<Option<ImageRecord>, IndexError> {
        let reply = self.run(&self.scripts.image, vec![self.prefix(), hash.as_str().into()]).await?;
        let mut parts = array(reply)?.into_iter();
        let mut next = || parts.next().ok_or_else(|| malformed("image"));
        let names: BTreeSet<String> = array(next()?)?.iter().filter_map(text).collect();
        let faces: Vec<Encoding> = array(next()?)?.iter().filter_map(|v| Encoding::from_le_bytes(bytes(v)?)).collect();
        let matched: Vec<String> = array(next()?)?.iter().filter_map(text).collect();
        let flat: Vec<String> = array(next()?)?.iter().filter_map(text).collect();
        let fingerprint = text(&next()?);
        let layout = text(&next()?).and_then(|json| match serde_json::from_str::<ImageLayout>(&json) {
            Ok(layout) => Some(layout),
            Err(e) => {
                // Written by another program: the faces stand without their boxes.
                tracing::warn!(%hash, error = %e, "stored layout is not valid JSON of the schema; ignored");
                None
            }
        });
        let thumbnail = next()?.as_i64() == Some(1);
        if names.is_empty() && faces.is_empty() && matched.is_empty() {
            return Ok(None);
        }
        let distances: HashMap<&str, f64> =
            flat.chunks_exact(2).filter_map(|kv| Some((kv[0].as_str(), kv[1].parse().ok()?))).collect();
        let mut matches: Vec<ImageMatch> = matched
            .iter()
            .filter_map(|h| {
                let hash = ImageHash::parse(h).ok()?;
                // Images matched by another program have no distance: NaN says "unknown".
                Some(ImageMatch { distance: distances.get(h.as_str()).copied().unwrap_or(f64::NAN), hash })
            })
            .collect();
        matches.sort_by(|a, b| a.distance.total_cmp(&b.distance).then_with(|| a.hash.cmp(&b.hash)));
        Ok(Some(ImageRecord { hash: hash.clone(), names, faces, matches, fingerprint, layout, thumbnail }))
    }

    async fn thumbnail(&self, hash: &ImageHash) -> Result<Option<Vec<u8>>, IndexError> {
        let reply = self.run(&self.scripts.thumbnail, vec![self.prefix(), hash.as_str().into()]).await?;
        Ok(bytes(&reply).map(<[u8]>::to_vec))
    }

    async fn match_names(&self, hash: &ImageHash) -> Result<BTreeSet<String>, IndexError> {
        let reply = self.run(&self.scripts.match_names, vec![self.prefix(), hash.as_str().into()]).await?;
        Ok(array(reply)?.iter().filter_map(text).collect())
    }

    async fn hash_of(&self, name: &str) -> Result<Option<ImageHash>, IndexError> {
        let reply = self.run(&self.scripts.hash_of, vec![self.prefix(), name.into()]).await?;
        Ok(text(&reply).and_then(|h| ImageHash::parse(&h).ok()))
    }

    async fn record_failure(&self, hash: &ImageHash, reason: &str) -> Result<(), IndexError> {
        self.put_failure(hash, reason).await
    }

    async fn failure(&self, hash: &ImageHash) -> Result<Option<ImageFailure>, IndexError> {
        self.get_failure(hash).await
    }

    async fn recent(&self, limit: usize, cursor: Option<String>) -> Result<crate::ports::ImagePage, IndexError> {
        self.recent_images(limit, cursor.as_deref()).await
    }

    async fn forget(&self, hashes: &[ImageHash]) -> Result<Forgotten, IndexError> {
        self.forget_images(hashes).await
    }

    async fn find_faces(&self, faces: &[Encoding], tolerance: f64) -> Result<Vec<ImageMatch>, IndexError> {
        self.find_cached(faces, tolerance).await
    }

    async fn ping(&self) -> Result<(), IndexError> {
        if !self.client.is_connected() {
            return Err(IndexError::Unavailable("not connected to Redis".into()));
        }
        // Bounded by the client's command timeout: a frozen server fails the probe too.
        self.client.custom::<Value, Value>(fred::cmd!("PING"), Vec::new()).await.map_err(unavailable)?;
        Ok(())
    }
}

/// The layout of `image` as stored (`facerec:layout:<hash>`), or "" for none.
fn layout_json(image: &NewImage) -> Result<String, IndexError> {
    image.layout().map_or(Ok(String::new()), |layout| {
        serde_json::to_string(&layout).map_err(|e| IndexError::Rejected(format!("layout: {e}")))
    })
}

fn array(v: Value) -> Result<Vec<Value>, IndexError> {
    match v {
        Value::Array(items) => Ok(items),
        Value::Null => Ok(Vec::new()),
        other => Err(malformed(&format!("expected an array, got {:?}", other.kind()))),
    }
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::Bytes(b) => Some(b),
        Value::String(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Integer(i) => Some(i.to_string()),
        other => bytes(other).map(|b| String::from_utf8_lossy(b).into_owned()),
    }
}

fn malformed(what: &str) -> IndexError {
    IndexError::Unavailable(format!("unexpected reply from Redis ({what})"))
}

fn unavailable(e: fred::error::Error) -> IndexError {
    IndexError::Unavailable(e.to_string())
}

/// Connection trouble and timeouts may pass; a WRONGTYPE (another program wrote a key of
/// another type where the schema needs a set) will not.
fn classify(e: fred::error::Error) -> IndexError {
    if e.details().contains("WRONGTYPE") {
        IndexError::Rejected(e.to_string())
    } else {
        IndexError::Unavailable(e.to_string())
    }
}
