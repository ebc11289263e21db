//! The wire format: a delivery's body and headers parsed into a validated [`ScanRequest`].
//!
//! Two forms are accepted (docs/PROTOCOL.md has the full text and a Python producer):
//! - JSON: `{"hash": "<id>", "name": "<file name or URL>", "image": "<base64>"}`, where
//!   `image` may also be jsonpickle's bytes form `{"py/b64": "<base64>"}` and `hash` may be
//!   left out (then it is the lowercase hex SHA-256 of the image bytes);
//! - raw: the body is the image itself, with AMQP headers `name` (required) and `hash`.
//!
//! Nothing downstream of [`ScanRequest::parse`] sees raw JSON.

use crate::hash::{ImageHash, InvalidHash};
use base64::Engine as _;
use serde_json::Value;
use std::collections::BTreeMap;

/// Size limits enforced while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageLimits {
    /// Largest accepted body, in bytes.
    pub max_message_bytes: usize,
    /// Longest accepted name, in bytes of UTF-8.
    pub max_name_bytes: usize,
}

impl Default for MessageLimits {
    fn default() -> Self {
        Self { max_message_bytes: 64 << 20, max_name_bytes: 4096 }
    }
}

/// Where the request's hash came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashSource {
    /// The producer sent it.
    Given,
    /// SHA-256 of the image bytes, because the producer sent none.
    Computed,
}

/// One image to scan: validated, decoded from base64, ready for the orchestrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRequest {
    /// The image's key in every database.
    pub hash: ImageHash,
    /// Where the image came from (file name or URL); stored as given.
    pub name: String,
    /// The encoded image file (JPEG, PNG, ...), not yet decoded.
    pub image: Vec<u8>,
    /// Whether `hash` was sent or computed.
    pub hash_source: HashSource,
}

/// Why a message can never be processed. Each variant is a dead-letter reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadMessage {
    /// Zero-length body.
    #[error("message body is empty")]
    EmptyBody,
    /// Body over the limit.
    #[error("message body is {size} bytes, the limit is {limit}")]
    TooLarge {
        /// Body size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// Body starts like JSON but is not valid JSON.
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    /// JSON, but not an object.
    #[error("JSON body must be an object, got {0}")]
    NotAnObject(&'static str),
    /// A required field is absent.
    #[error("JSON body has no `{0}` field")]
    MissingField(&'static str),
    /// A field has the wrong JSON type.
    #[error("`{field}` must be {expected}, got {got}")]
    WrongType {
        /// The field.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
        /// The JSON type found.
        got: &'static str,
    },
    /// `image` is a string but not base64.
    #[error("`image` is not valid base64: {0}")]
    InvalidBase64(String),
    /// `image` decodes to zero bytes.
    #[error("`image` is empty")]
    EmptyImage,
    /// The hash is unusable as a key.
    #[error("invalid `hash`: {0}")]
    InvalidHash(#[from] InvalidHash),
    /// Name empty, too long or not UTF-8.
    #[error("invalid `name`: {0}")]
    InvalidName(String),
    /// A raw (non-JSON) body came without the `name` header.
    #[error("body is not JSON and has no `name` header (a raw image body needs headers `name` and optionally `hash`)")]
    MissingNameHeader,
}

impl ScanRequest {
    /// Parses a delivery. `headers` are the AMQP headers that carry text.
    pub fn parse(body: &[u8], headers: &BTreeMap<String, String>, limits: &MessageLimits) -> Result<Self, BadMessage> {
        if body.is_empty() {
            return Err(BadMessage::EmptyBody);
        }
        if body.len() > limits.max_message_bytes {
            return Err(BadMessage::TooLarge { size: body.len(), limit: limits.max_message_bytes });
        }
        let first = body.iter().find(|b| !b.is_ascii_whitespace()).copied();
        // No image format starts with `{` or `[`, so this cannot misread a raw image.
        if matches!(first, Some(b'{' | b'[')) {
            Self::parse_json(body, limits)
        } else if let Some(name) = headers.get("name") {
            let hash = headers.get("hash").map(|h| ImageHash::parse(h)).transpose()?;
            Self::build(hash, name.clone(), body.to_vec(), limits)
        } else {
            Err(BadMessage::MissingNameHeader)
        }
    }

    fn parse_json(body: &[u8], limits: &MessageLimits) -> Result<Self, BadMessage> {
        let value: Value = serde_json::from_slice(body).map_err(|e| BadMessage::InvalidJson(e.to_string()))?;
        let Value::Object(mut object) = value else {
            return Err(BadMessage::NotAnObject(json_type(&value)));
        };
        let name = match object.remove("name") {
            None | Some(Value::Null) => return Err(BadMessage::MissingField("name")),
            Some(Value::String(s)) => s,
            Some(other) => return Err(wrong_type("name", "a string", &other)),
        };
        let hash = match object.remove("hash") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(ImageHash::parse(&s)?),
            Some(other) => return Err(wrong_type("hash", "a string", &other)),
        };
        let image = match object.remove("image") {
            None | Some(Value::Null) => return Err(BadMessage::MissingField("image")),
            Some(Value::String(s)) => decode_base64(&s)?,
            Some(Value::Object(mut pickled)) => match pickled.remove("py/b64") {
                Some(Value::String(s)) => decode_base64(&s)?,
                Some(other) => {
                    return Err(wrong_type("image", "a base64 string in `py/b64`", &other));
                }
                None => {
                    return Err(BadMessage::WrongType {
                        field: "image",
                        expected: "a base64 string or {\"py/b64\": \"<base64>\"}",
                        got: "an object without `py/b64`",
                    });
                }
            },
            Some(other) => {
                return Err(wrong_type("image", "a base64 string or {\"py/b64\": \"<base64>\"}", &other));
            }
        };
        Self::build(hash, name, image, limits)
    }

    fn build(
        hash: Option<ImageHash>,
        name: String,
        image: Vec<u8>,
        limits: &MessageLimits,
    ) -> Result<Self, BadMessage> {
        if image.is_empty() {
            return Err(BadMessage::EmptyImage);
        }
        if name.is_empty() {
            return Err(BadMessage::InvalidName("name is empty".into()));
        }
        if name.len() > limits.max_name_bytes {
            return Err(BadMessage::InvalidName(format!(
                "name is {} bytes long, the limit is {}",
                name.len(),
                limits.max_name_bytes
            )));
        }
        let (hash, hash_source) = match hash {
            Some(h) => (h, HashSource::Given),
            None => (ImageHash::of_bytes(&image), HashSource::Computed),
        };
        Ok(Self { hash, name, image, hash_source })
    }
}

/// Base64 as Python writes it: standard alphabet, padding optional, and the newlines of
/// `base64.encodebytes` allowed. The URL-safe alphabet is accepted too.
fn decode_base64(s: &str) -> Result<Vec<u8>, BadMessage> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const CONFIG: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, CONFIG);
    let compact: String = s.chars().filter(|c| !matches!(c, '\n' | '\r' | ' ' | '\t')).collect();
    let engine = if compact.contains(['-', '_']) { &URL_SAFE } else { &STANDARD };
    engine.decode(compact.as_bytes()).map_err(|e| BadMessage::InvalidBase64(e.to_string()))
}

fn wrong_type(field: &'static str, expected: &'static str, got: &Value) -> BadMessage {
    BadMessage::WrongType { field, expected, got: json_type(got) }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn parse(body: &str) -> Result<ScanRequest, BadMessage> {
        ScanRequest::parse(body.as_bytes(), &BTreeMap::new(), &MessageLimits::default())
    }

    #[test]
    fn json_with_hash_name_and_base64() {
        let r = parse(r#"{"hash":"abc","name":"a.jpg","image":"aGVsbG8="}"#).unwrap();
        assert_eq!(r.hash.as_str(), "abc");
        assert_eq!(r.name, "a.jpg");
        assert_eq!(r.image, b"hello");
        assert_eq!(r.hash_source, HashSource::Given);
    }

    #[test]
    fn jsonpickle_bytes_form_and_missing_hash() {
        let r = parse(r#"{"name":"a.jpg","image":{"py/b64":"aGVsbG8=\n"}}"#).unwrap();
        assert_eq!(r.image, b"hello");
        assert_eq!(r.hash, ImageHash::of_bytes(b"hello"));
        assert_eq!(r.hash_source, HashSource::Computed);
    }

    #[test]
    fn python_encodebytes_newlines_and_missing_padding() {
        let data = vec![7u8; 200];
        let mut b64 = STANDARD.encode(&data);
        b64.insert_str(76, "\\n"); // JSON-escaped, as json.dumps writes it
        let trimmed = b64.trim_end_matches('=');
        let r = parse(&format!(r#"{{"name":"n","image":"{trimmed}"}}"#)).unwrap();
        assert_eq!(r.image, data);
    }

    #[test]
    fn raw_body_with_headers() {
        let mut headers = BTreeMap::new();
        headers.insert("name".to_string(), "x.png".to_string());
        let r = ScanRequest::parse(b"\x89PNG....", &headers, &MessageLimits::default()).unwrap();
        assert_eq!(r.name, "x.png");
        assert_eq!(r.hash, ImageHash::of_bytes(b"\x89PNG...."));
        headers.insert("hash".to_string(), "h1".to_string());
        let r = ScanRequest::parse(b"\x89PNG....", &headers, &MessageLimits::default()).unwrap();
        assert_eq!(r.hash.as_str(), "h1");
    }

    #[test]
    fn every_malformed_variant_has_its_own_error() {
        let limits = MessageLimits::default();
        let none = BTreeMap::new();
        assert_eq!(ScanRequest::parse(b"", &none, &limits), Err(BadMessage::EmptyBody));
        assert_eq!(ScanRequest::parse(b"\xff\xd8\xff", &none, &limits), Err(BadMessage::MissingNameHeader));
        assert!(matches!(parse("{nope"), Err(BadMessage::InvalidJson(_))));
        assert_eq!(parse("[1,2]"), Err(BadMessage::NotAnObject("an array")));
        assert_eq!(parse(r#"{"image":"aGk="}"#), Err(BadMessage::MissingField("name")));
        assert_eq!(parse(r#"{"name":"n"}"#), Err(BadMessage::MissingField("image")));
        assert!(matches!(
            parse(r#"{"name":5,"image":"aGk="}"#),
            Err(BadMessage::WrongType { field: "name", got: "a number", .. })
        ));
        assert!(matches!(
            parse(r#"{"name":"n","hash":[1],"image":"aGk="}"#),
            Err(BadMessage::WrongType { field: "hash", got: "an array", .. })
        ));
        assert!(matches!(
            parse(r#"{"name":"n","image":42}"#),
            Err(BadMessage::WrongType { field: "image", got: "a number", .. })
        ));
        assert!(matches!(parse(r#"{"name":"n","image":{"x":1}}"#), Err(BadMessage::WrongType { field: "image", .. })));
        assert!(matches!(parse(r#"{"name":"n","image":"!!!"}"#), Err(BadMessage::InvalidBase64(_))));
        assert_eq!(parse(r#"{"name":"n","image":""}"#), Err(BadMessage::EmptyImage));
        assert!(matches!(parse(r#"{"name":"","image":"aGk="}"#), Err(BadMessage::InvalidName(_))));
        assert!(matches!(
            parse(r#"{"name":"n","hash":"","image":"aGk="}"#),
            Err(BadMessage::InvalidHash(InvalidHash::Empty))
        ));
        let long = "x".repeat(5000);
        assert!(matches!(parse(&format!(r#"{{"name":"{long}","image":"aGk="}}"#)), Err(BadMessage::InvalidName(_))));
        let small = MessageLimits { max_message_bytes: 10, ..limits };
        assert_eq!(ScanRequest::parse(&[b'{'; 11], &none, &small), Err(BadMessage::TooLarge { size: 11, limit: 10 }));
    }

    proptest::proptest! {
        #[test]
        fn any_body_and_headers_give_a_request_or_a_reason_never_a_panic(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            name in proptest::option::of(".{0,20}"),
            hash in proptest::option::of(".{0,20}"),
        ) {
            let mut headers = BTreeMap::new();
            if let Some(n) = name { headers.insert("name".to_owned(), n); }
            if let Some(h) = hash { headers.insert("hash".to_owned(), h); }
            if let Ok(r) = ScanRequest::parse(&body, &headers, &MessageLimits::default()) {
                proptest::prop_assert!(!r.image.is_empty() && !r.name.is_empty());
            }
        }

        #[test]
        fn json_of_any_shape_is_parsed_or_refused(
            name in proptest::option::of(proptest::prelude::any::<String>()),
            image in proptest::option::of("[A-Za-z0-9+/=\\n]{0,40}"),
            hash in proptest::option::of(proptest::prelude::any::<String>()),
        ) {
            let mut object = serde_json::Map::new();
            if let Some(n) = name { object.insert("name".into(), n.into()); }
            if let Some(i) = image { object.insert("image".into(), i.into()); }
            if let Some(h) = hash { object.insert("hash".into(), h.into()); }
            let body = serde_json::Value::Object(object).to_string();
            if let Ok(r) = ScanRequest::parse(body.as_bytes(), &BTreeMap::new(), &MessageLimits::default()) {
                proptest::prop_assert!(ImageHash::parse(r.hash.as_str()).is_ok());
            }
        }
    }

    #[test]
    fn names_are_data_even_with_control_characters() {
        let r = parse(r#"{"name":"a\u001b[31m\nb","image":"aGk="}"#).unwrap();
        assert_eq!(r.name, "a\u{1b}[31m\nb");
    }
}

/// The JSON body producers send: `{"hash": ..., "name": ..., "image": <base64>}`. The one
/// builder used by `facerec submit`, the tests and the benchmarks.
pub fn json_body(hash: &ImageHash, name: &str, image: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    serde_json::json!({
        "hash": hash.as_str(),
        "name": name,
        "image": base64::engine::general_purpose::STANDARD.encode(image),
    })
    .to_string()
    .into_bytes()
}
