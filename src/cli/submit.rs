//! `facerec submit PATH|URL...`: publishes images to `toWorker` the way a producer should
//! (persistent, publisher confirms, mandatory routing) and prints each image's hash.

use super::connection_args::BrokerArgs;
use crate::adapters::file_source::IMAGE_EXTENSIONS;
use crate::app;
use crate::hash::ImageHash;
use anyhow::{Context as _, bail};
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// Largest image fetched from a URL.
const MAX_DOWNLOAD: u64 = 64 << 20;

/// Publish images (files, folders, URLs) for the workers.
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// Image files, folders (recursive) or http(s) URLs.
    #[arg(required = true, value_name = "PATH|URL")]
    pub inputs: Vec<String>,
    /// Send the image as the raw body with `hash` and `name` headers instead of JSON.
    #[arg(long)]
    pub raw: bool,
    /// How long to keep re-sending one image while no broker confirms it (reconnecting,
    /// to the next broker of RABBITMQ_URLS when there are several), in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    pub resend_for: u64,
    /// RabbitMQ.
    #[command(flatten)]
    pub broker: BrokerArgs,
}

/// Runs the command.
pub async fn run(args: SubmitArgs) -> anyhow::Result<()> {
    let settings = args.broker.settings(&app::hostname(None), 1, 20)?;
    let (exchange, routing_key) = (settings.exchange.clone(), settings.routing_key.clone());
    let mut publisher = app::publisher(settings, std::time::Duration::from_secs(args.resend_for)).await?;
    let mut sent = 0usize;
    for input in &args.inputs {
        for (name, image) in images(input)? {
            let hash = ImageHash::of_bytes(&image);
            publisher
                .publish_image(&hash, &name, &image, args.raw)
                .await
                .with_context(|| format!("publishing {name}"))?;
            println!("{hash}  {name}");
            sent += 1;
        }
    }
    let (resent, connects) = (publisher.resent(), publisher.connects());
    publisher.close().await;
    eprintln!("published {sent} images to exchange {exchange:?} (key {routing_key:?})");
    if resent > 0 {
        eprintln!("{resent} sent again after the broker connection was lost ({connects} connections)");
    }
    Ok(())
}

/// `(name, bytes)` for a file, every image under a folder, or a downloaded URL.
fn images(input: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    if input.starts_with("http://") || input.starts_with("https://") {
        return Ok(vec![(input.to_owned(), download(input)?)]);
    }
    let path = Path::new(input);
    if path.is_dir() {
        let mut files: Vec<PathBuf> = walkdir::WalkDir::new(path)
            .sort_by_file_name()
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .map(walkdir::DirEntry::into_path)
            .filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
            })
            .collect();
        files.sort();
        return files
            .into_iter()
            .map(|f| Ok((f.display().to_string(), std::fs::read(&f).with_context(|| f.display().to_string())?)))
            .collect();
    }
    Ok(vec![(input.to_owned(), std::fs::read(path).with_context(|| format!("reading {input}"))?)])
}

fn download(url: &str) -> anyhow::Result<Vec<u8>> {
    let response = ureq::get(url).call().with_context(|| format!("downloading {url}"))?;
    let mut bytes = Vec::new();
    response.into_body().into_reader().take(MAX_DOWNLOAD + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_DOWNLOAD {
        bail!("{url} is larger than {MAX_DOWNLOAD} bytes");
    }
    Ok(bytes)
}
