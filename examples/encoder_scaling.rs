//! How the encoder alone scales with threads: the sample images x 4, encoded with 1 and 2
//! encoder threads (as many images in flight). `cargo run --release --features dlib
//! --example encoder_scaling`.

#[cfg(feature = "dlib")]
#[tokio::main]
async fn main() {
    use facerec::adapters::dlib::{DlibEncoder, EncoderSettings};
    use facerec::hash::ImageHash;
    use facerec::ports::FaceEncoder;
    use futures::StreamExt;
    let dir = std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/facerec/images");
    let files = [
        "obama.jpg",
        "obama2.jpg",
        "obama3.jpg",
        "biden.jpg",
        "32bit.png",
        "obama_partial_face.jpg",
        "obama_partial_face2.jpg",
    ];
    let images: Vec<Vec<u8>> = (0..4).flat_map(|_| files.iter().map(|f| std::fs::read(dir.join(f)).unwrap())).collect();
    let mut base = 0.0;
    for threads in [1usize, 2] {
        let encoder = DlibEncoder::start(EncoderSettings { threads, ..EncoderSettings::default() }).unwrap();
        let started = std::time::Instant::now();
        let encoder = &encoder;
        futures::stream::iter(images.iter())
            .map(|b| async move { encoder.encode(&ImageHash::of_bytes(b), b).await.unwrap() })
            .buffer_unordered(threads)
            .collect::<Vec<_>>()
            .await;
        let secs = started.elapsed().as_secs_f64();
        if threads == 1 {
            base = secs;
        }
        println!("{threads} threads: {secs:.2} s for {} images, {:.2} x", images.len(), base / secs);
    }
}

#[cfg(not(feature = "dlib"))]
fn main() {}
