//! Any body with any headers: `ScanRequest::parse` returns a request or a `BadMessage`,
//! never panics, and a parsed request is always valid (usable hash, name within limits).
#![no_main]

use facerec::message::{MessageLimits, ScanRequest};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    // First byte picks the headers, so both the JSON and the raw forms are explored.
    let (selector, body) = data.split_first().unwrap_or((&0, data));
    let mut headers = BTreeMap::new();
    if selector & 1 == 1 {
        headers.insert("name".to_owned(), String::from_utf8_lossy(&body[..body.len().min(8)]).into_owned());
    }
    if selector & 2 == 2 {
        headers.insert("hash".to_owned(), String::from_utf8_lossy(&body[..body.len().min(16)]).into_owned());
    }
    let limits = MessageLimits { max_message_bytes: 1 << 20, max_name_bytes: 64 };
    if let Ok(request) = ScanRequest::parse(body, &headers, &limits) {
        assert!(!request.image.is_empty());
        assert!(!request.name.is_empty() && request.name.len() <= 64);
        assert!(facerec::hash::ImageHash::parse(request.hash.as_str()).is_ok());
    }
});
