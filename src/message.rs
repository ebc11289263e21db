//! The wire format: a delivery's body and headers parsed into a validated [`ScanRequest`].
//!
//! Two forms are accepted (docs/PROTOCOL.md has the full text and a Python producer):
//! - JSON: `{"hash": "<id>", "name": "<file name or URL>", "image": "<base64>"}`, where
//!   `image` may also be jsonpickle's bytes form `{"py/b64": "<base64>"}` and `hash` may be
//!   left out (then it is the lowercase hex SHA-256 of the image bytes);
//! - raw: the body is the image itself, with AMQP headers `name` (required) and `hash`.
//!
//! Nothing downstream of [`ScanRequest::parse`] sees raw JSON.
//!
//! Memory: parsing keeps only the three used fields; every other member is skipped
//! unread, so what parsing allocates is the decoded image (plus a copy of its base64 text
//! when that has escapes or newlines). A 63 MB message padded with a 31 M-element array
//! allocated 1.08 GB with a generic JSON tree, 1.05 MB now (tests/message_memory.rs). The
//! body itself is the delivery's, bounded by the size limit and the prefetch count.

use crate::hash::{ImageHash, InvalidHash};
use base64::Engine as _;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

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
        let (name, hash, image) = match serde_json::from_slice(body) {
            Ok(JsonBody::Object { name, hash, image }) => (name, hash, image),
            Ok(JsonBody::NotAnObject(got)) => return Err(BadMessage::NotAnObject(got)),
            Err(e) => return Err(BadMessage::InvalidJson(e.to_string())),
        };
        let name = match name {
            None | Some(Field::Null) => return Err(BadMessage::MissingField("name")),
            Some(Field::Text(s)) => s.into_owned(),
            Some(other) => return Err(wrong_type("name", "a string", &other)),
        };
        let hash = match hash {
            None | Some(Field::Null) => None,
            Some(Field::Text(s)) => Some(ImageHash::parse(&s)?),
            Some(other) => return Err(wrong_type("hash", "a string", &other)),
        };
        let image = match image {
            None | Some(Field::Null) => return Err(BadMessage::MissingField("image")),
            Some(Field::Text(s)) => decode_base64(&s)?,
            Some(Field::Object { py_b64: Some(inner) }) => match *inner {
                Field::Text(s) => decode_base64(&s)?,
                other => return Err(wrong_type("image", "a base64 string in `py/b64`", &other)),
            },
            Some(Field::Object { py_b64: None }) => {
                return Err(BadMessage::WrongType {
                    field: "image",
                    expected: "a base64 string or {\"py/b64\": \"<base64>\"}",
                    got: "an object without `py/b64`",
                });
            }
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
    const SPACE: [char; 4] = ['\n', '\r', ' ', '\t'];
    // Copied only when there is whitespace to drop: the image is the message's bulk.
    let compact: Cow<'_, str> = if s.contains(SPACE) {
        Cow::Owned(s.chars().filter(|c| !SPACE.contains(c)).collect())
    } else {
        Cow::Borrowed(s)
    };
    let engine = if compact.contains(['-', '_']) { &URL_SAFE } else { &STANDARD };
    engine.decode(compact.as_bytes()).map_err(|e| BadMessage::InvalidBase64(e.to_string()))
}

fn wrong_type(field: &'static str, expected: &'static str, got: &Field<'_>) -> BadMessage {
    BadMessage::WrongType { field, expected, got: got.json_type() }
}

/// A JSON body as the worker reads it: the three fields it uses, and nothing else. Every
/// other field is skipped as it is parsed ([`IgnoredAny`]), never stored, so an unused
/// field costs no memory however large it is (a generic `serde_json::Value` tree costs
/// ~32 bytes per array element: 1.1 GB for a 62 MB message padded with zeros).
enum JsonBody<'a> {
    Object {
        name: Option<Field<'a>>,
        hash: Option<Field<'a>>,
        image: Option<Field<'a>>,
    },
    /// Valid JSON that is not an object: its type.
    NotAnObject(&'static str),
}

/// One used field's value: a string (borrowed from the body unless it has escapes), the
/// `py/b64` member of an object (all other members skipped), or the JSON type of anything
/// else (its content skipped).
enum Field<'a> {
    Null,
    Text(Cow<'a, str>),
    Object { py_b64: Option<Box<Field<'a>>> },
    Other(&'static str),
}

impl Field<'_> {
    fn json_type(&self) -> &'static str {
        match self {
            Field::Null => "null",
            Field::Text(_) => "a string",
            Field::Object { .. } => "an object",
            Field::Other(got) => got,
        }
    }
}

/// The member names the parser keeps; anything else is skipped.
enum Key {
    Name,
    Hash,
    Image,
    PyB64,
    Unused,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
                Ok(match key {
                    "name" => Key::Name,
                    "hash" => Key::Hash,
                    "image" => Key::Image,
                    "py/b64" => Key::PyB64,
                    _ => Key::Unused,
                })
            }
        }
        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// What a visitor answers for values it does not keep: their JSON type. Arrays and
/// objects are walked to their end (the JSON must be valid) without storing anything.
macro_rules! skip_others {
    ($value:ty, $other:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<$value, E> {
            Ok($other("a boolean"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<$value, E> {
            Ok($other("a number"))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<$value, E> {
            Ok($other("a number"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<$value, E> {
            Ok($other("a number"))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<$value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($other("an array"))
        }
    };
}

impl<'de> Deserialize<'de> for JsonBody<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BodyVisitor;
        impl<'de> Visitor<'de> for BodyVisitor {
            type Value = JsonBody<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            skip_others!(JsonBody<'de>, JsonBody::NotAnObject);
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(JsonBody::NotAnObject("null"))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(JsonBody::NotAnObject("a string"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let (mut name, mut hash, mut image) = (None, None, None);
                // A repeated member replaces the earlier one, as in serde_json's own maps.
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Name => name = Some(map.next_value()?),
                        Key::Hash => hash = Some(map.next_value()?),
                        Key::Image => image = Some(map.next_value()?),
                        Key::PyB64 | Key::Unused => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(JsonBody::Object { name, hash, image })
            }
        }
        deserializer.deserialize_any(BodyVisitor)
    }
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            skip_others!(Field<'de>, Field::Other);
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Field::Null)
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Self::Value, E> {
                Ok(Field::Text(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                Ok(Field::Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Self::Value, E> {
                Ok(Field::Text(Cow::Owned(s)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut py_b64 = None;
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::PyB64 => py_b64 = Some(Box::new(map.next_value::<Field<'de>>()?)),
                        Key::Name | Key::Hash | Key::Image | Key::Unused => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Field::Object { py_b64 })
            }
        }
        deserializer.deserialize_any(FieldVisitor)
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
    fn unused_members_of_any_shape_are_skipped() {
        let r = parse(
            r#"{"pad":[0,[1,{"a":"b"}],"s\u0041",-1.5e3,true,null],"x":{"name":5},"name":"a.jpg","image":"aGk=","z":{}}"#,
        )
        .unwrap();
        assert_eq!((r.name.as_str(), r.image.as_slice()), ("a.jpg", b"hi".as_slice()));
        // The last of repeated members wins, and escaped member names are names.
        let r = parse(r#"{"name":"a","n\u0061me":"b","image":{"x":[1],"py/b64":"aGk=","y":2}}"#).unwrap();
        assert_eq!(r.name, "b");
        assert_eq!(r.image, b"hi");
        assert!(matches!(
            parse(r#"{"name":"n","image":{"py/b64":null}}"#),
            Err(BadMessage::WrongType { field: "image", got: "null", .. })
        ));
        assert!(matches!(parse(r#"{"name":"n","image":"aGk=","pad":[0,}"#), Err(BadMessage::InvalidJson(_))));
        assert!(matches!(parse(r#"{"name":"n","image":"aGk="} x"#), Err(BadMessage::InvalidJson(_))));
        assert_eq!(parse(r#"["a",{"b":1}]"#), Err(BadMessage::NotAnObject("an array")));
    }

    #[test]
    fn names_are_data_even_with_control_characters() {
        let r = parse(r#"{"name":"a\u001b[31m\nb","image":"aGk="}"#).unwrap();
        assert_eq!(r.name, "a\u{1b}[31m\nb");
    }
}
