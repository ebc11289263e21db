//! Exact face matching over every stored face: the kernel both indexes share.
//!
//! Faces are kept as contiguous f32 rows (512 bytes each), one pass over memory compares
//! all faces of a query image at once, and every candidate within `tolerance + 1e-4` is
//! decided again in f64 so the verdict and the reported distance are exact. An encoding
//! that f32 cannot hold exactly (written by another program) keeps its f64 values on the
//! side, so exactness never depends on where the encoding came from.

use crate::face::{ENCODING_DIMS, Encoding};
use crate::hash::ImageHash;
use crate::ports::ImageMatch;
use std::collections::HashMap;
use std::hash::BuildHasher as _;

/// Margin, in distance units, inside which the f32 screen defers to an f64 decision.
pub const F64_MARGIN: f64 = 1e-4;

type Row = [f32; ENCODING_DIMS];

/// Every stored face of every image, for exact nearest-image queries.
///
/// Memory per face: its 512-byte row, 4 bytes of owner, and per image ~42 bytes for its
/// hash (a SHA-256 hex hash is kept as 32 raw bytes) and its place in the lookup table.
#[derive(Default)]
pub struct FaceSet {
    rows: RowStore,
    /// Image slot of each row.
    owners: Vec<u32>,
    /// f64 values of rows whose encoding is not exactly representable in f32.
    exact: HashMap<u32, Box<[f64; ENCODING_DIMS]>>,
    keys: KeyTable,
}

impl FaceSet {
    /// An empty set with room for `faces` faces' owners (rows grow in 2 MiB chunks).
    pub fn with_capacity(faces: usize) -> Self {
        Self { owners: Vec::with_capacity(faces), ..Self::default() }
    }

    /// Number of faces held.
    pub fn faces(&self) -> usize {
        self.owners.len()
    }

    /// Number of images with at least one face.
    pub fn images(&self) -> usize {
        self.keys.len()
    }

    /// Whether faces of `hash` are held.
    pub fn contains(&self, hash: &ImageHash) -> bool {
        self.keys.find(hash.as_str()).is_some()
    }

    /// Adds the faces of an image. An image already held is left as it is (its faces never
    /// change: they are a function of its bytes), so replaying a log is harmless.
    /// Returns whether anything was added.
    pub fn insert(&mut self, hash: &ImageHash, faces: &[Encoding]) -> bool {
        if faces.is_empty() || self.contains(hash) {
            return false;
        }
        let slot = self.keys.insert(hash.as_str());
        for face in faces {
            let row: Row = std::array::from_fn(|i| face.0[i] as f32);
            let index = u32::try_from(self.owners.len()).expect("more than 2^32 faces");
            if row.iter().zip(face.0.iter()).any(|(r, f)| f64::from(*r) != *f) {
                self.exact.insert(index, Box::new(face.0));
            }
            self.rows.push(row);
            self.owners.push(slot);
        }
        true
    }

    /// Drops every face of an image (erasure). The rows of other images move into the
    /// freed places and the vacated tail rows are zeroed, so no copy of the erased faces
    /// stays in this process's rows. Returns how many faces were dropped.
    pub fn remove(&mut self, hash: &ImageHash) -> usize {
        let Some(slot) = self.keys.find(hash.as_str()) else {
            return 0;
        };
        let mut removed = 0;
        // From the end: the row swapped into place `i` comes from further back, already seen.
        for i in (0..self.owners.len()).rev() {
            if self.owners[i] == slot {
                self.swap_remove_row(i);
                removed += 1;
            }
        }
        if let Some(moved) = self.keys.remove(slot) {
            for owner in self.owners.iter_mut().filter(|o| **o == moved) {
                *owner = slot;
            }
        }
        removed
    }

    fn swap_remove_row(&mut self, i: usize) {
        let last = self.owners.len() - 1;
        self.exact.remove(&(i as u32));
        if i != last {
            let row = self.rows.get(last);
            self.rows.set(i, row);
            self.owners[i] = self.owners[last];
            if let Some(values) = self.exact.remove(&(last as u32)) {
                self.exact.insert(i as u32, values);
            }
        }
        self.rows.pop();
        self.owners.pop();
    }

    /// Every image other than `exclude` with a face within `tolerance` of any of
    /// `queries`, with the smallest such distance, nearest first.
    pub fn matches(&self, queries: &[Encoding], tolerance: f64, exclude: Option<&ImageHash>) -> Vec<ImageMatch> {
        if queries.is_empty() || self.owners.is_empty() {
            return Vec::new();
        }
        let screen = ((tolerance + F64_MARGIN) * (tolerance + F64_MARGIN)) as f32;
        let query_rows: Vec<Row> = queries.iter().map(|q| std::array::from_fn(|i| q.0[i] as f32)).collect();
        let excluded = exclude.and_then(|h| self.keys.find(h.as_str()));
        let mut best: HashMap<u32, f64> = HashMap::new();
        let mut base = 0usize;
        for chunk in self.rows.chunks() {
            kernel::screen(chunk, &query_rows, screen, |row_in_chunk, query_index| {
                let row_index = base + row_in_chunk;
                let slot = self.owners[row_index];
                if Some(slot) == excluded {
                    return;
                }
                let distance = self.exact_distance(row_index, &chunk[row_in_chunk], &queries[query_index]);
                if distance <= tolerance {
                    let entry = best.entry(slot).or_insert(distance);
                    *entry = entry.min(distance);
                }
            });
            base += chunk.len();
        }
        self.ranked(best)
    }

    /// [`FaceSet::matches`] of several images at once, each excluding itself: one pass
    /// over the rows serves every query, so comparing the whole collection with itself
    /// (`reindex`, `fsck`) reads the rows once per batch of images instead of once per
    /// image. Same verdicts and distances as `matches`, one result per image, in order.
    pub fn matches_each(&self, images: &[(&ImageHash, &[Encoding])], tolerance: f64) -> Vec<Vec<ImageMatch>> {
        let screen = ((tolerance + F64_MARGIN) * (tolerance + F64_MARGIN)) as f32;
        let queries: Vec<(usize, &Encoding)> =
            images.iter().enumerate().flat_map(|(i, (_, faces))| faces.iter().map(move |f| (i, f))).collect();
        let query_rows: Vec<Row> = queries.iter().map(|(_, q)| std::array::from_fn(|i| q.0[i] as f32)).collect();
        let excluded: Vec<Option<u32>> = images.iter().map(|(h, _)| self.keys.find(h.as_str())).collect();
        let mut best: Vec<HashMap<u32, f64>> = vec![HashMap::new(); images.len()];
        if queries.is_empty() || self.owners.is_empty() {
            return vec![Vec::new(); images.len()];
        }
        let mut base = 0usize;
        for chunk in self.rows.chunks() {
            kernel::screen(chunk, &query_rows, screen, |row_in_chunk, query_index| {
                let row_index = base + row_in_chunk;
                let (image, query) = queries[query_index];
                let slot = self.owners[row_index];
                if Some(slot) == excluded[image] {
                    return;
                }
                let distance = self.exact_distance(row_index, &chunk[row_in_chunk], query);
                if distance <= tolerance {
                    let entry = best[image].entry(slot).or_insert(distance);
                    *entry = entry.min(distance);
                }
            });
            base += chunk.len();
        }
        best.into_iter().map(|b| self.ranked(b)).collect()
    }

    /// Best distance per image slot -> matches, nearest first.
    fn ranked(&self, best: HashMap<u32, f64>) -> Vec<ImageMatch> {
        let mut out: Vec<ImageMatch> =
            best.into_iter().map(|(slot, distance)| ImageMatch { hash: self.keys.hash(slot), distance }).collect();
        out.sort_by(|a, b| a.distance.total_cmp(&b.distance).then_with(|| a.hash.cmp(&b.hash)));
        out
    }

    fn exact_distance(&self, row_index: usize, row: &Row, query: &Encoding) -> f64 {
        match self.exact.get(&(row_index as u32)) {
            Some(values) => Encoding(**values).distance(query),
            None => row.iter().zip(query.0.iter()).map(|(r, q)| (f64::from(*r) - q).powi(2)).sum::<f64>().sqrt(),
        }
    }

    /// Bytes held by the rows and their bookkeeping.
    pub fn heap_bytes(&self) -> usize {
        self.rows.heap_bytes()
            + self.owners.capacity() * 4
            + self.exact.len() * (ENCODING_DIMS * 8 + 16)
            + self.keys.heap_bytes()
    }
}

/// Rows per chunk: 4096 x 512 bytes = 2 MiB, one huge page.
const CHUNK_ROWS: usize = 4096;

/// A 2 MiB-aligned block of rows, so the kernel can back it with a transparent huge page.
#[repr(C, align(2097152))]
struct Chunk([Row; CHUNK_ROWS]);

/// Rows in fixed 2 MiB chunks: growth never copies (no 2x peak while loading a million
/// faces), and each chunk is advised to use a huge page before it is first written, which
/// cuts TLB misses in the memory-bound full scan.
#[derive(Default)]
struct RowStore {
    /// Only the first `len` rows (across chunks, in order) are initialised.
    chunks: Vec<Box<std::mem::MaybeUninit<Chunk>>>,
    len: usize,
}

impl RowStore {
    fn push(&mut self, row: Row) {
        let at = self.len % CHUNK_ROWS;
        if at == 0 {
            // Not zeroed: zeroing would touch every page before the huge-page advice.
            let chunk = Box::<Chunk>::new_uninit();
            advise_huge_page(chunk.as_ptr().cast());
            self.chunks.push(chunk);
        }
        let chunk = self.chunks.last_mut().expect("a chunk was just ensured");
        // SAFETY: `at < CHUNK_ROWS`, inside the chunk's allocation.
        unsafe { chunk.as_mut_ptr().cast::<Row>().add(at).write(row) };
        self.len += 1;
    }

    fn get(&self, index: usize) -> Row {
        assert!(index < self.len, "row {index} out of {}", self.len);
        // SAFETY: rows below `len` are initialised.
        unsafe { self.chunks[index / CHUNK_ROWS].as_ptr().cast::<Row>().add(index % CHUNK_ROWS).read() }
    }

    fn set(&mut self, index: usize, row: Row) {
        assert!(index < self.len, "row {index} out of {}", self.len);
        // SAFETY: inside an allocated chunk.
        unsafe { self.chunks[index / CHUNK_ROWS].as_mut_ptr().cast::<Row>().add(index % CHUNK_ROWS).write(row) };
    }

    /// Drops the last row, zeroing its bytes first (it may hold an erased face); frees a
    /// chunk left empty.
    fn pop(&mut self) {
        assert!(self.len > 0, "pop from an empty row store");
        self.set(self.len - 1, [0.0; ENCODING_DIMS]);
        self.len -= 1;
        if self.len % CHUNK_ROWS == 0 {
            self.chunks.pop();
        }
    }

    /// Filled rows, chunk by chunk.
    fn chunks(&self) -> impl Iterator<Item = &[Row]> {
        let len = self.len;
        self.chunks.iter().enumerate().map(move |(i, c)| {
            let n = (len - i * CHUNK_ROWS).min(CHUNK_ROWS);
            // SAFETY: rows are written in order, so the first `n` rows of this chunk are
            // initialised; the borrow of `self` keeps the chunk alive and unmodified.
            unsafe { std::slice::from_raw_parts(c.as_ptr().cast::<Row>(), n) }
        })
    }

    fn heap_bytes(&self) -> usize {
        self.chunks.len() * std::mem::size_of::<Chunk>()
    }
}

#[cfg(target_os = "linux")]
fn advise_huge_page(chunk: *const u8) {
    // SAFETY: the range is exactly one live, 2 MiB-aligned allocation; MADV_HUGEPAGE only
    // changes how the kernel backs it, never its contents.
    unsafe {
        libc::madvise(chunk as *mut libc::c_void, std::mem::size_of::<Chunk>(), libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_page(_: *const u8) {}

/// Image hashes, compactly: one byte arena (a lowercase SHA-256 hex hash as its 32 raw
/// bytes, anything else as its text) and a hash table of slot numbers into it.
/// Image hashes by slot, with a lookup table. A lowercase SHA-256 hex hash (what facerec
/// writes) is kept as its 32 raw bytes at `slot * 32`; any other hash text as bytes on the
/// side (its 32 bytes stay zero).
#[derive(Default)]
struct KeyTable {
    sha256: Vec<[u8; 32]>,
    other: HashMap<u32, Box<str>>,
    table: hashbrown::HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
}

/// A hash as the table stores and compares it.
#[derive(PartialEq, Eq, Hash)]
enum Key<'a> {
    Sha256([u8; 32]),
    Other(&'a str),
}

impl<'a> Key<'a> {
    fn of(text: &'a str) -> Self {
        let is_sha256_hex = text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if is_sha256_hex {
            let mut raw = [0u8; 32];
            hex::decode_to_slice(text, &mut raw).expect("checked hex");
            Key::Sha256(raw)
        } else {
            Key::Other(text)
        }
    }
}

impl KeyTable {
    fn len(&self) -> usize {
        self.sha256.len()
    }

    fn key(&self, slot: u32) -> Key<'_> {
        match self.other.get(&slot) {
            Some(text) => Key::Other(text),
            None => Key::Sha256(self.sha256[slot as usize]),
        }
    }

    fn find(&self, text: &str) -> Option<u32> {
        let key = Key::of(text);
        let hash = self.hasher.hash_one(&key);
        self.table.find(hash, |slot| self.key(*slot) == key).copied()
    }

    fn insert(&mut self, text: &str) -> u32 {
        let slot = u32::try_from(self.sha256.len()).expect("more than 2^32 images");
        let key = Key::of(text);
        let hash = self.hasher.hash_one(&key);
        match key {
            Key::Sha256(raw) => self.sha256.push(raw),
            Key::Other(text) => {
                self.sha256.push([0; 32]);
                self.other.insert(slot, text.into());
            }
        }
        let (sha256, other, hasher) = (&self.sha256, &self.other, &self.hasher);
        let rehash = |s: &u32| match other.get(s) {
            Some(text) => hasher.hash_one(Key::Other(text)),
            None => hasher.hash_one(Key::Sha256(sha256[*s as usize])),
        };
        self.table.insert_unique(hash, slot, rehash);
        slot
    }

    /// Removes `slot`; the last slot moves into its place. Returns the moved slot's old
    /// number, if one moved.
    fn remove(&mut self, slot: u32) -> Option<u32> {
        let last = u32::try_from(self.sha256.len() - 1).expect("slots fit u32");
        let hash = self.hasher.hash_one(self.key(slot));
        if let Ok(entry) = self.table.find_entry(hash, |s| *s == slot) {
            entry.remove();
        }
        let moved_text = self.other.remove(&last);
        self.other.remove(&slot);
        let moved = if slot == last {
            None
        } else {
            let last_hash = match &moved_text {
                Some(text) => self.hasher.hash_one(Key::Other(text)),
                None => self.hasher.hash_one(Key::Sha256(self.sha256[last as usize])),
            };
            if let Ok(mut entry) = self.table.find_entry(last_hash, |s| *s == last) {
                *entry.get_mut() = slot;
            }
            self.sha256[slot as usize] = self.sha256[last as usize];
            if let Some(text) = moved_text {
                self.other.insert(slot, text);
            }
            Some(last)
        };
        self.sha256[last as usize] = [0; 32];
        self.sha256.pop();
        moved
    }

    fn hash(&self, slot: u32) -> ImageHash {
        let text = match self.key(slot) {
            Key::Sha256(raw) => hex::encode(raw),
            Key::Other(text) => text.to_owned(),
        };
        ImageHash::parse(&text).expect("stored hashes were valid")
    }

    fn heap_bytes(&self) -> usize {
        self.sha256.capacity() * 32
            + self.other.values().map(|t| t.len() + 32).sum::<usize>()
            + self.table.allocation_size()
    }
}

mod kernel {
    //! The hot loop. Plain Rust that LLVM vectorises; on x86-64 a copy compiled for
    //! AVX2 is chosen at run time, so one binary is fast on new CPUs and still runs on old.
    use super::Row;

    /// Calls `hit(row, query)` for every pair with squared f32 distance <= `screen`.
    pub(super) fn screen(rows: &[Row], queries: &[Row], screen: f32, hit: impl FnMut(usize, usize)) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2, checked just above.
                return unsafe { screen_avx2(rows, queries, screen, hit) };
            }
        }
        screen_portable(rows, queries, screen, hit)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn screen_avx2(rows: &[Row], queries: &[Row], screen: f32, hit: impl FnMut(usize, usize)) {
        screen_portable(rows, queries, screen, hit)
    }

    #[inline(always)]
    fn screen_portable(rows: &[Row], queries: &[Row], screen: f32, mut hit: impl FnMut(usize, usize)) {
        // One pass over the rows; every query is compared while the row is in cache.
        for (r, row) in rows.iter().enumerate() {
            prefetch(rows, r + PREFETCH_ROWS);
            for (q, query) in queries.iter().enumerate() {
                if squared_distance(row, query) <= screen {
                    hit(r, q);
                }
            }
        }
    }

    /// Rows ahead of the one being compared that are requested early (16 KiB): the scan is
    /// bound by memory bandwidth, and this measured 1.2-1.4x faster than leaving it to the
    /// hardware prefetcher on a 2-core Xeon VM (docs/PERFORMANCE.md).
    const PREFETCH_ROWS: usize = 32;

    #[inline(always)]
    fn prefetch(rows: &[Row], at: usize) {
        #[cfg(target_arch = "x86_64")]
        if let Some(row) = rows.get(at) {
            let p = row.as_ptr().cast::<i8>();
            // SAFETY: a prefetch never faults; the addresses are inside `row`.
            unsafe {
                use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                for line in 0..8 {
                    _mm_prefetch::<_MM_HINT_T0>(p.add(line * 64));
                }
            }
        }
    }

    /// 16 independent accumulators: no reassociation needed for the compiler to use
    /// full-width vector registers.
    #[inline(always)]
    pub(super) fn squared_distance(a: &Row, b: &Row) -> f32 {
        let mut acc = [0f32; 16];
        for (ca, cb) in a.chunks_exact(16).zip(b.chunks_exact(16)) {
            for i in 0..16 {
                let d = ca[i] - cb[i];
                acc[i] += d * d;
            }
        }
        acc.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(seed: u64) -> Encoding {
        // Deterministic pseudo-random values in [-0.2, 0.2], like real encodings.
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        Encoding(std::array::from_fn(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (((x >> 33) as f64 / (1u64 << 31) as f64) - 0.5) * 0.4
        }))
    }

    fn shifted(e: &Encoding, by: f64) -> Encoding {
        let mut v = e.0;
        v[0] += by;
        Encoding(v)
    }

    fn h(s: &str) -> ImageHash {
        ImageHash::parse(s).unwrap()
    }

    #[test]
    fn finds_matches_with_min_distance_and_excludes_self() {
        let mut set = FaceSet::default();
        let a = enc(1);
        set.insert(&h("a"), &[a, enc(2)]);
        set.insert(&h("b"), &[enc(3), shifted(&a, 0.3)]);
        set.insert(&h("c"), &[shifted(&a, 0.7)]);
        let found = set.matches(&[a], 0.6, Some(&h("a")));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].hash, h("b"));
        assert!((found[0].distance - 0.3).abs() < 1e-9);
    }

    #[test]
    fn decision_at_the_tolerance_is_exact_in_f64() {
        let mut set = FaceSet::default();
        let origin = Encoding([0.0; ENCODING_DIMS]);
        // Both round to the same f32 (0.6f32): only the f64 decision tells them apart.
        set.insert(&h("in"), &[shifted(&origin, 0.6 - 1e-12)]);
        set.insert(&h("out"), &[shifted(&origin, 0.6 + 1e-12)]);
        let found = set.matches(&[origin], 0.6, None);
        let hashes: Vec<_> = found.iter().map(|m| m.hash.as_str()).collect();
        assert_eq!(hashes, vec!["in"]);
        assert_eq!(found[0].distance, 0.6 - 1e-12);
    }

    #[test]
    fn sha256_and_other_hashes_round_trip_through_the_compact_table() {
        let mut set = FaceSet::default();
        let sha = ImageHash::of_bytes(b"x");
        let upper = ImageHash::parse(&sha.as_str().to_uppercase()).unwrap();
        for (i, h) in [sha.clone(), upper.clone(), h("short"), h("ünïcödé")].iter().enumerate() {
            assert!(set.insert(h, &[shifted(&enc(1), i as f64 * 0.01)]));
        }
        assert!(set.contains(&sha) && set.contains(&upper) && set.contains(&h("short")));
        assert!(!set.contains(&h("other")));
        let found: Vec<ImageHash> = set.matches(&[enc(1)], 0.6, None).into_iter().map(|m| m.hash).collect();
        assert_eq!(found, vec![sha, upper, h("short"), h("ünïcödé")]);
    }

    #[test]
    fn rows_span_chunks() {
        let mut set = FaceSet::default();
        for i in 0..(CHUNK_ROWS + 10) {
            set.insert(&h(&format!("i{i}")), &[enc(i as u64)]);
        }
        let last = enc((CHUNK_ROWS + 9) as u64);
        let found = set.matches(&[last], 1e-9, None);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].hash, h(&format!("i{}", CHUNK_ROWS + 9)));
    }

    #[test]
    fn reinserting_an_image_changes_nothing() {
        let mut set = FaceSet::default();
        assert!(set.insert(&h("a"), &[enc(1)]));
        assert!(!set.insert(&h("a"), &[enc(1)]));
        assert!(!set.insert(&h("z"), &[]));
        assert_eq!((set.faces(), set.images()), (1, 1));
    }

    #[test]
    fn removing_an_image_drops_its_faces_and_keeps_the_rest_findable() {
        let mut set = FaceSet::default();
        let n = CHUNK_ROWS + 5;
        for i in 0..n {
            let hash = if i % 3 == 0 { h(&format!("other-{i}")) } else { ImageHash::of_bytes(&i.to_le_bytes()) };
            set.insert(&hash, &[enc(i as u64), shifted(&enc(i as u64), 1e-7)]);
        }
        let gone = ImageHash::of_bytes(&7usize.to_le_bytes());
        assert_eq!(set.remove(&gone), 2);
        assert_eq!(set.remove(&gone), 0);
        assert_eq!(set.remove(&h("other-0")), 2);
        assert!(!set.contains(&gone) && !set.contains(&h("other-0")));
        assert_eq!((set.faces(), set.images()), (2 * n - 4, n - 2));
        assert!(set.matches(&[enc(7)], 1e-6, None).is_empty());
        for i in [1usize, 3, n - 1, n - 2] {
            let found = set.matches(&[enc(i as u64)], 1e-6, None);
            assert_eq!(found.len(), 1, "image {i}");
        }
        // Removing down to nothing, then adding again.
        let all: Vec<ImageHash> = (0..n)
            .map(|i| if i % 3 == 0 { h(&format!("other-{i}")) } else { ImageHash::of_bytes(&i.to_le_bytes()) })
            .collect();
        for hash in &all {
            set.remove(hash);
        }
        assert_eq!((set.faces(), set.images()), (0, 0));
        assert!(set.insert(&gone, &[enc(7)]));
        assert_eq!(set.matches(&[enc(7)], 1e-6, None).len(), 1);
    }

    #[test]
    fn matching_many_images_at_once_equals_matching_each_alone() {
        let mut set = FaceSet::default();
        let mut all = Vec::new();
        for i in 0..(CHUNK_ROWS + 40) {
            let base = enc((i % 50) as u64);
            let faces = if i % 7 == 0 {
                vec![shifted(&base, 0.3), enc(i as u64 + 1000)]
            } else {
                vec![shifted(&base, 0.01 * (i % 60) as f64)]
            };
            let hash = h(&format!("i{i}"));
            set.insert(&hash, &faces);
            all.push((hash, faces));
        }
        let batch: Vec<(&ImageHash, &[Encoding])> = all.iter().map(|(h, f)| (h, f.as_slice())).collect();
        // The first images (rows in the first chunk) and the last (rows in the second).
        for part in [&batch[..97], &batch[batch.len() - 97..]] {
            let together = set.matches_each(part, 0.45);
            for ((hash, faces), got) in part.iter().zip(together) {
                let alone = set.matches(faces, 0.45, Some(hash));
                assert!(!alone.is_empty());
                assert_eq!(got.len(), alone.len(), "{hash}");
                for (g, a) in got.iter().zip(&alone) {
                    assert_eq!((&g.hash, g.distance.to_bits()), (&a.hash, a.distance.to_bits()));
                }
            }
        }
    }

    proptest! {
        #[test]
        fn agrees_with_brute_force_f64(seeds in proptest::collection::vec(0u64..1000, 1..40), q in 0u64..1000, tol in 0.05f64..1.2) {
            let mut set = FaceSet::default();
            let mut all = Vec::new();
            for (i, s) in seeds.iter().enumerate() {
                let hash = h(&format!("i{i}"));
                let faces = vec![enc(*s), shifted(&enc(*s), 0.1 * (i as f64 % 7.0))];
                set.insert(&hash, &faces);
                all.push((hash, faces));
            }
            let query = enc(q);
            let mut expected: Vec<(ImageHash, f64)> = all.iter().filter_map(|(hash, faces)| {
                let d = faces.iter().map(|f| f.distance(&query)).fold(f64::INFINITY, f64::min);
                (d <= tol).then(|| (hash.clone(), d))
            }).collect();
            expected.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
            let got: Vec<(ImageHash, f64)> = set.matches(&[query], tol, None).into_iter().map(|m| (m.hash, m.distance)).collect();
            prop_assert_eq!(got.len(), expected.len());
            for (g, e) in got.iter().zip(expected.iter()) {
                prop_assert_eq!(&g.0, &e.0);
                prop_assert!((g.1 - e.1).abs() < 1e-12);
            }
        }
    }
}
