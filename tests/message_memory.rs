//! Memory of message parsing, measured with a counting global allocator (its own test
//! binary, so no other test's allocations are counted): a valid JSON message padded with
//! an unused array of zeros costs a small multiple of its image, whatever the padding.

use facerec::hash::ImageHash;
use facerec::message::{MessageLimits, ScanRequest, json_body};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting live bytes and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            let live = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size - layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak bytes allocated while `f` runs, above what was live when it started.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed) - before)
}

/// `json_body` with `"pad": [0,0,...]` (`elements` zeros) added, as bombs.py's `padded_json`.
fn padded(image: &[u8], elements: usize) -> Vec<u8> {
    let mut body = json_body(&ImageHash::of_bytes(image), "padded.jpg", image);
    assert_eq!(body.pop(), Some(b'}'));
    body.extend_from_slice(b", \"pad\": [");
    body.extend(std::iter::repeat_n(b"0,".as_slice(), elements).flatten());
    body.pop();
    body.extend_from_slice(b"]}");
    body
}

#[test]
fn an_unused_padding_field_costs_no_memory_only_the_image_does() {
    let image: Vec<u8> = (0..1u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    // 24 MB of body, 12 M array elements: a generic JSON tree takes ~400 MB for them.
    let body = padded(&image, 12_000_000);
    let limits = MessageLimits { max_message_bytes: body.len(), ..MessageLimits::default() };
    let (request, peak) = peak_during(|| ScanRequest::parse(&body, &BTreeMap::new(), &limits));
    let request = request.unwrap();
    assert_eq!(request.image, image);
    assert_eq!(request.name, "padded.jpg");
    // The decoded image plus base64's own rounding: well under three times the image.
    assert!(
        peak < 3 * image.len(),
        "parsing a {} byte message with a {} byte image peaked at {peak} bytes",
        body.len(),
        image.len()
    );
}
