//! `facerec reindex`: the plan that rebuilds db 4 and the stored distances for a new
//! tolerance from what is stored, as pure functions over a [`Stored`] snapshot. Reading
//! the snapshot and writing the changes is the Redis adapter's job
//! (`adapters/redis_index/tolerance.rs`); everything here runs without a server.
//!
//! Two ways to get there ([`Method`]):
//! - **filter**: the new tolerance is not looser than the one db 4 was built with, so
//!   every pair the new tolerance links is already linked, with its distance stored
//!   (`facerec:dist:<hash>`): keep the links whose distance is within it. No face is
//!   compared; a link without a readable distance (written by another program) is
//!   measured from its two images' db 3 faces.
//! - **kernel**: looser, or the old tolerance is unknown: every image is compared with
//!   every other one by the matching kernel ([`brute_force_distances`]).
//!
//! Either way the result is what workers running at the new tolerance from the start
//! would have stored: a symmetric relation without self links, and for each link the
//! smallest face distance, written as the workers write it (shortest round-trip decimal).

use crate::face::Encoding;
use crate::fsck::brute_force_distances;
use std::collections::{BTreeMap, BTreeSet};

/// What a reindex reads, keys without the prefix.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stored {
    /// db 3: hash -> its valid encodings (empty when the filter needs none).
    pub faces: BTreeMap<String, Vec<Encoding>>,
    /// db 4: hash -> linked hashes.
    pub links: BTreeMap<String, BTreeSet<String>>,
    /// db 0 `facerec:dist:<hash>`: hash -> other hash -> distance as stored (text).
    pub distances: BTreeMap<String, BTreeMap<String, String>>,
}

/// How the new relation is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Drop the stored links farther apart than the new tolerance (not looser).
    Filter,
    /// Compare every face with every other one (looser, or old tolerance unknown).
    Kernel,
}

impl Method {
    /// Filter when db 4 is known to hold every pair within `tolerance` (it was built with
    /// `recorded >= tolerance`), else the kernel.
    pub fn choose(recorded: Option<f64>, tolerance: f64) -> Self {
        match recorded {
            Some(old) if tolerance <= old => Method::Filter,
            _ => Method::Kernel,
        }
    }
}

/// An image's links and distances after the reindex.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// db 4: linked hashes.
    pub links: BTreeSet<String>,
    /// `facerec:dist:<hash>`: one distance (text) per link.
    pub distances: BTreeMap<String, String>,
}

/// The relation at the new tolerance: every image with at least one link.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// How it was computed.
    pub method: Method,
    /// Per image, its new links and distances.
    pub images: BTreeMap<String, Entry>,
}

/// What to write for one image so that its keys hold its [`Entry`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// The image.
    pub hash: String,
    /// Hashes to add to its db 4 set.
    pub link: Vec<String>,
    /// Hashes to remove from its db 4 set.
    pub unlink: Vec<String>,
    /// Distance fields to set (other hash, text).
    pub set: Vec<(String, String)>,
    /// Distance fields to delete.
    pub unset: Vec<String>,
}

/// The distance text workers write: the shortest decimal that reads back as `d`.
pub fn distance_text(d: f64) -> String {
    format!("{d:?}")
}

/// Whether the filter needs db 3: some stored link has no readable distance either way.
pub fn filter_needs_faces(stored: &Stored) -> bool {
    stored.links.iter().any(|(a, linked)| linked.iter().any(|b| a != b && stored_distance(stored, a, b).is_none()))
}

/// The relation at `tolerance`, computed with `method` ([`Method::choose`]) over `threads`
/// threads (the kernel only).
pub fn plan(stored: &Stored, method: Method, tolerance: f64, threads: usize) -> Plan {
    let images = match method {
        Method::Filter => filter(stored, tolerance),
        Method::Kernel => kernel(stored, tolerance, threads),
    };
    Plan { method, images }
}

impl Plan {
    /// The writes that turn `stored` into this plan, one [`Change`] per image that has
    /// something to change, in hash order. A distance already stored with the same text is
    /// left alone, so a stricter reindex rewrites nothing it keeps.
    pub fn changes(&self, stored: &Stored) -> Vec<Change> {
        let (no_links, no_distances) = (BTreeSet::new(), BTreeMap::new());
        let empty = Entry::default();
        let hashes: BTreeSet<&String> =
            self.images.keys().chain(stored.links.keys()).chain(stored.distances.keys()).collect();
        let mut out = Vec::new();
        for hash in hashes {
            let want = self.images.get(hash).unwrap_or(&empty);
            let have_links = stored.links.get(hash).unwrap_or(&no_links);
            let have_distances = stored.distances.get(hash).unwrap_or(&no_distances);
            let change = Change {
                hash: hash.clone(),
                link: want.links.difference(have_links).cloned().collect(),
                unlink: have_links.difference(&want.links).cloned().collect(),
                set: want
                    .distances
                    .iter()
                    .filter(|(other, text)| have_distances.get(*other) != Some(*text))
                    .map(|(other, text)| (other.clone(), text.clone()))
                    .collect(),
                unset: have_distances.keys().filter(|other| !want.distances.contains_key(*other)).cloned().collect(),
            };
            if !(change.link.is_empty() && change.unlink.is_empty() && change.set.is_empty() && change.unset.is_empty())
            {
                out.push(change);
            }
        }
        out
    }

    /// Number of links (each pair counted once).
    pub fn pairs(&self) -> usize {
        self.images.values().map(|e| e.links.len()).sum::<usize>() / 2
    }
}

/// The stored distance of a pair: `a`'s own field, else `b`'s, when it parses.
fn stored_distance<'a>(stored: &'a Stored, a: &str, b: &str) -> Option<(&'a str, f64)> {
    let field = |x: &str, y: &str| {
        let text = stored.distances.get(x)?.get(y)?;
        Some((text.as_str(), text.parse::<f64>().ok().filter(|d| d.is_finite())?))
    };
    field(a, b).or_else(|| field(b, a))
}

/// The smallest distance between a face of `a` and a face of `b`, from db 3.
fn measured(stored: &Stored, a: &str, b: &str) -> Option<f64> {
    let (fa, fb) = (stored.faces.get(a)?, stored.faces.get(b)?);
    fa.iter().flat_map(|x| fb.iter().map(move |y| x.distance(y))).min_by(f64::total_cmp)
}

/// Adds the link `a`-`b` both ways with each side's distance text.
fn link(images: &mut BTreeMap<String, Entry>, a: &str, b: &str, text_a: String, text_b: String) {
    let entry = images.entry(a.to_owned()).or_default();
    entry.links.insert(b.to_owned());
    entry.distances.insert(b.to_owned(), text_a);
    let entry = images.entry(b.to_owned()).or_default();
    entry.links.insert(a.to_owned());
    entry.distances.insert(a.to_owned(), text_b);
}

/// Stricter: the stored links within `tolerance`, each side keeping its stored text.
fn filter(stored: &Stored, tolerance: f64) -> BTreeMap<String, Entry> {
    let mut images = BTreeMap::new();
    for (a, linked) in &stored.links {
        for b in linked.iter().filter(|b| *b != a) {
            // Each pair once; a one-sided link is seen from its only side.
            if b < a && stored.links.get(b).is_some_and(|back| back.contains(a)) {
                continue;
            }
            let (text_ab, text_ba) = (stored_distance(stored, a, b), stored_distance(stored, b, a));
            let distance = match (text_ab, text_ba) {
                (Some((_, x)), Some((_, y))) => x.min(y),
                _ => match measured(stored, a, b) {
                    Some(d) => d,
                    // Neither a distance nor faces: nothing justifies the link.
                    None => continue,
                },
            };
            if distance <= tolerance {
                let text = |t: Option<(&str, f64)>| t.map_or_else(|| distance_text(distance), |(s, _)| s.to_owned());
                link(&mut images, a, b, text(text_ab), text(text_ba));
            }
        }
    }
    images
}

/// Looser: every pair of images with faces within `tolerance`, by the matching kernel.
fn kernel(stored: &Stored, tolerance: f64, threads: usize) -> BTreeMap<String, Entry> {
    let found = brute_force_distances(&stored.faces, tolerance, threads);
    let mut images = BTreeMap::new();
    for (a, near) in &found {
        for (b, d) in near {
            // The kernel is symmetric; should a pair differ in the last bit, both sides
            // take the smaller value, as the workers' commit keeps the smaller one.
            let back = found.get(b).and_then(|m| m.get(a)).copied().unwrap_or(*d);
            let text = distance_text(d.min(back));
            link(&mut images, a, b, text.clone(), text);
        }
    }
    images
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::ENCODING_DIMS;

    /// A face `r` away from the origin along axis `axis`.
    fn face(axis: usize, r: f64) -> Encoding {
        let mut v = [0.0; ENCODING_DIMS];
        v[axis] = r;
        Encoding(v)
    }

    /// o at the origin; a, b, c at 0.3, 0.45, 0.55 from it on their own axes, so
    /// a-b 0.54, a-c 0.63, b-c 0.71; z far from all.
    fn faces() -> BTreeMap<String, Vec<Encoding>> {
        BTreeMap::from([
            ("o".to_owned(), vec![Encoding([0.0; ENCODING_DIMS])]),
            ("a".to_owned(), vec![face(1, 0.3)]),
            ("b".to_owned(), vec![face(2, 0.45)]),
            ("c".to_owned(), vec![face(3, 0.55), face(9, 5.0)]),
            ("z".to_owned(), vec![face(4, 3.0)]),
        ])
    }

    /// What the kernel stores at `tolerance`, as a snapshot.
    fn fresh(tolerance: f64) -> Stored {
        let mut s = Stored { faces: faces(), ..Stored::default() };
        let plan = plan(&s, Method::Kernel, tolerance, 2);
        for (h, e) in plan.images {
            s.links.insert(h.clone(), e.links);
            s.distances.insert(h, e.distances);
        }
        s
    }

    fn apply(s: &mut Stored, changes: &[Change]) {
        for c in changes {
            let links = s.links.entry(c.hash.clone()).or_default();
            links.extend(c.link.iter().cloned());
            links.retain(|b| !c.unlink.contains(b));
            let d = s.distances.entry(c.hash.clone()).or_default();
            d.extend(c.set.iter().cloned());
            d.retain(|b, _| !c.unset.contains(b));
        }
        s.links.retain(|_, v| !v.is_empty());
        s.distances.retain(|_, v| !v.is_empty());
    }

    fn pairs(s: &Stored) -> Vec<(String, String)> {
        s.links
            .iter()
            .flat_map(|(a, l)| l.iter().filter(move |b| a < *b).map(move |b| (a.clone(), b.clone())))
            .collect()
    }

    #[test]
    fn the_method_is_the_filter_only_when_not_looser_than_a_recorded_tolerance() {
        assert_eq!(Method::choose(Some(0.6), 0.5), Method::Filter);
        assert_eq!(Method::choose(Some(0.6), 0.6), Method::Filter);
        assert_eq!(Method::choose(Some(0.5), 0.6), Method::Kernel);
        assert_eq!(Method::choose(None, 0.5), Method::Kernel);
    }

    #[test]
    fn the_kernel_links_pairs_within_the_tolerance_both_ways_with_their_smallest_distance() {
        let s = fresh(0.6);
        let want = [("a", "b"), ("a", "o"), ("b", "o"), ("c", "o")];
        assert_eq!(pairs(&s), want.map(|(a, b)| (a.to_owned(), b.to_owned())).to_vec());
        assert_eq!(s.distances["o"]["c"], "0.55");
        assert_eq!(s.distances["c"]["o"], "0.55");
        assert_eq!(s.distances["a"]["b"], distance_text(face(1, 0.3).distance(&face(2, 0.45))));
        assert!(s.links.values().flatten().all(|b| s.links.contains_key(b)));
        assert!(s.links.iter().all(|(a, l)| !l.contains(a)));
    }

    #[test]
    fn stricter_then_looser_gives_exactly_what_a_fresh_run_stores() {
        let (at_06, at_05) = (fresh(0.6), fresh(0.5));
        let mut s = at_06.clone();
        let stricter = plan(&s, Method::choose(Some(0.6), 0.5), 0.5, 2);
        assert_eq!(stricter.method, Method::Filter);
        let changes = stricter.changes(&s);
        apply(&mut s, &changes);
        assert_eq!((&s.links, &s.distances), (&at_05.links, &at_05.distances));
        let looser = plan(&s, Method::choose(Some(0.5), 0.6), 0.6, 2);
        assert_eq!(looser.method, Method::Kernel);
        let changes = looser.changes(&s);
        apply(&mut s, &changes);
        assert_eq!((&s.links, &s.distances), (&at_06.links, &at_06.distances));
        // Nothing left to change at the same tolerance, either way.
        assert!(plan(&s, Method::Filter, 0.6, 2).changes(&s).is_empty());
        assert!(plan(&s, Method::Kernel, 0.6, 2).changes(&s).is_empty());
    }

    #[test]
    fn the_filter_compares_no_face_and_keeps_the_stored_text() {
        let mut s = fresh(0.6);
        s.faces.clear();
        // Text another program wrote: kept as it is when the link stays.
        s.distances.get_mut("o").unwrap().insert("a".into(), "3e-1".into());
        assert!(!filter_needs_faces(&s));
        let p = plan(&s, Method::Filter, 0.5, 2);
        assert_eq!(p.images["o"].links, BTreeSet::from(["a".to_owned(), "b".to_owned()]));
        assert_eq!(p.images["o"].distances["a"], "3e-1");
        assert_eq!(p.images["a"].distances["o"], "0.3");
        assert_eq!(p.pairs(), 2);
    }

    #[test]
    fn the_filter_measures_links_without_a_distance_and_drops_what_nothing_justifies() {
        let mut s = fresh(0.6);
        // a-o lost its distances, b-o only one side's; z-o linked by another program.
        s.distances.get_mut("o").unwrap().remove("a");
        s.distances.get_mut("a").unwrap().remove("o");
        s.distances.get_mut("b").unwrap().remove("o");
        s.links.entry("z".into()).or_default().insert("o".into());
        s.links.get_mut("o").unwrap().insert("z".into());
        assert!(filter_needs_faces(&s));
        let p = plan(&s, Method::Filter, 0.5, 2);
        assert_eq!(p.images["o"].distances["a"], "0.3");
        assert_eq!(p.images["b"].distances["o"], "0.45");
        assert!(!p.images.contains_key("z"), "z is 3.0 away: {p:?}");
        // Without faces, a link with no distance has nothing to stand on.
        s.faces.clear();
        let p = plan(&s, Method::Filter, 0.5, 2);
        assert!(!p.images["o"].links.contains("a"));
        assert!(p.images["o"].links.contains("b"));
    }

    #[test]
    fn self_links_one_sided_links_and_stray_distances_are_cleaned() {
        let mut s = fresh(0.6);
        s.links.get_mut("a").unwrap().insert("a".into());
        s.links.get_mut("b").unwrap().remove("a");
        s.distances.entry("z".into()).or_default().insert("o".into(), "0.1".into());
        let p = plan(&s, Method::Filter, 0.6, 2);
        let changes = p.changes(&s);
        apply(&mut s, &changes);
        let clean = fresh(0.6);
        assert_eq!((&s.links, &s.distances), (&clean.links, &clean.distances));
        let by_hash: BTreeMap<&str, &Change> = changes.iter().map(|c| (c.hash.as_str(), c)).collect();
        assert_eq!(by_hash["a"].unlink, vec!["a".to_owned()]);
        assert_eq!(by_hash["b"].link, vec!["a".to_owned()]);
        assert_eq!(by_hash["z"].unset, vec!["o".to_owned()]);
        assert_eq!(changes.len(), 3);
    }
}
