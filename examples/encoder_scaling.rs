//! The encoder alone, without broker or Redis: the sample images x COPIES (default 4), in
//! order, encoded with each given number of threads (default 1 and 2; as many images in
//! flight). Prints one JSON line per thread count. `cargo run --release --features dlib
//! --example encoder_scaling [COPIES [THREADS...]]`; benches/run_benchmarks.py uses it as
//! the end-to-end pipeline's baseline.

#[cfg(feature = "dlib")]
#[tokio::main]
async fn main() {
    use facerec::adapters::dlib::{DlibEncoder, EncoderSettings};
    use facerec::hash::ImageHash;
    use facerec::ports::FaceEncoder;
    use futures::StreamExt;
    let dir = facerec_fakes::testkit::fixtures::sample_images_dir();
    let files = facerec_fakes::testkit::fixtures::SAMPLE_IMAGES;
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("numbers: COPIES THREADS..."));
    let copies = args.next().unwrap_or(4);
    let thread_counts: Vec<usize> = args.collect();
    let thread_counts = if thread_counts.is_empty() { vec![1, 2] } else { thread_counts };
    let images: Vec<Vec<u8>> =
        (0..copies).flat_map(|_| files.iter().map(|f| std::fs::read(dir.join(f)).unwrap())).collect();
    let mut base = 0.0;
    for threads in thread_counts {
        let encoder = DlibEncoder::start(EncoderSettings { threads, ..EncoderSettings::default() }).unwrap();
        let started = std::time::Instant::now();
        let encoder = &encoder;
        futures::stream::iter(images.iter())
            .map(|b| async move { encoder.encode(&ImageHash::of_bytes(b), b).await.unwrap() })
            .buffer_unordered(threads)
            .collect::<Vec<_>>()
            .await;
        let secs = started.elapsed().as_secs_f64();
        if base == 0.0 {
            base = secs;
        }
        println!(
            "{{\"threads\":{threads},\"images\":{},\"seconds\":{secs:.3},\"speedup_vs_first\":{:.3}}}",
            images.len(),
            base / secs
        );
    }
}

#[cfg(not(feature = "dlib"))]
fn main() {}
