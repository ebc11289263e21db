//! A hash already seen is not scanned again; only its name is added.

use facerec::ports::FaceIndex;
use facerec_fakes::testkit::Harness;
use facerec_fakes::testkit::fixtures::hash_of;
use std::collections::BTreeSet;

#[tokio::test]
async fn known_hash_is_not_encoded_again_and_gains_the_name() {
    let h = Harness::new();
    h.push("obama.jpg", "photos/obama.jpg");
    h.run().await;
    h.push("obama.jpg", "https://example.org/obama-copy.jpg");
    h.run().await;

    let obama = hash_of("obama.jpg");
    assert_eq!(h.encoder.calls(), vec![obama.clone()], "encoded exactly once");
    let record = h.index.image(&obama).await.unwrap().unwrap();
    assert_eq!(
        record.names,
        BTreeSet::from(["photos/obama.jpg".to_string(), "https://example.org/obama-copy.jpg".to_string()])
    );
    assert_eq!(record.faces.len(), 1);
    for name in ["photos/obama.jpg", "https://example.org/obama-copy.jpg"] {
        assert_eq!(h.index.hash_of(name).await.unwrap(), Some(obama.clone()), "name -> hash for {name}");
    }
    assert_eq!(h.source.acked(), 2);
}

#[tokio::test]
async fn the_same_name_twice_changes_nothing() {
    let mut h = Harness::new();
    h.options.concurrency = 1;
    h.push("biden.jpg", "b.jpg");
    h.push("biden.jpg", "b.jpg");
    h.run().await;
    let record = h.index.image(&hash_of("biden.jpg")).await.unwrap().unwrap();
    assert_eq!(record.names.len(), 1);
    assert_eq!(h.encoder.calls().len(), 1);
}
