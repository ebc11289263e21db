//! `facerec fsck`: the schema's invariants (docs/PROTOCOL.md) checked as pure functions over
//! a [`Snapshot`] of the databases, and the fixes that restore them. Reading the snapshot
//! and applying fixes is the Redis adapter's job; everything here runs without a server.

use crate::face::{ENCODING_BYTES, Encoding};
use crate::hash::ImageHash;
use crate::matching::FaceSet;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Databases 0-4 as read, keys without the prefix.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// db 1: name -> hash.
    pub names: BTreeMap<String, String>,
    /// db 2: hash -> names.
    pub images: BTreeMap<String, BTreeSet<String>>,
    /// db 3: hash -> raw encodings.
    pub faces: BTreeMap<String, Vec<Vec<u8>>>,
    /// db 4: hash -> matching hashes.
    pub links: BTreeMap<String, BTreeSet<String>>,
    /// db 0 `facerec:image:<hash>`: its `faces` field, when it parses.
    pub records: BTreeMap<String, Option<usize>>,
    /// db 0 `facerec:layout:<hash>`: its JSON.
    pub layouts: BTreeMap<String, String>,
    /// db 0 `facerec:thumb:<hash>`: the images that have one.
    pub thumbnails: BTreeSet<String>,
}

/// The kinds of damage fsck finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Violation {
    /// db 1 name points to an image whose db 2 set lacks the name (or is missing).
    DanglingName,
    /// db 2 name without a db 1 entry.
    MissingName,
    /// db 3 member that is not 1024 bytes of finite floats.
    BadEncoding,
    /// db 4 link `a -> b` without `b -> a`.
    AsymmetricLink,
    /// db 4 set containing the image itself.
    SelfLink,
    /// db 4 pair that the faces in db 3 do not justify.
    ExtraLink,
    /// Pair of images with faces within the tolerance but no db 4 link.
    MissingLink,
    /// db 0 record whose face count disagrees with db 3, or that has no image.
    RecordMismatch,
    /// db 0 layout or thumbnail of an image that has neither names (db 2) nor faces (db 3):
    /// left behind, e.g. by another program's erase.
    OrphanView,
    /// db 0 layout that is not the schema's JSON, or whose face ids are not those of the
    /// image's db 3 encodings.
    LayoutMismatch,
}

/// A change that restores an invariant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Fix {
    /// Delete db 1 `name`.
    DeleteName(String),
    /// Set db 1 `name` to `hash`.
    SetName(String, String),
    /// Add `b` to db 4 `a`.
    Link(String, String),
    /// Remove `b` from db 4 `a`.
    Unlink(String, String),
    /// Delete the db 0 record of `hash`.
    DeleteRecord(String),
    /// Delete the db 0 layout of `hash` (the API then shows no boxes for it).
    DeleteLayout(String),
    /// Delete the db 0 thumbnail of `hash`.
    DeleteThumbnail(String),
}

/// What fsck found: examples per kind (all of them; callers print a few) and the fixes.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Per kind, a description of each occurrence.
    pub violations: BTreeMap<Violation, Vec<String>>,
    /// Changes `--repair` makes.
    pub fixes: Vec<Fix>,
}

impl Report {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.violations.is_empty()
    }

    fn add(&mut self, kind: Violation, what: String) {
        self.violations.entry(kind).or_default().push(what);
    }
}

/// Parses an encoding, refusing a wrong length or a non-finite value.
pub fn valid(raw: &[u8]) -> Option<Encoding> {
    if raw.len() != ENCODING_BYTES {
        return None;
    }
    Encoding::from_le_bytes(raw).filter(|e| e.0.iter().all(|x| x.is_finite()))
}

/// The db 4 relation the faces imply: every pair of distinct images with a face of one
/// within `tolerance` of a face of the other, over `threads` threads.
pub fn brute_force_links(
    faces: &BTreeMap<String, Vec<Encoding>>,
    tolerance: f64,
    threads: usize,
) -> BTreeMap<String, BTreeSet<String>> {
    brute_force_distances(faces, tolerance, threads)
        .into_iter()
        .map(|(hash, near)| (hash, near.into_keys().collect()))
        .collect()
}

/// Images compared per pass over every stored face: their query rows (~32 KiB) stay in
/// the core's cache while the rows stream by once, instead of once per image.
const BRUTE_FORCE_BATCH: usize = 48;

/// [`brute_force_links`] with, for each linked pair, the smallest distance between a face
/// of one and a face of the other (what the workers store in `facerec:dist:<hash>`).
/// Images without links are left out.
pub fn brute_force_distances(
    faces: &BTreeMap<String, Vec<Encoding>>,
    tolerance: f64,
    threads: usize,
) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut set = FaceSet::default();
    let parsed: Vec<(ImageHash, &Vec<Encoding>)> =
        faces.iter().filter_map(|(h, f)| Some((ImageHash::parse(h).ok()?, f))).collect();
    for (hash, f) in &parsed {
        set.insert(hash, f);
    }
    let chunk = parsed.len().div_ceil(threads.max(1)).max(1);
    let set = &set;
    let pairs: Vec<(String, BTreeMap<String, f64>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = parsed
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    let mut out = Vec::with_capacity(part.len());
                    for images in part.chunks(BRUTE_FORCE_BATCH) {
                        let queries: Vec<(&ImageHash, &[Encoding])> =
                            images.iter().map(|(h, f)| (h, f.as_slice())).collect();
                        for ((hash, _), near) in images.iter().zip(set.matches_each(&queries, tolerance)) {
                            let near = near.into_iter().map(|m| (m.hash.to_string(), m.distance));
                            out.push((hash.to_string(), near.collect()));
                        }
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("fsck thread panicked")).collect()
    });
    pairs.into_iter().filter(|(_, near)| !near.is_empty()).collect()
}

/// Checks every invariant; `tolerance` is the one db 4 was built with.
pub fn check(s: &Snapshot, tolerance: f64, threads: usize) -> Report {
    let mut r = Report::default();
    for (name, hash) in &s.names {
        if !s.images.get(hash).is_some_and(|names| names.contains(name)) {
            r.add(Violation::DanglingName, format!("{name:?} -> {hash}"));
            r.fixes.push(Fix::DeleteName(name.clone()));
        }
    }
    for (hash, names) in &s.images {
        for name in names.iter().filter(|n| !s.names.contains_key(*n)) {
            r.add(Violation::MissingName, format!("{hash} {name:?}"));
            r.fixes.push(Fix::SetName(name.clone(), hash.clone()));
        }
    }
    let mut faces: BTreeMap<String, Vec<Encoding>> = BTreeMap::new();
    for (hash, raw) in &s.faces {
        for value in raw {
            match valid(value) {
                Some(e) => faces.entry(hash.clone()).or_default().push(e),
                None => r.add(Violation::BadEncoding, format!("{hash}: {} bytes", value.len())),
            }
        }
    }
    for (a, linked) in &s.links {
        for b in linked {
            if a == b {
                r.add(Violation::SelfLink, a.clone());
            } else if !s.links.get(b).is_some_and(|back| back.contains(a)) {
                r.add(Violation::AsymmetricLink, format!("{a} -> {b}"));
            }
        }
    }
    let want = brute_force_links(&faces, tolerance, threads);
    let empty = BTreeSet::new();
    let all: BTreeSet<&String> = want.keys().chain(s.links.keys()).collect();
    for a in all {
        let (have, should) = (s.links.get(a).unwrap_or(&empty), want.get(a).unwrap_or(&empty));
        for b in have.difference(should) {
            if a != b && s.links.get(b).is_some_and(|back| back.contains(a)) {
                r.add(Violation::ExtraLink, format!("{a} -> {b}"));
            }
            r.fixes.push(Fix::Unlink(a.clone(), b.clone()));
        }
        for b in should.difference(have) {
            r.add(Violation::MissingLink, format!("{a} -> {b}"));
            r.fixes.push(Fix::Link(a.clone(), b.clone()));
        }
    }
    for (hash, count) in &s.records {
        let stored = s.faces.get(hash).map_or(0, Vec::len);
        let orphan = !s.images.contains_key(hash) && !s.faces.contains_key(hash);
        if orphan || count.is_some_and(|c| c != stored) {
            r.add(Violation::RecordMismatch, format!("{hash}: record says {count:?} faces, db 3 has {stored}"));
            if orphan {
                r.fixes.push(Fix::DeleteRecord(hash.clone()));
            }
        }
    }
    check_views(s, &mut r);
    r
}

/// Layouts and thumbnails: none without an image, and a layout's face ids are those of
/// the image's encodings (`Encoding::id`), so every box ties to a db 3 member.
fn check_views(s: &Snapshot, r: &mut Report) {
    let orphan = |hash: &String| !s.images.contains_key(hash) && !s.faces.contains_key(hash);
    for hash in s.thumbnails.iter().filter(|h| orphan(h)) {
        r.add(Violation::OrphanView, format!("{hash}: thumbnail without an image"));
        r.fixes.push(Fix::DeleteThumbnail(hash.clone()));
    }
    for (hash, json) in &s.layouts {
        if orphan(hash) {
            r.add(Violation::OrphanView, format!("{hash}: layout without an image"));
            r.fixes.push(Fix::DeleteLayout(hash.clone()));
            continue;
        }
        let ids: Option<BTreeSet<String>> = serde_json::from_str::<crate::ports::ImageLayout>(json)
            .ok()
            .map(|layout| layout.faces.into_iter().map(|f| f.id).collect());
        let stored: BTreeSet<String> =
            s.faces.get(hash).into_iter().flatten().filter_map(|raw| valid(raw)).map(|e| e.id()).collect();
        match ids {
            Some(ids) if ids == stored => {}
            Some(ids) => {
                let detail = format!("{hash}: layout has {} face ids, db 3 {}, not the same", ids.len(), stored.len());
                r.add(Violation::LayoutMismatch, detail);
                r.fixes.push(Fix::DeleteLayout(hash.clone()));
            }
            None => {
                r.add(Violation::LayoutMismatch, format!("{hash}: layout is not the schema's JSON"));
                r.fixes.push(Fix::DeleteLayout(hash.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::ENCODING_DIMS;

    fn enc(x: f64) -> Vec<u8> {
        Encoding([x; ENCODING_DIMS]).to_le_bytes().to_vec()
    }

    /// Three images: a and b show one person (linked), c another.
    fn healthy() -> Snapshot {
        let mut s = Snapshot::default();
        for (h, x) in [("a", 0.0), ("b", 0.01), ("c", 0.5)] {
            s.names.insert(format!("{h}.jpg"), h.into());
            s.images.insert(h.into(), BTreeSet::from([format!("{h}.jpg")]));
            s.faces.insert(h.into(), vec![enc(x)]);
            s.records.insert(h.into(), Some(1));
            let layout = crate::ports::ImageLayout {
                width: 100,
                height: 80,
                faces: vec![crate::ports::FaceBox {
                    bbox: crate::face::BoundingBox { top: 1, right: 20, bottom: 21, left: 0 },
                    id: valid(&enc(x)).unwrap().id(),
                }],
            };
            s.layouts.insert(h.into(), serde_json::to_string(&layout).unwrap());
            s.thumbnails.insert(h.into());
        }
        s.links.insert("a".into(), BTreeSet::from(["b".into()]));
        s.links.insert("b".into(), BTreeSet::from(["a".into()]));
        s
    }

    /// Applies fixes the way the adapter does.
    fn repair(s: &mut Snapshot, fixes: &[Fix]) {
        for f in fixes {
            match f {
                Fix::DeleteName(n) => {
                    s.names.remove(n);
                }
                Fix::SetName(n, h) => {
                    s.names.insert(n.clone(), h.clone());
                }
                Fix::Link(a, b) => {
                    s.links.entry(a.clone()).or_default().insert(b.clone());
                }
                Fix::Unlink(a, b) => {
                    s.links.entry(a.clone()).or_default().remove(b);
                }
                Fix::DeleteRecord(h) => {
                    s.records.remove(h);
                }
                Fix::DeleteLayout(h) => {
                    s.layouts.remove(h);
                }
                Fix::DeleteThumbnail(h) => {
                    s.thumbnails.remove(h);
                }
            }
        }
        s.links.retain(|_, v| !v.is_empty());
    }

    fn kinds(r: &Report) -> Vec<Violation> {
        r.violations.keys().copied().collect()
    }

    #[test]
    fn a_healthy_snapshot_is_clean() {
        let r = check(&healthy(), 0.6, 2);
        assert!(r.is_clean(), "{r:?}");
        assert!(r.fixes.is_empty());
    }

    #[test]
    fn each_planted_damage_is_found_and_repair_fixes_what_can_be_fixed() {
        type Plant = fn(&mut Snapshot);
        let cases: Vec<(Plant, Vec<Violation>, bool)> = vec![
            (
                |s| {
                    let _ = s.names.insert("ghost.jpg".into(), "a".into());
                },
                vec![Violation::DanglingName],
                true,
            ),
            (
                |s| {
                    let _ = s.names.remove("c.jpg");
                },
                vec![Violation::MissingName],
                true,
            ),
            (
                |s| s.faces.get_mut("c").unwrap().push(vec![1, 2, 3]),
                vec![Violation::BadEncoding, Violation::RecordMismatch],
                false,
            ),
            (
                |s| s.faces.get_mut("c").unwrap().push(Encoding([f64::NAN; ENCODING_DIMS]).to_le_bytes().to_vec()),
                vec![Violation::BadEncoding, Violation::RecordMismatch],
                false,
            ),
            (
                |s| {
                    let _ = s.links.get_mut("b").unwrap().remove("a");
                },
                vec![Violation::AsymmetricLink, Violation::MissingLink],
                true,
            ),
            (
                |s| {
                    let _ = s.links.entry("c".into()).or_default().insert("c".into());
                },
                vec![Violation::SelfLink],
                true,
            ),
            (
                |s| {
                    s.links.entry("c".into()).or_default().insert("a".into());
                    s.links.get_mut("a").unwrap().insert("c".into());
                },
                vec![Violation::ExtraLink],
                true,
            ),
            (
                |s| {
                    s.links.clear();
                },
                vec![Violation::MissingLink],
                true,
            ),
            (
                |s| {
                    let _ = s.records.insert("c".into(), Some(3));
                },
                vec![Violation::RecordMismatch],
                false,
            ),
            (
                |s| {
                    let _ = s.records.insert("gone".into(), Some(1));
                },
                vec![Violation::RecordMismatch],
                true,
            ),
            (
                |s| {
                    s.thumbnails.insert("gone".into());
                    let layout = s.layouts["a"].clone();
                    s.layouts.insert("gone2".into(), layout);
                },
                vec![Violation::OrphanView],
                true,
            ),
            (
                |s| {
                    let other = s.layouts["c"].clone();
                    s.layouts.insert("a".into(), other);
                },
                vec![Violation::LayoutMismatch],
                true,
            ),
            (
                |s| {
                    let _ = s.layouts.insert("b".into(), "{not json".into());
                },
                vec![Violation::LayoutMismatch],
                true,
            ),
        ];
        for (i, (plant, want, repairable)) in cases.into_iter().enumerate() {
            let mut s = healthy();
            plant(&mut s);
            let r = check(&s, 0.6, 2);
            assert_eq!(kinds(&r), want, "case {i}: {r:?}");
            // The orphan case plants two (a thumbnail and a layout): both are reported.
            let planted = if i == 10 { 2 } else { 1 };
            assert!(r.violations.values().all(|v| v.len() >= planted), "case {i}: {r:?}");
            repair(&mut s, &r.fixes);
            let after = check(&s, 0.6, 2);
            assert_eq!(after.is_clean(), repairable, "case {i} after repair: {after:?}");
        }
    }

    #[test]
    fn brute_force_links_agree_across_thread_counts() {
        let mut faces = BTreeMap::new();
        for i in 0..50 {
            faces.insert(format!("i{i}"), vec![Encoding([f64::from(i % 7) * 0.03; ENCODING_DIMS])]);
        }
        let one = brute_force_links(&faces, 0.6, 1);
        assert_eq!(one, brute_force_links(&faces, 0.6, 3));
        assert!(one.iter().all(|(a, bs)| !bs.contains(a) && bs.iter().all(|b| one[b].contains(a))));
    }
}
