//! `trailwatch verify` and `trailwatch keys export`: the archive, offline.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use trailwatch_archive::source::{FolderSource, StoreSource};
use trailwatch_integrity::{ObjectSource, PublicKey, Report, VerifyOptions, verify_with};

use crate::cli::{OutputFormat, VerifyArgs};

/// A time given as RFC 3339 or epoch milliseconds.
fn parse_time(flag: &str, s: &str) -> anyhow::Result<DateTime<Utc>> {
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
    let source: Box<dyn ObjectSource + Send> = match args.store.strip_prefix("s3://") {
        Some(bucket) => {
            let Some(config_path) = &args.config else {
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
            let root = Path::new(&args.store);
            if !root.is_dir() {
                bail!("{} is not a folder", root.display());
            }
            Box::new(FolderSource::new(root))
        }
    };
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
