//! The one builder of seed-style JSON messages every test binary publishes or queues.

/// The `image` field of every built message: base64 of `stand-in`. The image bytes do not
/// matter: the encoders these tests run (fake or recorded) answer by hash.
const STAND_IN_IMAGE: &str = "c3RhbmQtaW4=";

/// A seed-style JSON message (`hash`, `name`, base64 `image`) for an image the test's
/// encoder knows by hash.
pub fn message(hash: &str, name: &str) -> Vec<u8> {
    serde_json::json!({ "hash": hash, "name": name, "image": STAND_IN_IMAGE }).to_string().into_bytes()
}
