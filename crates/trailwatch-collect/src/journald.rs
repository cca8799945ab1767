//! journald as a source: `journalctl -f -o json`, resumed with `--after-cursor` from the
//! `__CURSOR` of the last delivered record.
//!
//! The command is `journalctl --follow --output=json --no-pager` plus, with a cursor,
//! `--after-cursor=<cursor> --no-tail`; without one, `--no-tail` (start_at = beginning: the
//! whole journal) or `--lines=0` (start_at = end); then `--unit=<u>` per unit and the
//! configured matches (`_COMM=sshd`). When journalctl cannot be started (not installed), the
//! source fails with an error naming it — other sources keep running. When it exits, it is
//! restarted with backoff from the last cursor read.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::sync::watch;

use crate::lines::{LineSplitter, Piece};
use crate::run::{Pipeline, RecordParser, Sink};
use crate::state::Position;
use crate::tail::{FileId, Line};
use crate::{CollectError, SourceConfig, StartAt};

/// The arguments given to journalctl.
pub fn arguments(config: &SourceConfig, cursor: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "--follow".to_owned(),
        "--output=json".to_owned(),
        "--no-pager".to_owned(),
    ];
    // An empty cursor is none (records without `__CURSOR`, which real journald never writes).
    match (cursor.filter(|c| !c.is_empty()), config.start_at) {
        (Some(c), _) => {
            args.push(format!("--after-cursor={c}"));
            args.push("--no-tail".to_owned());
        }
        (None, StartAt::Beginning) => args.push("--no-tail".to_owned()),
        (None, StartAt::End) => args.push("--lines=0".to_owned()),
    }
    for u in &config.units {
        args.push(format!("--unit={u}"));
    }
    args.extend(config.matches.iter().cloned());
    args
}

/// The `__CURSOR` of the last record among `lines` that has one.
fn last_cursor(lines: &[Line]) -> Option<String> {
    lines.iter().rev().find_map(|l| {
        serde_json::from_str::<serde_json::Value>(&l.text)
            .ok()?
            .get("__CURSOR")?
            .as_str()
            .map(str::to_owned)
    })
}

pub(crate) async fn run<S: Sink>(
    config: &SourceConfig,
    mut cursor: Option<String>,
    mut parser: RecordParser,
    pipeline: &mut Pipeline<S>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), CollectError> {
    let program = config.journalctl.display().to_string();
    let label = format!("journald ({program})");
    let interval = Duration::from_millis(config.poll_interval_ms);
    let mut restart_delay = Duration::from_millis(500);
    let mut record = 0u64;
    loop {
        let mut command = tokio::process::Command::new(&config.journalctl);
        command
            .args(arguments(config, cursor.as_deref()))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|error| CollectError::Journalctl {
            source_name: pipeline.name.clone(),
            program: program.clone(),
            error,
        })?;
        tracing::info!(source = %pipeline.name, "following {label} after cursor {cursor:?}");
        let (Some(mut stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(CollectError::Config {
                source_name: pipeline.name.clone(),
                message: "journalctl's output could not be captured".into(),
            });
        };
        let name = pipeline.name.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                tracing::warn!(source = %name, "journalctl: {l}");
            }
        });
        let mut split = LineSplitter::new(config.max_line_bytes);
        let mut buf = vec![0u8; 64 * 1024];
        let mut pending: Vec<Line> = Vec::new();
        let mut pending_bytes = 0usize;
        let mut ended = false;
        while !ended {
            if *stop.borrow() {
                let _ = child.kill().await;
                return Ok(());
            }
            // Read while there is room in the spool; a pause leaves journalctl blocked on
            // its pipe, which is the back-pressure we want.
            let mut got_data = false;
            if !pipeline.spool.is_full() {
                tokio::select! {
                    r = tokio::time::timeout(interval, stdout.read(&mut buf)) => match r {
                        Ok(Ok(0)) | Ok(Err(_)) => ended = true,
                        Ok(Ok(n)) => {
                            got_data = true;
                            let mut pieces = Vec::new();
                            split.push(&buf[..n], &mut pieces);
                            for p in pieces {
                                record += 1;
                                match p {
                                    Piece::Line { text, .. } => {
                                        pending_bytes += text.len();
                                        pending.push(Line { text, line: record, file: FileId { dev: 0, ino: 0 } });
                                    }
                                    Piece::TooLong { bytes } => tracing::warn!(
                                        source = %pipeline.name,
                                        "{label} record {record}: {bytes} bytes is longer than max_line_bytes; skipped"
                                    ),
                                }
                            }
                        }
                        Err(_) => {}
                    },
                    _ = stop.changed() => {}
                }
            } else {
                tokio::time::sleep(interval).await;
            }
            // A batch when the output pauses, when it is big, or at the end.
            if !pending.is_empty() && (!got_data || ended || pending_bytes >= 1024 * 1024) {
                let lines = std::mem::take(&mut pending);
                pending_bytes = 0;
                if let Some(c) = last_cursor(&lines) {
                    cursor = Some(c);
                }
                let traces = parser.parse(&label, &lines);
                let position = Position::Journald {
                    cursor: cursor.clone().unwrap_or_default(),
                };
                pipeline
                    .submit(position, parser.sessions.clone(), traces)
                    .await?;
            }
            pipeline.drain().await?;
        }
        let status = child.wait().await;
        tracing::warn!(
            source = %pipeline.name,
            "journalctl ended ({status:?}); restarting in {} ms",
            restart_delay.as_millis()
        );
        tokio::select! {
            () = tokio::time::sleep(restart_delay) => {}
            _ = stop.changed() => {}
        }
        restart_delay = (restart_delay * 2).min(Duration::from_secs(30));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn arguments_follow_the_cursor_filters_and_start() {
        let mut c = SourceConfig {
            units: vec!["ssh".into()],
            matches: vec!["_COMM=sshd".into()],
            ..SourceConfig::default()
        };
        assert_eq!(
            arguments(&c, Some("s=1;i=2")),
            [
                "--follow",
                "--output=json",
                "--no-pager",
                "--after-cursor=s=1;i=2",
                "--no-tail",
                "--unit=ssh",
                "_COMM=sshd"
            ]
        );
        c.start_at = StartAt::End;
        assert!(arguments(&c, None).contains(&"--lines=0".to_owned()));
        // An empty cursor (records that had none) is no cursor.
        assert!(arguments(&c, Some("")).contains(&"--lines=0".to_owned()));
    }

    #[test]
    fn the_cursor_is_the_last_records() {
        let l = |t: &str| Line {
            text: t.into(),
            line: 1,
            file: FileId { dev: 0, ino: 0 },
        };
        let lines = [
            l(r#"{"__CURSOR":"a"}"#),
            l(r#"{"__CURSOR":"b"}"#),
            l("not json"),
        ];
        assert_eq!(last_cursor(&lines).as_deref(), Some("b"));
    }
}
