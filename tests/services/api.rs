//! `facerec api` + a worker (recorded encodings) driven by the course's REST client:
//! `scripts/api-interop.sh` runs `tests/interop/test_rest.py` (image, url, match; `/match`
//! compared with databases 2 and 4) with its own exchange, queues and key prefix.

#[test]
fn the_course_rest_client_works_unchanged_against_the_api_and_a_worker() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = std::process::Command::new("bash")
        .arg(root.join("scripts/api-interop.sh"))
        .env("FACEREC_BIN", env!("CARGO_BIN_EXE_facerec"))
        .current_dir(root)
        .status()
        .expect("running scripts/api-interop.sh");
    assert!(status.success(), "the REST interop test failed: {status}");
}
