//! Progress lines: routing keys, their order, and what the info line says.

use facerec_fakes::testkit::Harness;
use facerec_fakes::testkit::fixtures::hash_of;
use facerec_fakes::testkit::harness::HOST;

fn key(level: &str) -> String {
    format!("{HOST}.worker.{level}")
}

#[tokio::test]
async fn a_new_image_logs_debug_steps_then_one_info_line() {
    let h = Harness::new();
    h.push("obama.jpg", "first.jpg");
    h.run().await;
    h.push("obama2.jpg", "second.jpg");
    h.run().await;
    let lines = h.logs.lines();
    let second: Vec<_> = lines.iter().skip_while(|(_, l)| !l.contains("second.jpg")).cloned().collect();
    let keys: Vec<&str> = second.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, vec![key("debug"), key("debug"), key("debug"), key("info")]);
    let info = &second[3].1;
    let (obama, obama2) = (hash_of("obama.jpg"), hash_of("obama2.jpg"));
    assert!(info.starts_with(&format!("{obama2} \"second.jpg\": 1 faces, 1 matching images")), "{info}");
    assert!(info.contains(obama.as_str()), "info names the matching hash: {info}");
}

#[tokio::test]
async fn a_known_image_logs_that_its_name_was_added() {
    let h = Harness::new();
    h.push("biden.jpg", "a.jpg");
    h.run().await;
    let before = h.logs.lines().len();
    h.push("biden.jpg", "b.jpg");
    h.run().await;
    let lines = &h.logs.lines()[before..];
    let keys: Vec<&str> = lines.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, vec![key("debug"), key("debug"), key("info")]);
    assert!(lines[2].1.ends_with("\"b.jpg\": already known, name added"), "{}", lines[2].1);
}

#[tokio::test]
async fn dead_letters_and_retries_have_their_own_keys_and_names_are_escaped() {
    let mut h = Harness::new();
    h.settings.max_attempts = 1;
    h.source.push(br#"{"name": "evil\nINFO fake line\u001b[2J", "image": "aGk="}"#.to_vec());
    h.run().await;
    let lines = h.logs.lines();
    let error = lines.iter().find(|(k, _)| *k == key("error")).expect("an error line");
    assert!(error.1.contains("dead-lettered"), "{}", error.1);
    for (_, line) in &lines {
        assert!(!line.contains('\n') && !line.contains('\u{1b}'), "unescaped control character in {line:?}");
    }
    assert!(lines.iter().any(|(_, l)| l.contains("evil\\nINFO fake line\\u{1b}[2J")));
}
