//! Matches: symmetric, never with itself, across several faces per image.

use facerec::face::EncodedImage;
use facerec::hash::ImageHash;
use facerec::ports::FaceIndex;
use facerec_fakes::testkit::fixtures::{encoded, hash_of};
use facerec_fakes::testkit::{Harness, message};
use std::collections::BTreeSet;

const OBAMAS: [&str; 6] =
    ["obama.jpg", "obama2.jpg", "obama3.jpg", "32bit.png", "obama_partial_face.jpg", "obama_partial_face2.jpg"];

fn set(files: &[&str]) -> BTreeSet<ImageHash> {
    files.iter().map(|f| hash_of(f)).collect()
}

#[tokio::test]
async fn obama_images_link_to_each_other_and_biden_to_none() {
    let h = Harness::new();
    for file in OBAMAS.iter().chain(["biden.jpg"].iter()) {
        h.push(file, file);
    }
    h.run().await;
    for file in OBAMAS {
        let others: Vec<&str> = OBAMAS.iter().copied().filter(|f| *f != file).collect();
        assert_eq!(h.matches_of(&hash_of(file)).await, set(&others), "matches of {file}");
    }
    assert!(h.matches_of(&hash_of("biden.jpg")).await.is_empty());
}

#[tokio::test]
async fn matches_are_symmetric_whatever_the_order() {
    // Reverse order and one at a time: the relation must not depend on arrival order.
    let mut h = Harness::new();
    h.options.concurrency = 1;
    for file in ["biden.jpg"].iter().chain(OBAMAS.iter().rev()) {
        h.push(file, file);
    }
    h.run().await;
    let all: Vec<&str> = OBAMAS.iter().copied().chain(["biden.jpg"]).collect();
    for a in &all {
        for b in &all {
            let ab = h.matches_of(&hash_of(a)).await.contains(&hash_of(b));
            let ba = h.matches_of(&hash_of(b)).await.contains(&hash_of(a));
            assert_eq!(ab, ba, "{a} ~ {b} must be symmetric");
        }
        assert!(!h.matches_of(&hash_of(a)).await.contains(&hash_of(a)), "{a} matched itself");
    }
}

#[tokio::test]
async fn distances_are_the_smallest_face_distance() {
    let h = Harness::new();
    h.push("obama.jpg", "a");
    h.push("obama2.jpg", "b");
    h.run().await;
    let record = h.index.image(&hash_of("obama.jpg")).await.unwrap().unwrap();
    let expected = encoded("obama.jpg").faces[0].encoding.distance(&encoded("obama2.jpg").faces[0].encoding);
    assert_eq!(record.matches.len(), 1);
    assert_eq!(record.matches[0].distance, expected);
    assert!(expected <= 0.6);
}

#[tokio::test]
async fn an_image_with_two_people_matches_images_of_either() {
    // A group photo: obama's face and biden's face in one image.
    let h = Harness::new();
    let group = ImageHash::parse("group-photo").unwrap();
    let mut faces = encoded("obama.jpg").faces;
    faces.extend(encoded("biden.jpg").faces);
    h.encoder
        .set(&group, Ok(EncodedImage { width: 2000, height: 1200, faces, times: Default::default(), thumbnail: None }));
    h.source.push(message(group.as_str(), "group.jpg"));
    h.push("obama2.jpg", "obama2.jpg");
    h.push("biden.jpg", "biden.jpg");
    h.run().await;

    assert_eq!(h.matches_of(&group).await, set(&["obama2.jpg", "biden.jpg"]));
    assert_eq!(h.matches_of(&hash_of("obama2.jpg")).await, BTreeSet::from([group.clone()]));
    assert_eq!(h.matches_of(&hash_of("biden.jpg")).await, BTreeSet::from([group.clone()]));
    let record = h.index.image(&group).await.unwrap().unwrap();
    assert_eq!(record.faces.len(), 2);
}

#[tokio::test]
async fn a_stricter_tolerance_links_fewer_images() {
    let mut h = Harness::new();
    h.settings.tolerance = 0.3;
    for file in OBAMAS {
        h.push(file, file);
    }
    h.run().await;
    // obama2.jpg and 32bit.png are the same picture (0.038 apart); obama3 is > 0.3 from all.
    assert_eq!(h.matches_of(&hash_of("obama2.jpg")).await, set(&["32bit.png"]));
    assert!(h.matches_of(&hash_of("obama3.jpg")).await.is_empty());
}

#[tokio::test]
async fn an_image_without_faces_is_stored_known_and_matches_nothing() {
    let h = Harness::new();
    let empty = ImageHash::parse("landscape").unwrap();
    h.encoder.set(
        &empty,
        Ok(EncodedImage { width: 10, height: 10, faces: vec![], times: Default::default(), thumbnail: None }),
    );
    h.source.push(message(empty.as_str(), "landscape.jpg"));
    h.run().await;
    h.source.push(message(empty.as_str(), "landscape-copy.jpg"));
    h.run().await;
    assert!(h.index.is_known(&empty).await.unwrap());
    assert_eq!(h.encoder.calls().len(), 1, "no faces is still a result: not scanned again");
    assert!(h.matches_of(&empty).await.is_empty());
}
