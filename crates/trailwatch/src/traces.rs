//! `trailwatch traces put|list`.

use std::io::{BufRead, BufReader, Read};

use anyhow::{Context, bail};
use serde_json::Value;
use trailwatch_client::Client;

use crate::cli::{ListArgs, OutputFormat, PutArgs};

/// One record read from the input, with where it came from for error reports.
struct Record {
    origin: String,
    value: Value,
}

/// A record that could not be sent or was rejected.
struct Failure {
    origin: String,
    reason: String,
}

#[derive(Default)]
struct Tally {
    stored: u64,
    duplicates: u64,
    failures: Vec<Failure>,
    failed: u64,
}

const SHOWN_FAILURES: usize = 20;

impl Tally {
    fn fail(&mut self, origin: String, reason: String) {
        self.failed += 1;
        if self.failures.len() < SHOWN_FAILURES {
            self.failures.push(Failure { origin, reason });
        }
    }
}

pub async fn put(client: &Client, args: &PutArgs) -> anyhow::Result<bool> {
    let from_stdin = args.file.as_os_str() == "-";
    let (reader, size): (Box<dyn Read>, Option<u64>) = if from_stdin {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("opening {}", args.file.display()))?;
        let size = file.metadata().ok().map(|m| m.len());
        (Box::new(file), size)
    };
    let progress = match size {
        Some(n) => indicatif::ProgressBar::new(n).with_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        ),
        None => indicatif::ProgressBar::hidden(),
    };
    let mut reader = BufReader::with_capacity(1 << 20, reader);
    let mut tally = Tally::default();
    let batch_size = usize::from(args.batch_size);

    // Sniff the shape: a document that starts with `[` is an array; one whose first line is a
    // complete JSON value is JSON Lines; anything else is one JSON document.
    let mut first = Vec::new();
    reader.read_until(b'\n', &mut first)?;
    let first_trim = String::from_utf8_lossy(&first).trim().to_owned();
    let is_lines =
        first_trim.starts_with('{') && serde_json::from_str::<Value>(&first_trim).is_ok();
    if is_lines {
        let mut batch = Vec::with_capacity(batch_size);
        let mut line_no = 1usize;
        let mut line = first;
        loop {
            progress.inc(line.len() as u64);
            match std::str::from_utf8(&line) {
                Err(_) => tally.fail(format!("line {line_no}"), "not valid UTF-8".into()),
                Ok(text) if text.trim().is_empty() => {}
                Ok(text) => match serde_json::from_str::<Value>(text) {
                    Ok(value) => batch.push(Record {
                        origin: format!("line {line_no}"),
                        value,
                    }),
                    Err(e) => tally.fail(format!("line {line_no}"), format!("not valid JSON: {e}")),
                },
            }
            if batch.len() >= batch_size {
                send(client, std::mem::take(&mut batch), &mut tally).await?;
            }
            line = Vec::new();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            line_no += 1;
        }
        send(client, batch, &mut tally).await?;
    } else {
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest)?;
        let mut all = first;
        all.extend_from_slice(&rest);
        progress.inc(all.len() as u64);
        let doc: Value = serde_json::from_slice(&all)
            .with_context(|| "the input is neither JSON Lines nor one JSON document")?;
        let records: Vec<Record> = match doc {
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, value)| Record {
                    origin: format!("item {i}"),
                    value,
                })
                .collect(),
            Value::Object(mut map) if map.contains_key("traces") => match map.remove("traces") {
                Some(Value::Array(items)) => items
                    .into_iter()
                    .enumerate()
                    .map(|(i, value)| Record {
                        origin: format!("traces[{i}]"),
                        value,
                    })
                    .collect(),
                _ => bail!("`traces` must be an array"),
            },
            other => vec![Record {
                origin: "document".into(),
                value: other,
            }],
        };
        let mut iter = records.into_iter().peekable();
        while iter.peek().is_some() {
            let batch: Vec<Record> = iter.by_ref().take(batch_size).collect();
            send(client, batch, &mut tally).await?;
        }
    }
    progress.finish_and_clear();
    println!(
        "{} stored, {} already stored, {} rejected",
        tally.stored, tally.duplicates, tally.failed
    );
    for f in &tally.failures {
        eprintln!("  {}: {}", f.origin, f.reason);
    }
    if tally.failed > tally.failures.len() as u64 {
        eprintln!(
            "  … and {} more",
            tally.failed - tally.failures.len() as u64
        );
    }
    Ok(tally.failed == 0)
}

async fn send(client: &Client, batch: Vec<Record>, tally: &mut Tally) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let values: Vec<Value> = batch.iter().map(|r| r.value.clone()).collect();
    let response = client.put_traces(&values).await?;
    let results = response
        .body
        .get("results")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if results.len() != batch.len() {
        bail!(
            "the server answered {} results for {} traces; stopping so that nothing is miscounted",
            results.len(),
            batch.len()
        );
    }
    for (record, result) in batch.into_iter().zip(results) {
        if result.get("trace_id").is_some() {
            if result.get("duplicate").and_then(Value::as_bool) == Some(true) {
                tally.duplicates += 1;
            } else {
                tally.stored += 1;
            }
        } else {
            let reason = result
                .get("error_msg")
                .and_then(Value::as_str)
                .unwrap_or("rejected")
                .to_owned();
            tally.fail(record.origin, reason);
        }
    }
    Ok(())
}

/// Milliseconds from `1700000000000`, RFC 3339, or an age (`90s`, `30m`, `12h`, `7d`).
pub fn parse_time(s: &str, now_ms: i64) -> anyhow::Result<i64> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    let unit = s.chars().last().unwrap_or(' ');
    let factor = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => 0,
    };
    if factor > 0
        && let Ok(n) = s[..s.len() - 1].parse::<i64>()
    {
        return Ok(now_ms - n * factor);
    }
    bail!(
        "`{s}` is not a time: use milliseconds, RFC 3339 (2026-11-25T10:00:00Z) or an age such as 30m, 12h, 7d"
    )
}

pub async fn list(client: &Client, args: &ListArgs) -> anyhow::Result<()> {
    let now = trailwatch_store::now_ms();
    let mut params: Vec<(&str, String)> = vec![("limit", args.limit.to_string())];
    if let Some(t) = &args.from {
        params.push(("from", parse_time(t, now)?.to_string()));
    }
    if let Some(t) = &args.to {
        params.push(("to", parse_time(t, now)?.to_string()));
    }
    let filters = [
        ("trace_type", &args.trace_type),
        ("tracker_name", &args.tracker_name),
        ("service_type", &args.service_type),
        ("user", &args.user),
        ("resource_id", &args.resource_id),
        ("resource_name", &args.resource_name),
        ("resource_type", &args.resource_type),
        ("trace_id", &args.trace_id),
        ("trace_name", &args.trace_name),
        ("trace_rating", &args.trace_rating),
        ("source_ip", &args.source_ip),
    ];
    for (k, v) in filters {
        if let Some(v) = v {
            params.push((k, v.clone()));
        }
    }
    let mut marker = args.next.clone();
    let mut traces: Vec<Value> = Vec::new();
    loop {
        let mut page_params = params.clone();
        if let Some(m) = &marker {
            page_params.push(("next", m.clone()));
        }
        let page = client.list_traces(&page_params).await?;
        if let Some(items) = page.get("traces").and_then(Value::as_array) {
            traces.extend(items.iter().cloned());
        }
        marker = page
            .pointer("/meta_data/marker")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if !args.all || marker.is_none() {
            break;
        }
    }
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&traces)?),
        OutputFormat::Table => {
            print_table(&traces);
            if let Some(m) = marker {
                eprintln!("more traces match: continue with --next {m} (or use --all)");
            }
        }
    }
    Ok(())
}

fn cell(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

fn print_table(traces: &[Value]) {
    let header = [
        "TIME",
        "TRACE_NAME",
        "SERVICE",
        "RESOURCE_TYPE",
        "USER",
        "SOURCE_IP",
        "RATING",
        "TRACE_ID",
    ];
    let rows: Vec<[String; 8]> = traces
        .iter()
        .map(|t| {
            let time = t
                .get("time")
                .and_then(Value::as_i64)
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
                .unwrap_or_else(|| "-".into());
            [
                time,
                cell(t, "/trace_name"),
                cell(t, "/service_type"),
                cell(t, "/resource_type"),
                cell(t, "/user/name"),
                cell(t, "/source_ip"),
                cell(t, "/trace_rating"),
                cell(t, "/trace_id"),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_in_every_form() {
        let now = 1_000_000_000;
        assert_eq!(parse_time("123", now).unwrap(), 123);
        assert_eq!(parse_time("30m", now).unwrap(), now - 1_800_000);
        assert_eq!(parse_time("1970-01-01T00:00:01Z", now).unwrap(), 1000);
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("m", now).is_err());
    }
}
