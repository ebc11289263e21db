//! The encoder thread pool: N OS threads, each with its own models, fed by a channel.
//!
//! A job whose caller gave up while it ran (the orchestrator's deadline,
//! `FACEREC_MAX_ENCODE_SECONDS`) leaves its thread stuck: a replacement thread is started
//! at once, and the stuck one exits when its job ends, so the pool never stays short. A
//! panic inside one job is caught, answered as that image's failure, and the thread
//! reloads its models and goes on.

use super::shim::{CnnDetector, HogDetector, Scan};
use super::{Detector, EncoderSettings, Landmarks, models};
use crate::decode::decode;
use crate::face::{BoundingBox, EncodedImage, Encoding, Face, StageTimes};
use crate::hash::ImageHash;
use crate::ports::{EncodeError, FaceEncoder, MemoryReservation};
use async_trait::async_trait;
use dlib_face_recognition::{
    FaceEncoderNetwork, FaceEncoderTrait, ImageMatrix, LandmarkPredictor, LandmarkPredictorTrait,
};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// One image to encode and where to send the answer.
struct Job {
    image: Vec<u8>,
    reply: oneshot::Sender<Result<EncodedImage, EncodeError>>,
    span: tracing::Span,
    /// Its share of the memory budget, MiB.
    share_mib: u32,
    /// Held until the thread is done with the image, even if the caller gave up.
    _memory: tokio::sync::OwnedSemaphorePermit,
    state: Arc<JobState>,
}

/// Where a job is, as seen by its caller and its thread.
#[derive(Default)]
struct JobState {
    started: AtomicBool,
    done: AtomicBool,
    /// The caller gave up while it ran and a replacement thread was started: the thread
    /// running it exits once it is done.
    abandoned: AtomicBool,
}

/// What starting one more encoder thread takes.
#[derive(Clone)]
struct Kit {
    rx: crossbeam_channel::Receiver<Job>,
    settings: EncoderSettings,
    landmarks: Arc<LandmarkPredictor>,
    resnet: std::path::PathBuf,
    cnn_path: Option<std::path::PathBuf>,
    scan: Scan,
}

/// The threads, and how many are stuck on abandoned jobs.
struct Crew {
    kit: Kit,
    threads: Mutex<Vec<JoinHandle<()>>>,
    stuck: AtomicUsize,
    started: AtomicUsize,
    size: usize,
}

impl Crew {
    /// Called by a caller giving up on a running job: one more thread takes its place,
    /// unless as many are stuck already as the pool has (then readiness says so).
    fn replace(self: &Arc<Self>, state: &JobState) {
        if state.done.load(Ordering::SeqCst) || self.stuck.load(Ordering::SeqCst) >= self.size {
            return;
        }
        state.abandoned.store(true, Ordering::SeqCst);
        self.stuck.fetch_add(1, Ordering::SeqCst);
        let n = self.started.fetch_add(1, Ordering::SeqCst);
        tracing::warn!(thread = n, "an encoder thread is stuck past the deadline; starting a replacement");
        match spawn_thread(self.clone(), n, None) {
            Ok(handle) => self.threads.lock().expect("lock").push(handle),
            Err(e) => tracing::error!(error = %e, "cannot start a replacement encoder thread"),
        }
    }
}

/// Disarmed once the answer arrives; dropped before that (the caller gave up), it
/// replaces the thread if the job had started.
struct GiveUp {
    crew: Arc<Crew>,
    state: Arc<JobState>,
    armed: bool,
}

impl Drop for GiveUp {
    fn drop(&mut self) {
        if self.armed && self.state.started.load(Ordering::SeqCst) {
            self.crew.replace(&self.state);
        }
    }
}

/// After an image this large (MiB), free heap pages are handed back before the next
/// image may start: each thread allocates from its own malloc arena, so without it two
/// big images in turn would leave both arenas full, and the budget would not bound RSS.
const TRIM_AFTER_MIB: u32 = 128;

/// What one encoder thread works with: its own detector and network (dlib's are not
/// thread-safe: they keep per-call buffers), and the shared landmark model (dlib's
/// `shape_predictor` is only read when predicting).
struct Models {
    detector: DetectorModel,
    landmarks: Arc<LandmarkPredictor>,
    net: FaceEncoderNetwork,
}

enum DetectorModel {
    Hog(HogDetector, Scan),
    Cnn(Box<CnnDetector>),
}

impl DetectorModel {
    /// Whether the detector holds on to the last image's buffers.
    fn keeps_buffers(&self) -> bool {
        !matches!(self, DetectorModel::Hog(_, Scan::Fast))
    }
}

/// dlib face encoder on a pool of `settings.threads` threads.
pub struct DlibEncoder {
    jobs: Option<crossbeam_channel::Sender<Job>>,
    /// Permits are MiB of the memory budget.
    memory: Arc<tokio::sync::Semaphore>,
    memory_budget_mib: u32,
    bytes_per_pixel: u64,
    crew: Arc<Crew>,
    fingerprint: String,
}

impl DlibEncoder {
    /// Starts the threads; each loads its own detector and network from the model files,
    /// so no extra copy is made (and left behind in the heap) to clone them from.
    ///
    /// # Errors
    /// A missing or unreadable model file, or a CPU without the instructions the C++
    /// shim was compiled for.
    pub fn start(settings: EncoderSettings) -> Result<Self, super::StartError> {
        check_cpu()?;
        // Parallelism comes from encoding several images at once, one per thread; OpenBLAS
        // threads inside each ResNet call would only fight them for the same cores (the
        // batch of one image's faces is too small to gain from them: measured 17 ms per
        // face either way, docs/PERFORMANCE.md).
        // SAFETY: a plain setter of OpenBLAS's global thread count.
        unsafe { openblas_set_num_threads(1) };
        let dir = &settings.model_dir;
        let resnet = models::model_file(dir, models::RESNET)?;
        let landmark_file = match settings.landmarks {
            Landmarks::Five => models::LANDMARKS_5,
            Landmarks::SixtyEight => models::LANDMARKS_68,
        };
        let landmark_path = models::model_file(dir, landmark_file)?;
        let cnn_path = match settings.detector {
            Detector::Hog | Detector::HogDlib => None,
            Detector::Cnn => Some(models::model_file(dir, models::CNN_DETECTOR)?),
        };
        let detector_id = match &cnn_path {
            None => "hog".to_owned(),
            Some(path) => format!("cnn:{}", models::short_digest(path)?),
        };
        let fingerprint = format!(
            "dlib-19.24 detector={detector_id} upsample={} landmarks={}:{} jitters={} resnet={}",
            settings.upsample,
            landmark_file,
            models::short_digest(&landmark_path)?,
            settings.jitters.max(1),
            models::short_digest(&resnet)?,
        );
        let landmarks = Arc::new(LandmarkPredictor::open(&landmark_path)?);
        let (tx, rx) = crossbeam_channel::bounded::<Job>(settings.threads.max(1) * 2);
        let scan = if settings.detector == Detector::HogDlib { Scan::Dlib } else { Scan::Fast };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let kit = Kit { rx, settings: settings.clone(), landmarks, resnet, cnn_path, scan };
        let size = settings.threads.max(1);
        let crew = Arc::new(Crew {
            kit,
            threads: Mutex::default(),
            stuck: AtomicUsize::new(0),
            started: AtomicUsize::new(size),
            size,
        });
        for i in 0..size {
            let handle = spawn_thread(crew.clone(), i, Some(ready_tx.clone()))
                .map_err(|e| format!("cannot start encoder thread: {e}"))?;
            crew.threads.lock().expect("lock").push(handle);
        }
        drop(ready_tx);
        let memory_budget_mib = settings.memory_budget_mib.max(1);
        let encoder = Self {
            jobs: Some(tx),
            memory: Arc::new(tokio::sync::Semaphore::new(memory_budget_mib as usize)),
            memory_budget_mib,
            bytes_per_pixel: super::bytes_per_pixel(settings.upsample),
            crew,
            fingerprint,
        };
        for result in ready_rx {
            result?; // dropping `encoder` stops the threads that did start
        }
        crate::memory::release_free_memory();
        Ok(encoder)
    }
}

/// One encoder thread: loads its models, then takes jobs until the channel closes or the
/// job it ran was abandoned (a replacement has taken its place).
fn spawn_thread(
    crew: Arc<Crew>,
    i: usize,
    ready: Option<std::sync::mpsc::Sender<Result<(), String>>>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name(format!("dlib-{i}")).spawn(move || {
        let Kit { rx, settings, landmarks, resnet, cnn_path, scan } = crew.kit.clone();
        let loaded =
            load(&resnet, cnn_path.as_deref(), scan).map(|(detector, net)| Models { detector, landmarks, net });
        let mut models = match loaded {
            Ok(m) => {
                if let Some(ready) = &ready {
                    let _ = ready.send(Ok(()));
                }
                m
            }
            Err(e) => {
                match ready {
                    Some(ready) => drop(ready.send(Err(e))),
                    None => tracing::error!(error = %e, "a replacement encoder thread cannot load its models"),
                }
                return;
            }
        };
        drop(ready);
        for job in rx.iter() {
            if job.reply.is_closed() {
                continue; // its caller gave up before it started
            }
            let _entered = job.span.enter();
            job.state.started.store(true, Ordering::SeqCst);
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| encode_one(&mut models, &settings, &job.image)))
                .unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".to_owned());
                    tracing::error!(panic = %what, "an encoder thread panicked; reloading its models");
                    // The models may be half-way through a call: start from fresh ones.
                    match load(&resnet, cnn_path.as_deref(), scan) {
                        Ok((detector, net)) => {
                            models.detector = detector;
                            models.net = net;
                        }
                        Err(e) => tracing::error!(error = %e, "cannot reload the encoder models"),
                    }
                    Err(EncodeError::Failed(format!("the encoder panicked on this image: {what}")))
                });
            job.state.done.store(true, Ordering::SeqCst);
            drop(job.image);
            if job.share_mib >= TRIM_AFTER_MIB {
                // dlib's own HOG scan keeps the last image's feature pyramid,
                // the CNN its tensors: a fresh detector holds none. (Our HOG
                // scan frees everything when it returns.)
                if models.detector.keeps_buffers()
                    && let Ok(fresh) = load_detector(cnn_path.as_deref(), scan)
                {
                    models.detector = fresh;
                }
                crate::memory::release_free_memory();
            }
            // The receiver may have given up (a deadline, a shutdown); nothing to do then.
            let _ = job.reply.send(result);
            if job.state.abandoned.load(Ordering::SeqCst) {
                crew.stuck.fetch_sub(1, Ordering::SeqCst);
                tracing::info!("a stuck encoder thread finished its job and exits (it was replaced)");
                return;
            }
        }
    })
}

impl DlibEncoder {
    fn memory_share_mib(&self, image: &[u8]) -> u32 {
        memory_share_mib(crate::decode::header_pixels(image).unwrap_or(0), self.bytes_per_pixel, self.memory_budget_mib)
    }
}

/// An image's share of the memory budget, in MiB: at least 1, at most all of it (so an
/// image over the budget runs alone rather than never).
fn memory_share_mib(pixels: u64, bytes_per_pixel: u64, budget_mib: u32) -> u32 {
    let mib = pixels.saturating_mul(bytes_per_pixel).div_ceil(1 << 20);
    u32::try_from(mib).unwrap_or(u32::MAX).clamp(1, budget_mib)
}

/// A thread's detector and network, read from the model files.
fn load(
    resnet: &std::path::Path,
    cnn: Option<&std::path::Path>,
    scan: Scan,
) -> Result<(DetectorModel, FaceEncoderNetwork), String> {
    Ok((load_detector(cnn, scan)?, FaceEncoderNetwork::open(resnet)?))
}

/// The HOG detector (run with `scan`), or the CNN one read from `cnn`.
fn load_detector(cnn: Option<&std::path::Path>, scan: Scan) -> Result<DetectorModel, String> {
    Ok(match cnn {
        None => DetectorModel::Hog(HogDetector::new(), scan),
        Some(path) => {
            DetectorModel::Cnn(Box::new(CnnDetector::open(path).map_err(|e| format!("{}: {}", path.display(), e.0))?))
        }
    })
}

impl Drop for DlibEncoder {
    fn drop(&mut self) {
        drop(self.jobs.take());
        let threads: Vec<_> = self.crew.threads.lock().expect("lock").drain(..).collect();
        // A thread stuck on an image may never finish: wait a little, then leave it.
        let deadline = Instant::now() + Duration::from_secs(5);
        for t in threads {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

#[async_trait]
impl FaceEncoder for DlibEncoder {
    async fn encode(&self, _hash: &ImageHash, image: &[u8]) -> Result<EncodedImage, EncodeError> {
        // Held until the answer arrives: big images wait for memory instead of all
        // being decoded at once.
        let share_mib = self.memory_share_mib(image);
        let memory = self
            .memory
            .clone()
            .acquire_many_owned(share_mib)
            .await
            .map_err(|_| EncodeError::Unavailable("encoder stopped".into()))?;
        let (reply, answer) = oneshot::channel();
        let state = Arc::new(JobState::default());
        let job = Job {
            image: image.to_vec(),
            reply,
            span: tracing::Span::current(),
            share_mib,
            _memory: memory,
            state: state.clone(),
        };
        let mut give_up = GiveUp { crew: self.crew.clone(), state, armed: true };
        let jobs = self.jobs.clone().ok_or_else(|| EncodeError::Unavailable("encoder stopped".into()))?;
        // The channel is bounded: wait for room off the executor.
        tokio::task::spawn_blocking(move || jobs.send(job))
            .await
            .map_err(|e| EncodeError::Unavailable(e.to_string()))?
            .map_err(|_| EncodeError::Unavailable("encoder threads have stopped".into()))?;
        let answer = answer.await;
        give_up.armed = false;
        answer.map_err(|_| EncodeError::Unavailable("encoder thread died".into()))?
    }

    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    async fn reserve_memory(&self, bytes: usize) -> Option<MemoryReservation> {
        let mib = u32::try_from(bytes.div_ceil(1 << 20)).unwrap_or(u32::MAX).clamp(1, self.memory_budget_mib);
        self.memory.clone().acquire_many_owned(mib).await.ok().map(MemoryReservation::new)
    }

    fn stalled(&self) -> Option<String> {
        let stuck = self.crew.stuck.load(Ordering::SeqCst);
        (stuck >= self.crew.size)
            .then(|| format!("{stuck} encoder threads are stuck on images past their deadline; no replacement is left"))
    }
}

fn encode_one(models: &mut Models, settings: &EncoderSettings, image: &[u8]) -> Result<EncodedImage, EncodeError> {
    let started = Instant::now();
    let pixels = decode(image, &settings.decode)?;
    let (width, height) = (pixels.width, pixels.height);
    // SAFETY: `data` holds width * height * 3 bytes (RgbPixels' invariant) and outlives the call.
    let matrix = unsafe { ImageMatrix::new(width as usize, height as usize, pixels.data.as_ptr()) };
    // From the pixels dlib sees (EXIF orientation applied), before they are freed; counted
    // in the decode stage (a few ms: integer area averaging, then a 256 px JPEG).
    let thumbnail = crate::thumbnail::make(&pixels, settings.thumbnails);
    drop(pixels);
    let decoded = Instant::now();
    let rects = match &mut models.detector {
        DetectorModel::Hog(d, scan) => d.detect(&matrix, settings.upsample, *scan),
        DetectorModel::Cnn(d) => d.detect(&matrix, settings.upsample),
    }
    .map_err(|e| EncodeError::Failed(format!("face detection: {}", e.0)))?;
    if rects.len() > settings.max_faces {
        return Err(EncodeError::OverLimit(format!(
            "{} faces found, the limit is {}",
            rects.len(),
            settings.max_faces
        )));
    }
    let detected = Instant::now();
    // Landmarks on the untrimmed rectangles, as face_recognition does: trimming first
    // shifts the landmarks of faces at the border.
    let landmarks: Vec<_> = rects.iter().map(|r| models.landmarks.face_landmarks(&matrix, r)).collect();
    let landmarked = Instant::now();
    let encodings = if landmarks.is_empty() {
        Vec::new()
    } else {
        let out = models.net.get_face_encodings(&matrix, &landmarks, settings.jitters);
        out.iter()
            .map(|e| {
                Encoding::from_slice(e.as_ref()).ok_or_else(|| EncodeError::Failed("encoding is not 128-d".into()))
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let encoded = Instant::now();
    let faces = rects
        .iter()
        .zip(encodings)
        .map(|(r, encoding)| Face {
            bbox: BoundingBox::trimmed(r.top, r.right, r.bottom, r.left, width, height),
            encoding,
        })
        .collect();
    Ok(EncodedImage {
        width,
        height,
        faces,
        times: StageTimes {
            decode: decoded - started,
            detect: detected - decoded,
            landmarks: landmarked - detected,
            encode: encoded - landmarked,
            store: Duration::ZERO,
        },
        thumbnail,
    })
}

unsafe extern "C" {
    /// From libopenblas, which the `openblas` feature of dlib-face-recognition links.
    fn openblas_set_num_threads(num_threads: std::os::raw::c_int);
}

/// Refuses to start on a CPU that lacks what the shim was compiled for (see build.rs).
fn check_cpu() -> Result<(), String> {
    let arch = env!("FACEREC_SHIM_ARCH");
    #[cfg(target_arch = "x86_64")]
    {
        let wants_avx2 = arch.contains("avx2") || arch.contains("x86-64-v3") || arch.contains("native");
        if wants_avx2 && !(std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")) {
            return Err(format!(
                "this build's dlib code was compiled with `{arch}` but this CPU lacks AVX2/FMA; \
                 rebuild with FACEREC_CXX_ARCH=\"\""
            ));
        }
    }
    let _ = arch;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_takes_its_estimated_share_of_the_memory_budget() {
        let per_pixel = super::super::bytes_per_pixel(1);
        assert_eq!(per_pixel, 49);
        // A 12 MP photo at upsample 1: ~561 MiB, so three fit in a 2 GiB budget, not four.
        assert_eq!(memory_share_mib(12_000_000, per_pixel, 2048), 561);
        // Nothing decodable from the header: the smallest share, the decoder reports why.
        assert_eq!(memory_share_mib(0, per_pixel, 2048), 1);
        // Larger than the whole budget: runs alone instead of waiting forever.
        assert_eq!(memory_share_mib(40_000_000, per_pixel, 1024), 1024);
        assert_eq!(memory_share_mib(u64::MAX, u64::MAX, 7), 7);
        assert_eq!(super::super::bytes_per_pixel(0), 13);
    }
}
