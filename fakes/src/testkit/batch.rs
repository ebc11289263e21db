//! Synthetic batches: recorded encodings of made-up faces, the messages that carry them and
//! the databases a clean sequential run must produce.

use crate::testkit::message::message;
use facerec::adapters::recorded_encoder::{FORMAT, RecordedImage, Recording};
use facerec::face::{BoundingBox, ENCODING_DIMS, Encoding, Face};
use facerec::hash::ImageHash;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A synthetic batch: `people` distinct faces, `images` images each showing one or two of
/// them with small noise (same person < 0.3 apart, different people > 0.9 apart).
pub struct Batch {
    /// The faces of every image, as a worker's `--encodings` file holds them.
    pub recording: Recording,
}

impl Batch {
    /// `images` images of `people` people; `seed` makes the noise and the hashes.
    pub fn new(images: usize, people: usize, seed: u64) -> Self {
        let mut rng = seed;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng >> 11) as f64 / (1u64 << 53) as f64
        };
        // Person centres: far apart in a random subspace.
        let centres: Vec<[f64; ENCODING_DIMS]> = (0..people)
            .map(|p| {
                let mut c = [0.0; ENCODING_DIMS];
                c[p % ENCODING_DIMS] = 0.8;
                c[(p * 7 + 3) % ENCODING_DIMS] += 0.4;
                c
            })
            .collect();
        let mut recorded = Vec::new();
        for i in 0..images {
            let shown = if i % 5 == 0 { 2 } else { 1 };
            let faces: Vec<Face> = (0..shown)
                .map(|k| {
                    let person = (i * 3 + k * 11) % people;
                    let mut v = centres[person];
                    for x in v.iter_mut() {
                        *x += (next() - 0.5) * 0.02;
                    }
                    // Round through f32, as dlib's encodings are.
                    let v = v.map(|x| f64::from(x as f32));
                    Face { bbox: BoundingBox { top: 0, right: 10, bottom: 10, left: 0 }, encoding: Encoding(v) }
                })
                .collect();
            let hash = ImageHash::parse(&format!("synthetic{seed}-{i:04}")).unwrap();
            recorded.push(RecordedImage { hash, name: format!("batch/{i:04}.jpg"), width: 10, height: 10, faces });
        }
        Self { recording: Recording { format: FORMAT.into(), fingerprint: "synthetic".into(), images: recorded } }
    }

    /// Writes the recording into `dir`; returns the file for the worker's `--encodings`.
    pub fn save(&self, dir: &Path) -> PathBuf {
        let path = dir.join("batch.json");
        self.recording.save(&path).unwrap();
        path
    }

    /// One JSON message per image.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        self.recording.images.iter().map(|i| message(i.hash.as_str(), &i.name)).collect()
    }

    /// The databases a clean sequential run must produce, computed here by brute force, in
    /// the shape of [`crate::testkit::servers::dump`].
    pub fn expected(&self, tolerance: f64) -> BTreeMap<(u8, String), Vec<String>> {
        let mut out = BTreeMap::new();
        let images = &self.recording.images;
        for img in images {
            let h = img.hash.as_str().to_owned();
            out.insert((1, img.name.clone()), vec![h.clone()]);
            out.insert((2, h.clone()), vec![img.name.clone()]);
            let mut encs: Vec<String> = img.faces.iter().map(|f| hex::encode(f.encoding.to_le_bytes())).collect();
            encs.sort();
            encs.dedup();
            out.insert((3, h.clone()), encs);
            let mut linked: BTreeSet<String> = BTreeSet::new();
            for other in images {
                if other.hash == img.hash {
                    continue;
                }
                let near =
                    img.faces.iter().any(|a| other.faces.iter().any(|b| a.encoding.distance(&b.encoding) <= tolerance));
                if near {
                    linked.insert(other.hash.as_str().to_owned());
                }
            }
            if !linked.is_empty() {
                out.insert((4, h), linked.into_iter().collect());
            }
        }
        out
    }
}
