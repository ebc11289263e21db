//! People: faces linked by distance <= tolerance, grouped transitively (connected
//! components), across every image. What `facerec scan` prints after the image list, and
//! what `GET /api/v1/people` returns (comparing only the faces of linked images).

use crate::face::Encoding;
use crate::hash::ImageHash;
use std::collections::HashMap;

/// One face of one image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FaceRef {
    /// The image.
    pub hash: ImageHash,
    /// Index of the face within the image.
    pub face: usize,
}

/// Groups faces into people. Each group lists its faces in input order; groups are sorted
/// largest first. O(n^2) distance checks: fine for the thousands of faces of a photo
/// folder, not meant for the million-face worker index.
pub fn group(faces: &[(FaceRef, Encoding)], tolerance: f64) -> Vec<Vec<FaceRef>> {
    let mut sets = Components::new(faces.len());
    for i in 0..faces.len() {
        for j in (i + 1)..faces.len() {
            if faces[i].1.distance(&faces[j].1) <= tolerance {
                sets.join(i, j);
            }
        }
    }
    sets.groups(faces)
}

/// Groups faces into people comparing only the faces of images in `links` (pairs of
/// image hashes, such as the matches the index stored): the work is the faces of linked
/// images, not every pair of faces. Same output as [`group`] when every pair of images
/// with faces within `tolerance` is linked.
pub fn group_linked(
    faces: &[(FaceRef, Encoding)],
    links: &[(ImageHash, ImageHash)],
    tolerance: f64,
) -> Vec<Vec<FaceRef>> {
    let mut by_image: HashMap<&ImageHash, Vec<usize>> = HashMap::new();
    for (i, (face, _)) in faces.iter().enumerate() {
        by_image.entry(&face.hash).or_default().push(i);
    }
    let mut sets = Components::new(faces.len());
    for (a, b) in links.iter().filter(|(a, b)| a != b) {
        let (Some(left), Some(right)) = (by_image.get(a), by_image.get(b)) else { continue };
        for &i in left {
            for &j in right {
                if faces[i].1.distance(&faces[j].1) <= tolerance {
                    sets.join(i, j);
                }
            }
        }
    }
    sets.groups(faces)
}

/// Union-find over face positions.
struct Components(Vec<usize>);

impl Components {
    fn new(n: usize) -> Self {
        Self((0..n).collect())
    }

    fn root(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }

    fn join(&mut self, i: usize, j: usize) {
        let (a, b) = (self.root(i), self.root(j));
        if a != b {
            self.0[a.max(b)] = a.min(b);
        }
    }

    /// The components, faces in input order, largest first.
    fn groups(mut self, faces: &[(FaceRef, Encoding)]) -> Vec<Vec<FaceRef>> {
        let mut groups: Vec<Vec<FaceRef>> = Vec::new();
        let mut group_of_root = HashMap::new();
        for (i, (face, _)) in faces.iter().enumerate() {
            let r = self.root(i);
            let g = *group_of_root.entry(r).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(face.clone());
        }
        groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::ENCODING_DIMS;

    fn face(hash: &str, face: usize, x: f64) -> (FaceRef, Encoding) {
        let mut v = [0.0; ENCODING_DIMS];
        v[0] = x;
        (FaceRef { hash: ImageHash::parse(hash).unwrap(), face }, Encoding(v))
    }

    #[test]
    fn links_transitively_but_keeps_faces_of_one_image_apart() {
        // a0~b0 (0.5), b0~c0 (0.5), so a0, b0, c0 are one person although a0-c0 is 1.0;
        // a1 is far from everyone: a person of its own, although it shares image a.
        let faces = vec![face("a", 0, 0.0), face("a", 1, 5.0), face("b", 0, 0.5), face("c", 0, 1.0)];
        let groups = group(&faces, 0.6);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].len(), 3);
        assert_eq!(groups[1], vec![faces[1].0.clone()]);
    }

    #[test]
    fn linked_grouping_compares_only_linked_images() {
        let faces = vec![face("a", 0, 0.0), face("a", 1, 5.0), face("b", 0, 0.5), face("c", 0, 1.0)];
        let h = |s: &str| ImageHash::parse(s).unwrap();
        // Every close pair linked: the same people as comparing everything.
        let all = vec![(h("a"), h("b")), (h("b"), h("c"))];
        assert_eq!(group_linked(&faces, &all, 0.6), group(&faces, 0.6));
        // b-c not linked: c is apart although its face is close to b's.
        let groups = group_linked(&faces, &all[..1], 0.6);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0], vec![faces[0].0.clone(), faces[2].0.clone()]);
    }
}
