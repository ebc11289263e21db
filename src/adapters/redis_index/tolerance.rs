//! The tolerance side of the Redis index: reading what a reindex needs (db 3, db 4, the
//! distances), writing its changes in batches, the recorded tolerance
//! (`facerec:tolerance`) and the registry of running workers (`facerec:workers`), through
//! which `facerec reindex` finds workers that would keep linking at another tolerance.
//!
//! Registry: each worker writes `host -> {"tolerance":T,"expires":E}` every
//! [`HEARTBEAT`], `E` being Redis's clock plus [`REGISTRATION_LIFETIME`]; an entry past
//! `E` belongs to a worker that died without a clean stop and is ignored (and dropped at
//! the next registration). A clean stop removes the entry.

use super::{RedisIndex, array, bytes, maintenance_scripts, malformed, text};
use crate::face::Encoding;
use crate::ports::IndexError;
use crate::reindex::{Change, Stored, distance_text};
use fred::prelude::*;
use fred::types::scripts::Script;
use std::collections::BTreeMap;
use std::time::Duration;

/// How often a running worker refreshes its registry entry.
pub const HEARTBEAT: Duration = Duration::from_secs(10);

/// How long an entry counts after its last refresh (three heartbeats).
pub const REGISTRATION_LIFETIME: Duration = Duration::from_secs(30);

/// Images written per script call by [`RedisIndex::write_reindex`].
pub const WRITE_BATCH: usize = 1000;

/// A worker that refreshed its registry entry within [`REGISTRATION_LIFETIME`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RegisteredWorker {
    /// Its host name (`FACEREC_HOSTNAME`).
    pub host: String,
    /// The tolerance it links new images at.
    pub tolerance: f64,
}

/// What [`RedisIndex::write_reindex`] could not write.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct WriteReport {
    /// Keys of another type than the schema's (another program's), left alone.
    pub foreign_keys: Vec<String>,
    /// Links and distances not written because an image was erased meanwhile.
    pub erased_meanwhile: usize,
}

#[derive(serde::Deserialize)]
struct Registration {
    tolerance: f64,
    expires: i64,
}

fn parse_tolerance(v: &Value) -> Option<f64> {
    text(v)?.parse().ok().filter(|t: &f64| t.is_finite())
}

impl RedisIndex {
    /// The tolerance db 4 was last built with by `facerec reindex`, if recorded.
    ///
    /// # Errors
    /// [`IndexError::Unavailable`] when Redis fails.
    pub async fn recorded_tolerance(&self) -> Result<Option<f64>, IndexError> {
        let reply = self.run(&Script::from_lua(maintenance_scripts::RECORDED_TOLERANCE), vec![self.prefix()]).await?;
        Ok(parse_tolerance(&reply))
    }

    /// Registers (or refreshes) this worker as running at `tolerance`; returns the
    /// recorded tolerance, so the worker can say when they differ.
    ///
    /// # Errors
    /// [`IndexError::Unavailable`] when Redis fails; [`IndexError::Rejected`] when the
    /// registry key is of another type.
    pub async fn register_worker(&self, host: &str, tolerance: f64) -> Result<Option<f64>, IndexError> {
        let args = vec![
            self.prefix(),
            host.into(),
            distance_text(tolerance).into(),
            REGISTRATION_LIFETIME.as_secs().to_string().into(),
        ];
        let reply = self.run(&Script::from_lua(maintenance_scripts::REGISTER_WORKER), args).await?;
        Ok(parse_tolerance(&reply))
    }

    /// Removes this worker's registry entry (a clean stop).
    ///
    /// # Errors
    /// [`IndexError::Unavailable`] when Redis fails.
    pub async fn unregister_worker(&self, host: &str) -> Result<(), IndexError> {
        self.run(&Script::from_lua(maintenance_scripts::UNREGISTER_WORKER), vec![self.prefix(), host.into()]).await?;
        Ok(())
    }

    /// The workers whose registry entry has not expired, by host name.
    ///
    /// # Errors
    /// [`IndexError::Unavailable`] when Redis fails.
    pub async fn workers(&self) -> Result<Vec<RegisteredWorker>, IndexError> {
        let reply = self.run(&Script::from_lua(maintenance_scripts::WORKERS), vec![self.prefix()]).await?;
        let mut items = array(reply)?.into_iter();
        let now: i64 =
            items.next().as_ref().and_then(text).and_then(|t| t.parse().ok()).ok_or_else(|| malformed("workers"))?;
        let mut out = Vec::new();
        while let (Some(host), Some(entry)) = (items.next(), items.next()) {
            let (Some(host), Some(entry)) = (text(&host), text(&entry)) else { continue };
            match serde_json::from_str::<Registration>(&entry) {
                Ok(r) if r.expires >= now => out.push(RegisteredWorker { host, tolerance: r.tolerance }),
                Ok(_) => {}
                Err(e) => tracing::warn!(%host, error = %e, "worker registry entry is not the schema's JSON; ignored"),
            }
        }
        out.sort_by(|a, b| a.host.cmp(&b.host));
        Ok(out)
    }

    /// db 4 and the distances (`facerec:dist:*`), page by page; no faces.
    ///
    /// # Errors
    /// [`IndexError::Unavailable`] when Redis fails.
    pub async fn stored_links(&self) -> Result<Stored, IndexError> {
        let mut stored = Stored::default();
        self.pages(4, "", |key, value| {
            stored.links.insert(key, array(value)?.iter().filter_map(text).collect());
            Ok(())
        })
        .await?;
        self.pages(0, "dist", |key, value| {
            let flat: Vec<String> = array(value)?.iter().filter_map(text).collect();
            let fields = flat.chunks_exact(2).map(|kv| (kv[0].clone(), kv[1].clone())).collect();
            stored.distances.insert(key, fields);
            Ok(())
        })
        .await?;
        Ok(stored)
    }

    /// db 3: every image's valid encodings (1024 bytes of finite floats; others skipped,
    /// as the matching cache skips them).
    ///
    /// # Errors
    /// [`IndexError::Unavailable`] when Redis fails.
    pub async fn stored_faces(&self) -> Result<BTreeMap<String, Vec<Encoding>>, IndexError> {
        let mut faces = BTreeMap::new();
        self.pages(3, "", |key, value| {
            let parsed: Vec<Encoding> = array(value)?.iter().filter_map(|v| crate::fsck::valid(bytes(v)?)).collect();
            if !parsed.is_empty() {
                faces.insert(key, parsed);
            }
            Ok(())
        })
        .await?;
        Ok(faces)
    }

    /// Calls `each(key, value)` for every key of one kind (`SNAPSHOT_PAGE`), SCAN page by
    /// page, so the server is never blocked for long.
    pub(super) async fn pages(
        &self,
        db: i64,
        kind: &str,
        mut each: impl FnMut(String, Value) -> Result<(), IndexError>,
    ) -> Result<(), IndexError> {
        let script = Script::from_lua(maintenance_scripts::SNAPSHOT_PAGE);
        let mut cursor = "0".to_owned();
        loop {
            let args = vec![self.prefix(), db.into(), cursor.as_str().into(), 1000.into(), kind.into()];
            let mut items = array(self.run(&script, args).await?)?.into_iter();
            cursor = items.next().as_ref().and_then(text).ok_or_else(|| malformed("snapshot"))?;
            while let (Some(key), Some(value)) = (items.next(), items.next()) {
                if let Some(key) = text(&key) {
                    each(key, value)?;
                }
            }
            if cursor == "0" {
                return Ok(());
            }
        }
    }

    /// Writes a reindex's changes, [`WRITE_BATCH`] images per script call, and records
    /// `tolerance` in the script of the last batch (so the recorded value never claims
    /// a db 4 that is not fully written). With no change, only the tolerance is written.
    ///
    /// # Errors
    /// [`IndexError::Unavailable`] when Redis fails: batches already written stay, the
    /// old tolerance stays recorded, and running the reindex again finishes the job.
    pub async fn write_reindex(&self, changes: &[Change], tolerance: f64) -> Result<WriteReport, IndexError> {
        let script = Script::from_lua(maintenance_scripts::REINDEX_WRITE);
        let mut report = WriteReport::default();
        let batches: Vec<&[Change]> =
            if changes.is_empty() { vec![&[]] } else { changes.chunks(WRITE_BATCH).collect() };
        let last = batches.len() - 1;
        for (i, batch) in batches.into_iter().enumerate() {
            let record = if i == last { distance_text(tolerance) } else { String::new() };
            let mut args = vec![self.prefix(), record.into()];
            for c in batch {
                let h = c.hash.as_str();
                let mut op = |op: &str, b: &str, v: &str| args.extend([op.into(), h.into(), b.into(), v.into()]);
                c.link.iter().for_each(|b| op("link", b, "-"));
                c.unlink.iter().for_each(|b| op("unlink", b, "-"));
                c.set.iter().for_each(|(b, d)| op("dist", b, d));
                c.unset.iter().for_each(|b| op("undist", b, "-"));
            }
            let mut reply = array(self.run(&script, args).await?)?.into_iter();
            report
                .foreign_keys
                .extend(array(reply.next().ok_or_else(|| malformed("reindex"))?)?.iter().filter_map(text));
            report.erased_meanwhile += reply.next().and_then(|v| v.as_i64()).unwrap_or(0) as usize;
        }
        self.wait_for_replicas().await?;
        Ok(report)
    }
}
