//! `trailwatch verify` and `trailwatch keys export`: the archive, offline.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use trailwatch_archive::source::{FolderSource, StoreSource};
use trailwatch_integrity::{ObjectSource, PublicKey, Report, VerifyOptions, verify_with};

use crate::cli::{OutputFormat, VerifyArgs};

/// A time given as RFC 3339 or epoch milliseconds.
pub(crate) fn parse_time(flag: &str, s: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(ms) = s.parse::<i64>() {
        return DateTime::from_timestamp_millis(ms)
            .with_context(|| format!("{flag}: {s} is out of range"));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.to_utc())
        .with_context(|| format!("{flag}: {s:?} is neither RFC 3339 nor epoch milliseconds"))
}

fn print_report(report: &Report, output: OutputFormat) -> anyhow::Result<()> {
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    let c = &report.counts;
    println!(
        "checked {} digests, {} files ({} bytes), {} traces, {} records",
        c.digests, c.files, c.bytes, c.traces, c.records
    );
    if c.pending_files > 0 {
        println!(
            "{} files are newer than the newest digest (their digest is not due yet)",
            c.pending_files
        );
    }
    for chain in &report.chains {
        println!("chain: {}", serde_json::to_string(chain)?);
    }
    if report.valid() {
        println!("VALID: the archive is complete and unaltered");
    } else {
        println!("INVALID: {} problem(s)", report.problems.len());
        for p in &report.problems {
            let mut line = format!("  {:<14} {}", p.kind.as_str(), p.object);
            if let Some(e) = &p.expected {
                line.push_str(&format!("\n                 expected: {e}"));
            }
            if let Some(a) = &p.actual {
                line.push_str(&format!("\n                 actual:   {a}"));
            }
            line.push_str(&format!("\n                 {}", p.detail));
            println!("{line}");
        }
    }
    Ok(())
}

/// Exit status: `Ok(true)` valid, `Ok(false)` problems, `Err` could not run.
pub async fn verify(args: &VerifyArgs) -> anyhow::Result<bool> {
    let pem = std::fs::read_to_string(&args.public_key)
        .with_context(|| format!("reading {}", args.public_key.display()))?;
    let public_key = PublicKey::from_pem(&pem)
        .with_context(|| format!("{} is not an Ed25519 public key", args.public_key.display()))?;
    let now = Utc::now();
    let mut options = VerifyOptions::new(public_key, now);
    options.from = args
        .from
        .as_deref()
        .map(|s| parse_time("--from", s))
        .transpose()?;
    options.to = args
        .to
        .as_deref()
        .map(|s| parse_time("--to", s))
        .transpose()?;
    options.threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let source = open_source(&args.store, args.config.as_deref())?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress_bar = Arc::new(bar);
    let pb = progress_bar.clone();
    let report = tokio::task::spawn_blocking(move || {
        verify_with(source.as_ref(), &options, &|p| {
            pb.set_length(p.bytes_total);
            pb.set_position(p.bytes_done);
            pb.set_message(format!("{}/{} digests", p.digests_done, p.digests_total));
        })
    })
    .await
    .context("the verifier stopped")??;
    progress_bar.finish_and_clear();
    print_report(&report, args.output)?;
    Ok(report.valid())
}

/// Prints the archive's public key from the data directory.
pub fn export_key(data_dir: &Path) -> anyhow::Result<bool> {
    let path = data_dir
        .join("keys")
        .join(trailwatch_api::server::ARCHIVE_KEY_FILE);
    let Some(key) = trailwatch_api::server::load_archive_key(&path)? else {
        bail!(
            "no archive key at {} (the server creates it on its first start)",
            path.display()
        );
    };
    print!("{}", key.public_key().to_pem());
    Ok(true)
}

/// The archive at `store`: a folder, or `s3://BUCKET` through the `[objects]` section of
/// `config`.
fn open_source(store: &str, config: Option<&Path>) -> anyhow::Result<Box<dyn ObjectSource + Send>> {
    Ok(match store.strip_prefix("s3://") {
        Some(bucket) => {
            let Some(config_path) = config else {
                bail!("--store s3://… needs --config FILE with an [objects] section");
            };
            let config = crate::config::load(config_path).map_err(|errors| {
                anyhow::anyhow!(
                    "{}",
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            })?;
            let Some(objects) = config.objects else {
                bail!("{} has no [objects] section", config_path.display());
            };
            let objects = trailwatch_archive::Objects::open(&objects)?;
            Box::new(StoreSource {
                store: objects.bucket(bucket.trim_end_matches('/'))?,
                handle: tokio::runtime::Handle::current(),
            })
        }
        None => {
            let root = Path::new(store);
            if !root.is_dir() {
                bail!("{} is not a folder", root.display());
            }
            Box::new(FolderSource::new(root))
        }
    })
}

/// `trailwatch import cts-archive`: every trace file under `CloudTraces/` (digests and record
/// files skipped), sent to the trace log in batches of 1,000. Exit status 1 when a file could not
/// be read or a trace was refused (each is reported), 0 when everything was imported or was
/// already there.
pub async fn import(
    client: &trailwatch_client::Client,
    args: &crate::cli::ImportArchiveArgs,
) -> anyhow::Result<bool> {
    let source: Arc<dyn ObjectSource + Send> =
        Arc::from(open_source(&args.store, args.config.as_deref())?);
    let lister = source.clone();
    let mut keys: Vec<String> = tokio::task::spawn_blocking(move || lister.list("CloudTraces/"))
        .await
        .context("listing stopped")??
        .into_iter()
        .map(|o| o.key)
        .filter(|k| {
            !k.contains("/Digest/")
                && !k.contains("/Records/")
                && (k.ends_with(".json.gz") || k.ends_with(".json"))
        })
        .collect();
    keys.sort();
    let (mut files, mut accepted, mut duplicates, mut problems) = (0u64, 0u64, 0u64, 0u64);
    for key in keys {
        let reader = source.clone();
        let k = key.clone();
        let bytes = tokio::task::spawn_blocking(move || reader.get(&k))
            .await
            .context("reading stopped")??;
        let Some(bytes) = bytes else { continue };
        let contents = match trailwatch_integrity::read_file(&bytes) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{key}: not a trace file: {e}");
                problems += 1;
                continue;
            }
        };
        files += 1;
        for chunk in contents.items.chunks(1000) {
            let r = client.put_traces(chunk).await?;
            for (i, result) in r.body["results"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                if result.get("error_code").is_some() {
                    problems += 1;
                    eprintln!(
                        "{key}: trace {i}: {}",
                        result["error_msg"].as_str().unwrap_or("refused")
                    );
                } else if result["duplicate"] == true {
                    duplicates += 1;
                } else {
                    accepted += 1;
                }
            }
        }
    }
    println!(
        "imported {accepted} traces from {files} files ({duplicates} already stored, {problems} problems)"
    );
    Ok(problems == 0)
}
