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

/// Margin, in distance units, inside which the f32 screen defers to an f64 decision.
pub const F64_MARGIN: f64 = 1e-4;

type Row = [f32; ENCODING_DIMS];

/// Every stored face of every image, for exact nearest-image queries.
#[derive(Default)]
pub struct FaceSet {
    /// Row-major, `ENCODING_DIMS` f32 per face.
    rows: Vec<Row>,
    /// Image slot of each row.
    owners: Vec<u32>,
    /// f64 values of rows whose encoding is not exactly representable in f32.
    exact: HashMap<u32, Box<[f64; ENCODING_DIMS]>>,
    /// Hash of each slot.
    slots: Vec<ImageHash>,
    /// Slot of each hash.
    slot_of: HashMap<ImageHash, u32>,
}

impl FaceSet {
    /// An empty set with room for `faces` faces.
    pub fn with_capacity(faces: usize) -> Self {
        Self { rows: Vec::with_capacity(faces), owners: Vec::with_capacity(faces), ..Self::default() }
    }

    /// Number of faces held.
    pub fn faces(&self) -> usize {
        self.rows.len()
    }

    /// Number of images with at least one face.
    pub fn images(&self) -> usize {
        self.slots.len()
    }

    /// Whether faces of `hash` are held.
    pub fn contains(&self, hash: &ImageHash) -> bool {
        self.slot_of.contains_key(hash)
    }

    /// Adds the faces of an image. An image already held is left as it is (its faces never
    /// change: they are a function of its bytes), so replaying a log is harmless.
    /// Returns whether anything was added.
    pub fn insert(&mut self, hash: &ImageHash, faces: &[Encoding]) -> bool {
        if faces.is_empty() || self.slot_of.contains_key(hash) {
            return false;
        }
        let slot = u32::try_from(self.slots.len()).expect("more than 2^32 images");
        self.slots.push(hash.clone());
        self.slot_of.insert(hash.clone(), slot);
        for face in faces {
            let row: Row = std::array::from_fn(|i| face.0[i] as f32);
            let index = u32::try_from(self.rows.len()).expect("more than 2^32 faces");
            if row.iter().zip(face.0.iter()).any(|(r, f)| f64::from(*r) != *f) {
                self.exact.insert(index, Box::new(face.0));
            }
            self.rows.push(row);
            self.owners.push(slot);
        }
        true
    }

    /// Every image other than `exclude` with a face within `tolerance` of any of
    /// `queries`, with the smallest such distance, nearest first.
    pub fn matches(&self, queries: &[Encoding], tolerance: f64, exclude: Option<&ImageHash>) -> Vec<ImageMatch> {
        if queries.is_empty() || self.rows.is_empty() {
            return Vec::new();
        }
        let screen = ((tolerance + F64_MARGIN) * (tolerance + F64_MARGIN)) as f32;
        let query_rows: Vec<Row> = queries.iter().map(|q| std::array::from_fn(|i| q.0[i] as f32)).collect();
        let excluded = exclude.and_then(|h| self.slot_of.get(h)).copied();
        let mut best: HashMap<u32, f64> = HashMap::new();
        kernel::screen(&self.rows, &query_rows, screen, |row_index, query_index| {
            let slot = self.owners[row_index];
            if Some(slot) == excluded {
                return;
            }
            let distance = self.exact_distance(row_index, &queries[query_index]);
            if distance <= tolerance {
                let entry = best.entry(slot).or_insert(distance);
                *entry = entry.min(distance);
            }
        });
        let mut out: Vec<ImageMatch> = best
            .into_iter()
            .map(|(slot, distance)| ImageMatch { hash: self.slots[slot as usize].clone(), distance })
            .collect();
        out.sort_by(|a, b| a.distance.total_cmp(&b.distance).then_with(|| a.hash.cmp(&b.hash)));
        out
    }

    fn exact_distance(&self, row_index: usize, query: &Encoding) -> f64 {
        let index = row_index as u32;
        match self.exact.get(&index) {
            Some(values) => Encoding(**values).distance(query),
            None => {
                let row = &self.rows[row_index];
                row.iter().zip(query.0.iter()).map(|(r, q)| (f64::from(*r) - q).powi(2)).sum::<f64>().sqrt()
            }
        }
    }

    /// Bytes held by the face rows and their bookkeeping (not counting hash strings).
    pub fn heap_bytes(&self) -> usize {
        self.rows.capacity() * std::mem::size_of::<Row>()
            + self.owners.capacity() * 4
            + self.exact.len() * (ENCODING_DIMS * 8 + 16)
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
            for (q, query) in queries.iter().enumerate() {
                if squared_distance(row, query) <= screen {
                    hit(r, q);
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
    fn reinserting_an_image_changes_nothing() {
        let mut set = FaceSet::default();
        assert!(set.insert(&h("a"), &[enc(1)]));
        assert!(!set.insert(&h("a"), &[enc(1)]));
        assert!(!set.insert(&h("z"), &[]));
        assert_eq!((set.faces(), set.images()), (1, 1));
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
