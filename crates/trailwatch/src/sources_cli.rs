//! `trailwatch import <format> FILE…`: other systems' records become traces
//! (`trailwatch-sources`), sent to the server in batches or printed with `--dry-run`.

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::Value;
use trailwatch_sources::Parsed;

use crate::cli::{ConnectionArgs, ImportFilesArgs, ImportJsonArgs};

/// The formats `import` reads from files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Sshd,
    Journald,
    Cloudtrail,
    WindowsSecurity,
    K8sAudit,
    /// Binary Windows event logs.
    Evtx,
    /// JSON Lines with a generic mapping.
    Json,
}

/// Problems printed per file before the rest are only counted.
const PROBLEMS_SHOWN: usize = 20;

fn reference_time(arg: Option<&str>) -> anyhow::Result<DateTime<Utc>> {
    match arg {
        None => Ok(Utc::now()),
        Some(s) => crate::archive_cli::parse_time("--reference-time", s),
    }
}

fn parse(
    format: Format,
    file: &std::path::Path,
    bytes: &[u8],
    args: &ImportFilesArgs,
    reference: DateTime<Utc>,
    mapping: &trailwatch_sources::cloud::generic::Mapping,
) -> Parsed {
    use trailwatch_sources::cloud;
    if format == Format::Evtx {
        return cloud::windows::parse_evtx(bytes);
    }
    // Invalid UTF-8 is replaced (U+FFFD), so a bad byte spoils one line, not the file.
    let text = String::from_utf8_lossy(bytes);
    let text = text.as_ref();
    match format {
        // Read from the bytes above (binary, not text).
        Format::Evtx => Parsed::default(),
        Format::Json => cloud::generic::parse(text, mapping),
        Format::Cloudtrail => cloud::cloudtrail::parse(text),
        Format::WindowsSecurity if file.extension().is_some_and(|e| e == "xml") => {
            cloud::windows::parse_xml(text)
        }
        Format::WindowsSecurity => cloud::windows::parse_json(text),
        Format::K8sAudit => cloud::k8s::parse(text),
        Format::Sshd => {
            trailwatch_sources::sshd::parse_syslog(text, args.host.as_deref(), reference)
        }
        Format::Journald => trailwatch_sources::sshd::parse_journald_json(text),
    }
}

/// Exit status: `Ok(true)` every record parsed and was accepted (or already stored), `Ok(false)`
/// some did not (each reported), `Err` could not run.
/// `import json`: the mapping from `--mapping FILE` (TOML) or `--preset`.
pub async fn import_json(
    connection: &ConnectionArgs,
    args: &ImportJsonArgs,
) -> anyhow::Result<bool> {
    use trailwatch_sources::cloud::generic::Mapping;
    let mapping = match (&args.mapping, args.preset.as_deref()) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the mapping {}", path.display()))?;
            toml::from_str::<Mapping>(&text)
                .map_err(|e| anyhow::anyhow!("mapping {}: {e}", path.display()))?
        }
        (None, Some("okta")) => Mapping::okta(),
        (None, Some("keycloak")) => Mapping::keycloak(),
        _ => anyhow::bail!("give --mapping FILE or --preset keycloak|okta"),
    };
    import_with(connection, Format::Json, &args.files, &mapping).await
}

pub async fn import(
    connection: &ConnectionArgs,
    format: Format,
    args: &ImportFilesArgs,
) -> anyhow::Result<bool> {
    let mapping = trailwatch_sources::cloud::generic::Mapping::default();
    import_with(connection, format, args, &mapping).await
}

async fn import_with(
    connection: &ConnectionArgs,
    format: Format,
    args: &ImportFilesArgs,
    mapping: &trailwatch_sources::cloud::generic::Mapping,
) -> anyhow::Result<bool> {
    let reference = reference_time(args.reference_time.as_deref())?;
    let client = if args.dry_run {
        None
    } else {
        Some(crate::connect::client(connection).await?)
    };
    let (mut traces, mut accepted, mut duplicates, mut refused, mut problems, mut skipped) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    for file in &args.files {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let parsed = parse(format, file, &bytes, args, reference, mapping);
        for (i, p) in parsed.problems.iter().enumerate() {
            if i < PROBLEMS_SHOWN {
                eprintln!("{}:{}: {}", file.display(), p.line, p.reason);
            }
        }
        if parsed.problems.len() > PROBLEMS_SHOWN {
            eprintln!(
                "{}: {} more problems not shown",
                file.display(),
                parsed.problems.len() - PROBLEMS_SHOWN
            );
        }
        problems += parsed.problems.len() as u64;
        skipped += parsed.skipped;
        traces += parsed.traces.len() as u64;
        match &client {
            None => {
                for t in &parsed.traces {
                    println!("{t}");
                }
            }
            Some(client) => {
                for chunk in parsed.traces.chunks(1000) {
                    let r = client.put_traces(chunk).await?;
                    for result in r.body["results"].as_array().into_iter().flatten() {
                        if result.get("error_code").is_some() {
                            refused += 1;
                            eprintln!(
                                "{}: a trace was refused: {}",
                                file.display(),
                                result["error_msg"].as_str().unwrap_or("refused")
                            );
                        } else if result["duplicate"] == Value::Bool(true) {
                            duplicates += 1;
                        } else {
                            accepted += 1;
                        }
                    }
                }
            }
        }
    }
    if client.is_some() {
        eprintln!(
            "{traces} traces: {accepted} stored, {duplicates} already stored, {refused} refused; \
             {skipped} records were not audit events; {problems} did not parse"
        );
    } else {
        eprintln!(
            "{traces} traces; {skipped} records were not audit events; {problems} did not parse"
        );
    }
    Ok(problems == 0 && refused == 0)
}
