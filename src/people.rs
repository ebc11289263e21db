//! People: faces linked by distance <= tolerance, grouped transitively (connected
//! components), across every image. What `facerec scan` prints after the image list.

use crate::face::Encoding;
use crate::hash::ImageHash;

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
    let mut parent: Vec<usize> = (0..faces.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for i in 0..faces.len() {
        for j in (i + 1)..faces.len() {
            if faces[i].1.distance(&faces[j].1) <= tolerance {
                let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                if a != b {
                    parent[a.max(b)] = a.min(b);
                }
            }
        }
    }
    let mut groups: Vec<Vec<FaceRef>> = Vec::new();
    let mut group_of_root = std::collections::HashMap::new();
    for (i, (face, _)) in faces.iter().enumerate() {
        let r = root(&mut parent, i);
        let g = *group_of_root.entry(r).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(face.clone());
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
    groups
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
}
