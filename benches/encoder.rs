//! Encoder time per image, split into decode / detect / landmarks / encode, for each of
//! face_recognition's sample images at upsample 0 and 1, one encoder thread.
//! `cargo bench --features dlib --bench encoder [-- RUNS]`: prints one JSON object per
//! (image, upsample) with the median of RUNS runs (default 7) in milliseconds.
//! `FACEREC_DETECTOR` picks the detector (`hog-dlib`: dlib's own HOG scan).

#[cfg(feature = "dlib")]
fn main() {
    use facerec::adapters::dlib::{DlibEncoder, EncoderSettings};
    use facerec::hash::ImageHash;
    use facerec::ports::FaceEncoder;

    let runs: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(7);
    // FACEREC_DETECTOR=hog-dlib times dlib's own HOG scan instead of ours.
    let detector = match std::env::var("FACEREC_DETECTOR") {
        Ok(name) => clap::ValueEnum::from_str(&name, true).expect("FACEREC_DETECTOR: hog, hog-dlib or cnn"),
        Err(_) => EncoderSettings::default().detector,
    };
    let dir = facerec_fakes::testkit::fixtures::sample_images_dir();
    let files = facerec_fakes::testkit::fixtures::SAMPLE_IMAGES;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for upsample in [0, 1] {
        let encoder =
            DlibEncoder::start(EncoderSettings { threads: 1, upsample, detector, ..EncoderSettings::default() })
                .unwrap();
        // One untimed pass: first-use costs (page faults of the largest buffers, lazy
        // initialisation) are not any image's time.
        for file in files {
            let bytes = std::fs::read(dir.join(file)).unwrap();
            rt.block_on(encoder.encode(&ImageHash::of_bytes(&bytes), &bytes)).unwrap();
        }
        for file in files {
            let bytes = std::fs::read(dir.join(file)).unwrap();
            let hash = ImageHash::of_bytes(&bytes);
            let mut samples: Vec<[f64; 5]> = (0..runs)
                .map(|_| {
                    let t = rt.block_on(encoder.encode(&hash, &bytes)).unwrap().times;
                    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
                    [ms(t.decode), ms(t.detect), ms(t.landmarks), ms(t.encode), ms(t.total())]
                })
                .collect();
            let median = |i: usize| {
                samples.sort_by(|a, b| a[i].total_cmp(&b[i]));
                samples[samples.len() / 2][i]
            };
            let m: Vec<f64> = (0..5).map(median).collect();
            println!(
                "{{\"image\":\"{file}\",\"upsample\":{upsample},\"decode_ms\":{:.2},\"detect_ms\":{:.2},\"landmarks_ms\":{:.2},\"encode_ms\":{:.2},\"total_ms\":{:.2}}}",
                m[0], m[1], m[2], m[3], m[4]
            );
        }
    }
}

#[cfg(not(feature = "dlib"))]
fn main() {
    eprintln!("the encoder benchmark needs --features dlib");
}
