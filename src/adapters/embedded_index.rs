//! The embedded [`FaceIndex`]: the four databases in memory, optionally persisted to an
//! append-only journal file. What `facerec scan` and in-memory replay use: no servers.
//!
//! Journal: a header line, then one framed record per completed write
//! (`u32 length, u32 crc32, bincode payload`), fsynced before the call returns, so an
//! acknowledged image survives a crash. A torn last record (a crash mid-write) is cut
//! off when the file is opened. An erase rewrites the journal from the remaining state
//! (a new file renamed over the old one, whose bytes are then overwritten with zeros), so
//! no record of an erased image stays in it.
//!
//! Format v2 (`facerec-index v2`) adds a record kind that carries the image's layout and
//! thumbnail with its faces (one record: one atomic write). v1 files load as they are and
//! are rewritten as v2 when opened, so a v1 reader never meets a record it cannot read
//! (it would cut it off as a torn tail).

use crate::face::{BoundingBox, Encoding};
use crate::hash::ImageHash;
use crate::matching::FaceSet;
use crate::ports::{
    ErasedImage, FaceBox, FaceIndex, Forgotten, ImageFailure, ImageLayout, ImageMatch, ImagePage, ImageRecord,
    IndexError, NewImage,
};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

const MAGIC: &[u8] = b"facerec-index v2\n";
/// The header of files written before layouts and thumbnails (same length as [`MAGIC`]).
const MAGIC_V1: &[u8] = b"facerec-index v1\n";

/// One image's entry: present only once the image was completely added.
#[derive(Debug, Clone, Default)]
struct Entry {
    names: BTreeSet<String>,
    faces: Vec<Encoding>,
    matches: BTreeMap<ImageHash, f64>,
    fingerprint: Option<String>,
    layout: Option<ImageLayout>,
    thumbnail: Option<Vec<u8>>,
}

#[derive(Default)]
struct State {
    name_to_hash: HashMap<String, ImageHash>,
    images: HashMap<ImageHash, Entry>,
    faces: FaceSet,
    /// Dead-lettered images (in memory only: not journaled, the journal format stays v1).
    failures: HashMap<ImageHash, ImageFailure>,
    /// Images in the order they were first stored (erased ones are skipped on reading).
    order: Vec<ImageHash>,
}

/// A journal record: exactly one completed index write. New kinds go at the end (bincode
/// numbers them by position).
#[derive(Debug, Serialize, Deserialize)]
enum Record {
    /// v1: an image without layout or thumbnail (read only; v2 writes `Shown`).
    Image {
        hash: ImageHash,
        name: String,
        faces: Vec<Encoding>,
        fingerprint: String,
        matches: Vec<ImageMatch>,
    },
    Name {
        hash: ImageHash,
        name: String,
    },
    /// v2: an image with its layout and thumbnail.
    Shown {
        hash: ImageHash,
        name: String,
        faces: Vec<Encoding>,
        fingerprint: String,
        matches: Vec<ImageMatch>,
        layout: Option<StoredLayout>,
        thumbnail: Option<Vec<u8>>,
    },
}

/// [`ImageLayout`] as journaled: plain fields (bincode cannot encode its flattened boxes).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredLayout {
    width: u32,
    height: u32,
    faces: Vec<(BoundingBox, String)>,
}

impl From<&ImageLayout> for StoredLayout {
    fn from(l: &ImageLayout) -> Self {
        Self { width: l.width, height: l.height, faces: l.faces.iter().map(|f| (f.bbox, f.id.clone())).collect() }
    }
}

impl From<StoredLayout> for ImageLayout {
    fn from(l: StoredLayout) -> Self {
        let faces = l.faces.into_iter().map(|(bbox, id)| FaceBox { bbox, id }).collect();
        Self { width: l.width, height: l.height, faces }
    }
}

/// The index, in memory, with an optional journal.
pub struct EmbeddedIndex {
    state: RwLock<State>,
    journal: Option<Mutex<Journal>>,
}

struct Journal {
    file: File,
    path: PathBuf,
}

/// Errors opening a journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file could not be read or written.
    #[error("index file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not a facerec index.
    #[error("{0} is not a facerec index file (wrong header)")]
    NotAnIndex(PathBuf),
}

impl Default for EmbeddedIndex {
    fn default() -> Self {
        Self::in_memory()
    }
}

impl EmbeddedIndex {
    /// An empty index that lives as long as the process.
    pub fn in_memory() -> Self {
        Self { state: RwLock::new(State::default()), journal: None }
    }

    /// Opens (or creates) a journal file and replays it.
    ///
    /// # Errors
    /// The file cannot be read or written, or is not an index file.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let io = |source| JournalError::Io { path: path.to_owned(), source };
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io)?;
        let mut state = State::default();
        if file.metadata().map_err(io)?.len() == 0 {
            file.write_all(MAGIC).map_err(io)?;
            file.sync_all().map_err(io)?;
        } else {
            let (valid_end, version) = replay(&mut file, path, &mut state)?;
            if valid_end < file.metadata().map_err(io)?.len() {
                tracing::warn!(path = %path.display(), offset = valid_end, "cutting off a torn last record");
                file.set_len(valid_end).map_err(io)?;
            }
            if version == 1 {
                file.seek(SeekFrom::End(0)).map_err(io)?;
                let mut journal = Journal { file, path: path.to_owned() };
                journal.rewrite(&state).map_err(io)?;
                tracing::info!(path = %path.display(), "index file upgraded to format v2");
                file = journal.file;
            }
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok(Self { state: RwLock::new(state), journal: Some(Mutex::new(Journal { file, path: path.to_owned() })) })
    }

    /// Every complete image, sorted by hash.
    pub fn records(&self) -> Vec<ImageRecord> {
        let state = self.state.read().expect("index lock poisoned");
        let mut out: Vec<ImageRecord> = state.images.iter().map(|(h, e)| record(h, e)).collect();
        out.sort_by(|a, b| a.hash.cmp(&b.hash));
        out
    }

    /// Number of faces held.
    pub fn face_count(&self) -> usize {
        self.state.read().expect("index lock poisoned").faces.faces()
    }

    fn append(&self, record: &Record) -> Result<(), IndexError> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let mut journal = journal.lock().expect("journal lock poisoned");
        let frame = frame(record).map_err(|e| IndexError::Rejected(e.to_string()))?;
        let path = journal.path.display().to_string();
        journal
            .file
            .write_all(&frame)
            .and_then(|()| journal.file.sync_data())
            .map_err(|e| IndexError::Unavailable(format!("writing {path}: {e}")))
    }
}

impl Journal {
    /// Replaces the journal with records that rebuild `state`: written to a new file,
    /// fsynced, renamed over the old one; then the old file's bytes, still open here, are
    /// overwritten with zeros, so erased data does not linger in its blocks (on file
    /// systems that write in place).
    fn rewrite(&mut self, state: &State) -> std::io::Result<()> {
        let tmp = self.path.with_extension("rewrite");
        let mut out = std::io::BufWriter::new(File::create(&tmp)?);
        out.write_all(MAGIC)?;
        // In store order, so `recent` pages the same after the rewrite; then any image the
        // order misses (name records only).
        let mut seen = std::collections::HashSet::new();
        let mut hashes: Vec<&ImageHash> =
            state.order.iter().filter(|h| state.images.contains_key(*h) && seen.insert(*h)).collect();
        let mut rest: Vec<&ImageHash> = state.images.keys().filter(|h| !seen.contains(h)).collect();
        rest.sort();
        hashes.extend(rest);
        for hash in hashes {
            let entry = &state.images[hash];
            let mut names = entry.names.iter();
            // An entry without a fingerprint only ever came from name records.
            if let (Some(fingerprint), Some(first)) = (&entry.fingerprint, names.next()) {
                let matches = entry.matches.iter().map(|(h, d)| ImageMatch { hash: h.clone(), distance: *d }).collect();
                out.write_all(&frame(&Record::Shown {
                    hash: hash.clone(),
                    name: first.clone(),
                    faces: entry.faces.clone(),
                    fingerprint: fingerprint.clone(),
                    matches,
                    layout: entry.layout.as_ref().map(StoredLayout::from),
                    thumbnail: entry.thumbnail.clone(),
                })?)?;
            }
            for name in names.filter(|n| state.name_to_hash.get(*n) == Some(hash)) {
                out.write_all(&frame(&Record::Name { hash: hash.clone(), name: name.clone() })?)?;
            }
        }
        let file = out.into_inner().map_err(std::io::IntoInnerError::into_error)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        let mut old = std::mem::replace(&mut self.file, OpenOptions::new().append(true).open(&self.path)?);
        let len = old.metadata()?.len();
        // The old handle is in append mode; a fresh write handle on the unlinked inode is
        // not reachable by path any more, so zero it through positioned writes.
        zero_file(&mut old, len)?;
        Ok(())
    }
}

#[cfg(unix)]
fn zero_file(file: &mut File, len: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt as _;
    let zeros = vec![0u8; 1 << 16];
    let mut at = 0;
    while at < len {
        let n = (len - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    file.sync_all()
}

#[cfg(not(unix))]
fn zero_file(_: &mut File, _: u64) -> std::io::Result<()> {
    Ok(())
}

/// One framed journal record: `u32 length, u32 crc32, payload`.
fn frame(record: &Record) -> std::io::Result<Vec<u8>> {
    let payload = bincode::serde::encode_to_vec(record, bincode::config::standard())
        .map_err(|e| std::io::Error::other(format!("cannot encode journal record: {e}")))?;
    let mut frame = Vec::with_capacity(payload.len() + 8);
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// Removes one image from the state; `None` if it was not there.
fn erase(state: &mut State, hash: &ImageHash) -> Option<ErasedImage> {
    state.failures.remove(hash);
    let entry = state.images.remove(hash)?;
    state.faces.remove(hash);
    for other in entry.matches.keys() {
        if let Some(o) = state.images.get_mut(other) {
            o.matches.remove(hash);
        }
    }
    let names: BTreeSet<String> =
        entry.names.iter().filter(|n| state.name_to_hash.get(*n) == Some(hash)).cloned().collect();
    for name in &names {
        state.name_to_hash.remove(name);
    }
    Some(ErasedImage { hash: hash.clone(), names, faces: entry.faces.len(), matches: entry.matches.len() })
}

fn record(hash: &ImageHash, e: &Entry) -> ImageRecord {
    let mut matches: Vec<ImageMatch> =
        e.matches.iter().map(|(h, d)| ImageMatch { hash: h.clone(), distance: *d }).collect();
    matches.sort_by(|a, b| a.distance.total_cmp(&b.distance).then_with(|| a.hash.cmp(&b.hash)));
    ImageRecord {
        hash: hash.clone(),
        names: e.names.clone(),
        faces: e.faces.clone(),
        matches,
        fingerprint: e.fingerprint.clone(),
        layout: e.layout.clone(),
        thumbnail: e.thumbnail.is_some(),
    }
}

/// Reads every valid record into `state`; returns the offset just past the last one and
/// the file's format version.
fn replay(file: &mut File, path: &Path, state: &mut State) -> Result<(u64, u8), JournalError> {
    let io = |source| JournalError::Io { path: path.to_owned(), source };
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut reader = BufReader::new(&mut *file);
    let mut magic = vec![0u8; MAGIC.len()];
    let version = match reader.read_exact(&mut magic) {
        Ok(()) if magic == MAGIC => 2,
        Ok(()) if magic == MAGIC_V1 => 1,
        _ => return Err(JournalError::NotAnIndex(path.to_owned())),
    };
    let mut offset = MAGIC.len() as u64;
    loop {
        let mut head = [0u8; 8];
        if reader.read_exact(&mut head).is_err() {
            return Ok((offset, version));
        }
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        let mut payload = vec![0u8; len];
        if reader.read_exact(&mut payload).is_err() || crc32fast::hash(&payload) != crc {
            return Ok((offset, version));
        }
        let Ok((record, _)) = bincode::serde::decode_from_slice::<Record, _>(&payload, bincode::config::standard())
        else {
            return Ok((offset, version));
        };
        apply(state, record);
        offset += 8 + len as u64;
    }
}

fn apply(state: &mut State, record: Record) {
    match record {
        Record::Image { hash, name, faces, fingerprint, matches } => {
            let record = Record::Shown { hash, name, faces, fingerprint, matches, layout: None, thumbnail: None };
            apply(state, record);
        }
        Record::Shown { hash, name, faces, fingerprint, matches, layout, thumbnail } => {
            state.faces.insert(&hash, &faces);
            for m in &matches {
                if let Some(other) = state.images.get_mut(&m.hash) {
                    other.matches.insert(hash.clone(), m.distance);
                }
            }
            if !state.images.contains_key(&hash) {
                state.order.push(hash.clone());
            }
            let entry = state.images.entry(hash.clone()).or_default();
            entry.faces = faces;
            entry.fingerprint = Some(fingerprint);
            entry.layout = layout.map(ImageLayout::from);
            entry.thumbnail = thumbnail;
            entry.matches.extend(matches.into_iter().map(|m| (m.hash, m.distance)));
            entry.names.insert(name.clone());
            state.name_to_hash.insert(name, hash);
        }
        Record::Name { hash, name } => {
            state.images.entry(hash.clone()).or_default().names.insert(name.clone());
            state.name_to_hash.insert(name, hash);
        }
    }
}

#[async_trait]
impl FaceIndex for EmbeddedIndex {
    async fn is_known(&self, hash: &ImageHash) -> Result<bool, IndexError> {
        Ok(self.state.read().expect("index lock poisoned").images.contains_key(hash))
    }

    async fn add_name(&self, hash: &ImageHash, name: &str) -> Result<(), IndexError> {
        let mut state = self.state.write().expect("index lock poisoned");
        let record = Record::Name { hash: hash.clone(), name: name.to_owned() };
        self.append(&record)?;
        apply(&mut state, record);
        Ok(())
    }

    async fn add_image(&self, image: &NewImage, tolerance: f64) -> Result<Vec<ImageMatch>, IndexError> {
        let mut state = self.state.write().expect("index lock poisoned");
        // Under one lock, "write first, then compare" and "compare, then write" are the
        // same; compare first so the journal gets the complete record in one append.
        let matches = state.faces.matches(&image.faces, tolerance, Some(&image.hash));
        let record = Record::Shown {
            hash: image.hash.clone(),
            name: image.name.clone(),
            faces: image.faces.clone(),
            fingerprint: image.fingerprint.clone(),
            matches: matches.clone(),
            layout: image.layout().as_ref().map(StoredLayout::from),
            thumbnail: image.thumbnail.clone(),
        };
        self.append(&record)?;
        apply(&mut state, record);
        Ok(matches)
    }

    async fn image(&self, hash: &ImageHash) -> Result<Option<ImageRecord>, IndexError> {
        Ok(self.state.read().expect("index lock poisoned").images.get(hash).map(|e| record(hash, e)))
    }

    async fn thumbnail(&self, hash: &ImageHash) -> Result<Option<Vec<u8>>, IndexError> {
        let state = self.state.read().expect("index lock poisoned");
        Ok(state.images.get(hash).and_then(|e| e.thumbnail.clone()))
    }

    async fn hash_of(&self, name: &str) -> Result<Option<ImageHash>, IndexError> {
        Ok(self.state.read().expect("index lock poisoned").name_to_hash.get(name).cloned())
    }

    async fn record_failure(&self, hash: &ImageHash, reason: &str) -> Result<(), IndexError> {
        let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let failure = ImageFailure { reason: reason.to_owned(), at };
        self.state.write().expect("index lock poisoned").failures.insert(hash.clone(), failure);
        Ok(())
    }

    async fn failure(&self, hash: &ImageHash) -> Result<Option<ImageFailure>, IndexError> {
        Ok(self.state.read().expect("index lock poisoned").failures.get(hash).cloned())
    }

    /// The cursor is a position in the store order.
    async fn recent(&self, limit: usize, cursor: Option<String>) -> Result<ImagePage, IndexError> {
        let state = self.state.read().expect("index lock poisoned");
        let end = match cursor.as_deref() {
            None => state.order.len(),
            Some(c) => c
                .parse::<usize>()
                .ok()
                .filter(|&n| n <= state.order.len())
                .ok_or_else(|| IndexError::Rejected(format!("bad cursor {c:?}")))?,
        };
        let mut page = ImagePage::default();
        let mut at = end;
        while at > 0 && page.hashes.len() < limit {
            at -= 1;
            let hash = &state.order[at];
            if state.images.get(hash).is_some_and(|e| !e.names.is_empty()) && !page.hashes.contains(hash) {
                page.hashes.push(hash.clone());
            }
        }
        page.next = (at > 0).then(|| at.to_string());
        Ok(page)
    }

    async fn forget(&self, hashes: &[ImageHash]) -> Result<Forgotten, IndexError> {
        let mut state = self.state.write().expect("index lock poisoned");
        let mut out = Forgotten::default();
        for hash in hashes {
            match erase(&mut state, hash) {
                Some(erased) => out.erased.push(erased),
                None if !out.erased.iter().any(|e| &e.hash == hash) => out.unknown.push(hash.clone()),
                None => {}
            }
        }
        if let (Some(journal), false) = (&self.journal, out.erased.is_empty()) {
            let mut journal = journal.lock().expect("journal lock poisoned");
            let path = journal.path.display().to_string();
            journal.rewrite(&state).map_err(|e| IndexError::Unavailable(format!("rewriting {path}: {e}")))?;
        }
        Ok(out)
    }

    async fn find_faces(&self, faces: &[Encoding], tolerance: f64) -> Result<Vec<ImageMatch>, IndexError> {
        Ok(self.state.read().expect("index lock poisoned").faces.matches(faces, tolerance, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::ENCODING_DIMS;

    fn enc(x: f64) -> Encoding {
        Encoding([x; ENCODING_DIMS])
    }

    fn h(s: &str) -> ImageHash {
        ImageHash::parse(s).unwrap()
    }

    async fn add(index: &EmbeddedIndex, hash: &str, name: &str, faces: &[Encoding]) -> Vec<ImageMatch> {
        let new = NewImage::bare(h(hash), name, faces.to_vec(), "test");
        index.add_image(&new, 0.6).await.unwrap()
    }

    #[tokio::test]
    async fn journal_survives_reopen_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.facerec");
        {
            let index = EmbeddedIndex::open(&path).unwrap();
            add(&index, "a", "a.jpg", &[enc(0.0)]).await;
            add(&index, "b", "b.jpg", &[enc(0.01)]).await;
            index.add_name(&h("a"), "copy.jpg").await.unwrap();
        }
        // A crash mid-append leaves a partial frame.
        OpenOptions::new().append(true).open(&path).unwrap().write_all(&[9, 0, 0, 0, 1]).unwrap();
        let index = EmbeddedIndex::open(&path).unwrap();
        let a = index.image(&h("a")).await.unwrap().unwrap();
        assert_eq!(a.names, BTreeSet::from(["a.jpg".to_string(), "copy.jpg".to_string()]));
        assert_eq!(a.matches.len(), 1);
        assert_eq!(a.matches[0].hash, h("b"));
        assert_eq!(index.hash_of("copy.jpg").await.unwrap(), Some(h("a")));
        // The torn tail was cut, so new records land after the last good one.
        add(&index, "c", "c.jpg", &[enc(0.5)]).await;
        drop(index);
        let index = EmbeddedIndex::open(&path).unwrap();
        assert_eq!(index.records().len(), 3);
        assert_eq!(index.face_count(), 3);
    }

    #[tokio::test]
    async fn forget_erases_everywhere_and_leaves_no_bytes_of_the_image_in_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.facerec");
        let secret = Encoding([0.123_456_789; ENCODING_DIMS]);
        let index = EmbeddedIndex::open(&path).unwrap();
        add(&index, "a", "secret-name.jpg", &[secret]).await;
        add(&index, "b", "b.jpg", &[Encoding([0.123_456_789 + 0.01; ENCODING_DIMS])]).await;
        index.add_name(&h("a"), "other-secret.jpg").await.unwrap();
        add(&index, "c", "c.jpg", &[enc(0.9)]).await;
        let journal = std::fs::read(&path).unwrap();
        let needle = secret.to_le_bytes();
        assert!(journal.windows(needle.len()).any(|w| w == needle.as_slice()), "the encoding was journaled");

        let out = index.forget(&[h("a"), h("nope")]).await.unwrap();
        assert_eq!(out.unknown, vec![h("nope")]);
        assert_eq!(out.erased.len(), 1);
        assert_eq!(out.erased[0].faces, 1);
        assert_eq!(out.erased[0].matches, 1);
        assert_eq!(out.erased[0].names.len(), 2);
        assert!(index.image(&h("a")).await.unwrap().is_none());
        assert_eq!(index.hash_of("secret-name.jpg").await.unwrap(), None);
        assert!(index.image(&h("b")).await.unwrap().unwrap().matches.is_empty());
        assert!(index.find_faces(&[secret], 0.001).await.unwrap().is_empty());
        // Idempotent.
        assert_eq!(index.forget(&[h("a")]).await.unwrap().unknown, vec![h("a")]);

        let journal = std::fs::read(&path).unwrap();
        for bytes in [needle.as_slice(), b"secret-name.jpg".as_slice(), b"other-secret.jpg".as_slice()] {
            assert!(!journal.windows(bytes.len()).any(|w| w == bytes), "erased bytes left in the journal");
        }
        // Still appendable, and what is left replays to the same state.
        add(&index, "d", "d.jpg", &[enc(0.9)]).await;
        drop(index);
        let index = EmbeddedIndex::open(&path).unwrap();
        let hashes: Vec<String> = index.records().iter().map(|r| r.hash.to_string()).collect();
        assert_eq!(hashes, ["b", "c", "d"]);
        assert_eq!(index.image(&h("d")).await.unwrap().unwrap().matches.len(), 1);
        assert!(!dir.path().join("index.rewrite").exists());
    }

    #[tokio::test]
    async fn a_v1_file_loads_and_is_upgraded_so_older_readers_never_cut_v2_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.facerec");
        let old = Record::Image {
            hash: h("a"),
            name: "a.jpg".into(),
            faces: vec![enc(0.0)],
            fingerprint: "v1".into(),
            matches: vec![],
        };
        std::fs::write(&path, [MAGIC_V1, frame(&old).unwrap().as_slice()].concat()).unwrap();
        let index = EmbeddedIndex::open(&path).unwrap();
        let a = index.image(&h("a")).await.unwrap().unwrap();
        assert_eq!((a.layout, a.thumbnail), (None, false));
        assert!(std::fs::read(&path).unwrap().starts_with(MAGIC), "not upgraded to v2");
        let new = NewImage {
            width: 10,
            height: 8,
            boxes: vec![BoundingBox { top: 1, right: 5, bottom: 6, left: 0 }],
            thumbnail: Some(b"jpeg".to_vec()),
            ..NewImage::bare(h("b"), "b.jpg", vec![enc(0.01)], "v2")
        };
        index.add_image(&new, 0.6).await.unwrap();
        drop(index);
        let index = EmbeddedIndex::open(&path).unwrap();
        assert_eq!(index.image(&h("a")).await.unwrap().unwrap().matches.len(), 1);
        assert_eq!(index.image(&h("b")).await.unwrap().unwrap().layout, new.layout());
        assert_eq!(index.thumbnail(&h("b")).await.unwrap(), Some(b"jpeg".to_vec()));
    }

    #[test]
    fn refuses_a_file_that_is_not_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("photo.jpg");
        std::fs::write(&path, b"\xff\xd8\xff\xe0 not an index").unwrap();
        assert!(matches!(EmbeddedIndex::open(&path), Err(JournalError::NotAnIndex(_))));
    }
}
