//! Erasing images from Redis ([`FaceIndex::forget`](crate::ports::FaceIndex::forget)) and
//! keeping the face cache in step with erasures other processes made.
//!
//! The change log's entries name an image; its faces are read from db 3 when the entry is
//! read. An entry whose image has no faces in db 3 any more (an erase, logged as
//! `op=forget`) therefore removes the image from the cache: the cache always ends up
//! equal to db 3 for every image the log names.

use super::{RedisIndex, array, bytes, maintenance_scripts, malformed, text};
use crate::face::Encoding;
use crate::fsck::{Fix, Snapshot};
use crate::hash::ImageHash;
use crate::matching::FaceSet;
use crate::ports::{ErasedImage, Forgotten, ImageMatch, IndexError};
use fred::prelude::*;
use fred::types::scripts::Script;

/// Applies `hash, {encodings}` pairs (a load page or change-log entries) to the cache:
/// faces are added, and an image with none left in db 3 is dropped. Returns how many values
/// were not encodings.
pub(super) fn apply_changes(faces: &mut FaceSet, mut items: impl Iterator<Item = Value>) -> Result<usize, IndexError> {
    let mut skipped = 0;
    while let Some(hash) = items.next() {
        let encodings = array(items.next().ok_or_else(|| malformed("hash without encodings"))?)?;
        let Some(hash) = text(&hash).and_then(|h| ImageHash::parse(&h).ok()) else {
            skipped += encodings.len();
            continue;
        };
        let parsed: Vec<Encoding> = encodings.iter().filter_map(|v| Encoding::from_le_bytes(bytes(v)?)).collect();
        skipped += encodings.len() - parsed.len();
        if parsed.is_empty() {
            faces.remove(&hash);
        } else {
            faces.insert(&hash, &parsed);
        }
    }
    Ok(skipped)
}

impl RedisIndex {
    /// Erases images in one atomic script, then drops them from this process's cache
    /// (other processes drop them when they read the log entry).
    pub(super) async fn forget_images(&self, hashes: &[ImageHash]) -> Result<Forgotten, IndexError> {
        let mut out = Forgotten::default();
        if hashes.is_empty() {
            return Ok(out);
        }
        let mut args: Vec<Value> = vec![self.prefix(), self.settings.log_max_len.to_string().into()];
        args.extend(hashes.iter().map(|h| Value::from(h.as_str())));
        let reply = self.run(&Script::from_lua(maintenance_scripts::FORGET), args).await?;
        for item in array(reply)? {
            let mut parts = array(item)?.into_iter();
            let mut next = || parts.next().ok_or_else(|| malformed("forget"));
            let hash = text(&next()?).and_then(|h| ImageHash::parse(&h).ok()).ok_or_else(|| malformed("forget"))?;
            let found = next()?.as_i64() == Some(1);
            let names = array(next()?)?.iter().filter_map(text).collect();
            let faces = next()?.as_i64().unwrap_or(0) as usize;
            let matches = next()?.as_i64().unwrap_or(0) as usize;
            if found {
                out.erased.push(ErasedImage { hash, names, faces, matches });
            } else if !out.erased.iter().any(|e| e.hash == hash) && !out.unknown.contains(&hash) {
                out.unknown.push(hash);
            }
        }
        {
            let mut cache = self.faces.write().expect("cache lock");
            for erased in &out.erased {
                cache.remove(&erased.hash);
            }
        }
        self.wait_for_replicas().await?;
        Ok(out)
    }

    /// Brings the cache up to date with the change log (loading it first if needed).
    pub(super) async fn sync_cache(&self) -> Result<(), IndexError> {
        let mut guard = self.cursor.lock().await;
        let Some(cursor) = guard.as_mut() else {
            let mut fresh = String::new();
            self.reload(&mut fresh).await?;
            *guard = Some(fresh);
            return Ok(());
        };
        loop {
            let reply =
                self.run(&self.scripts.changes, vec![self.prefix(), cursor.as_str().into(), 2000.into()]).await?;
            let (more, gap) = self.apply(reply, cursor)?;
            if gap {
                return self.reload(cursor).await;
            }
            if !more {
                return Ok(());
            }
        }
    }

    /// Images with a face within `tolerance` of any of `faces`, from the synced cache.
    pub(super) async fn find_cached(&self, faces: &[Encoding], tolerance: f64) -> Result<Vec<ImageMatch>, IndexError> {
        self.sync_cache().await?;
        let (cache, queries) = (self.faces.clone(), faces.to_vec());
        tokio::task::spawn_blocking(move || cache.read().expect("cache lock").matches(&queries, tolerance, None))
            .await
            .map_err(|e| IndexError::Unavailable(format!("matching task failed: {e}")))
    }
}

impl RedisIndex {
    /// Reads databases 0-4 under the prefix, page by page (SCAN: the server is not blocked).
    ///
    /// # Errors
    /// [`IndexError::Unavailable`] when Redis fails.
    pub async fn snapshot(&self) -> Result<Snapshot, IndexError> {
        let mut s = Snapshot::default();
        let passes = [(0i64, "image"), (0, "layout"), (0, "thumb"), (1, ""), (2, ""), (3, ""), (4, "")];
        for (db, kind) in passes {
            self.pages(db, kind, |key, value| {
                match (db, kind) {
                    (0, "layout") => drop(s.layouts.insert(key, text(&value).unwrap_or_default())),
                    (0, "thumb") => drop(s.thumbnails.insert(key)),
                    (0, _) => drop(s.records.insert(key, text(&value).and_then(|v| v.parse().ok()))),
                    (1, _) => drop(s.names.insert(key, text(&value).unwrap_or_default())),
                    (2, _) => drop(s.images.insert(key, array(value)?.iter().filter_map(text).collect())),
                    (3, _) => drop(
                        s.faces.insert(key, array(value)?.iter().filter_map(|v| Some(bytes(v)?.to_vec())).collect()),
                    ),
                    _ => drop(s.links.insert(key, array(value)?.iter().filter_map(text).collect())),
                }
                Ok(())
            })
            .await?;
        }
        Ok(s)
    }

    /// Applies fsck's fixes, 1,000 per script call.
    ///
    /// # Errors
    /// [`IndexError::Unavailable`] when Redis fails (fixes already applied stay).
    pub async fn apply_fixes(&self, fixes: &[Fix]) -> Result<(), IndexError> {
        let script = Script::from_lua(maintenance_scripts::FIX);
        for part in fixes.chunks(1000) {
            let mut args = vec![self.prefix()];
            for fix in part {
                let (op, a, b) = match fix {
                    Fix::DeleteName(n) => ("delname", n, "-"),
                    Fix::SetName(n, h) => ("setname", n, h.as_str()),
                    Fix::Link(a, b) => ("link", a, b.as_str()),
                    Fix::Unlink(a, b) => ("unlink", a, b.as_str()),
                    Fix::DeleteRecord(h) => ("delrecord", h, "-"),
                    Fix::DeleteLayout(h) => ("dellayout", h, "-"),
                    Fix::DeleteThumbnail(h) => ("delthumb", h, "-"),
                };
                args.extend([Value::from(op), Value::from(a.as_str()), Value::from(b)]);
            }
            self.run(&script, args).await?;
        }
        self.wait_for_replicas().await
    }
}
