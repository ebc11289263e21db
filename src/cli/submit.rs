//! `facerec submit PATH|URL...`: publishes images to `toWorker` the way a producer should
//! (persistent, publisher confirms, mandatory routing) and prints each image's hash.

use super::connection_args::BrokerArgs;
use crate::adapters::amqp::publish::publish_confirmed;
use crate::adapters::amqp::topology::declare_work;
use crate::adapters::amqp::{connect, redacted};
use crate::adapters::file_source::IMAGE_EXTENSIONS;
use crate::hash::ImageHash;
use anyhow::{Context as _, bail};
use base64::Engine as _;
use lapin::BasicProperties;
use lapin::options::ConfirmSelectOptions;
use lapin::types::{AMQPValue, FieldTable};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// RabbitMQ.
    #[command(flatten)]
    pub broker: BrokerArgs,
}

/// Runs the command.
pub async fn run(args: SubmitArgs) -> anyhow::Result<()> {
    let settings = args.broker.settings(1, 20).map_err(anyhow::Error::msg)?;
    let conn = connect(&settings.url, "facerec submit", Duration::from_secs(10))
        .await
        .map_err(|e| anyhow::anyhow!("RabbitMQ at {}: {e}", redacted(&settings.url)))?;
    // Declared here too: with no worker started yet, an undeclared queue would drop images.
    declare_work(&conn, &settings).await.context("declaring the queues")?;
    let channel = conn.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let mut sent = 0usize;
    for input in &args.inputs {
        for (name, image) in images(input)? {
            let hash = ImageHash::of_bytes(&image);
            let (body, properties) = if args.raw {
                let mut headers = FieldTable::default();
                headers.insert("hash".into(), AMQPValue::LongString(hash.as_str().into()));
                headers.insert("name".into(), AMQPValue::LongString(name.as_str().into()));
                (image, BasicProperties::default().with_headers(headers))
            } else {
                let body = serde_json::json!({
                    "hash": hash.as_str(),
                    "name": name,
                    "image": base64::engine::general_purpose::STANDARD.encode(&image),
                });
                (body.to_string().into_bytes(), BasicProperties::default().with_content_type("application/json".into()))
            };
            publish_confirmed(&channel, &settings.exchange, &settings.routing_key, &body, properties, true)
                .await
                .map_err(|e| anyhow::anyhow!("publishing {name}: {e}"))?;
            println!("{hash}  {name}");
            sent += 1;
        }
    }
    let _ = conn.close(200, "done".into()).await;
    eprintln!("published {sent} images to exchange {:?} (key {:?})", settings.exchange, settings.routing_key);
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
