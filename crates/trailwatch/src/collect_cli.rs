//! `trailwatch collect` (sources followed live, sent through the CTS API) and the collectors
//! of `trailwatch serve`'s `[[source]]` blocks (appended to the server's own store). The
//! reading, spooling and checkpointing is `trailwatch-collect`'s; here are the two sinks.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;
use serde_json::Value;
use trailwatch_collect::{Delivery, Sink, SourceConfig, SourceKind};
use trailwatch_trace::Trace;

use crate::cli::{CollectArgs, ConnectionArgs};

fn trace_id(t: &Value) -> String {
    t["trace_id"].as_str().unwrap_or("(no id)").to_owned()
}

/// Sends through `POST /v3/{project_id}/traces`. Connects lazily, so a collector started while
/// the server is down spools until it is up, and connects again after any failed request: a
/// password token expires (after a day by default) and the client does not renew it.
struct ApiSink {
    connection: ConnectionArgs,
    client: tokio::sync::Mutex<Option<Arc<trailwatch_client::Client>>>,
}

impl ApiSink {
    async fn client(&self) -> Result<Arc<trailwatch_client::Client>, String> {
        let mut guard = self.client.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = Arc::new(
            crate::connect::client(&self.connection)
                .await
                .map_err(|e| format!("{e:#}"))?,
        );
        *guard = Some(c.clone());
        Ok(c)
    }
}

impl Sink for ApiSink {
    async fn deliver(&self, traces: &[Value]) -> Result<Delivery, String> {
        let client = self.client().await?;
        let r = match client.put_traces(traces).await {
            Ok(r) => r,
            Err(e) => {
                *self.client.lock().await = None;
                return Err(e.to_string());
            }
        };
        let mut d = Delivery::default();
        let results = r.body["results"].as_array().cloned().unwrap_or_default();
        if results.len() != traces.len() {
            return Err(format!(
                "the server answered {} results for {} traces",
                results.len(),
                traces.len()
            ));
        }
        for (t, result) in traces.iter().zip(&results) {
            if result.get("error_code").is_some() {
                let reason = result["error_msg"].as_str().unwrap_or("refused").to_owned();
                d.refused.push((trace_id(t), reason));
            } else if result["duplicate"] == Value::Bool(true) {
                d.duplicates += 1;
            } else {
                d.stored += 1;
            }
        }
        Ok(d)
    }
}

/// Appends to the server's store in `project_id`, exactly as the CTS ingest route does.
struct StoreSink {
    store: trailwatch_store::Store,
    project_id: String,
}

impl Sink for StoreSink {
    async fn deliver(&self, traces: &[Value]) -> Result<Delivery, String> {
        let now = trailwatch_store::now_ms();
        let mut d = Delivery::default();
        let mut new = Vec::with_capacity(traces.len());
        for t in traces {
            match Trace::from_value(t.clone()) {
                Ok(trace) => new.push(trailwatch_store::NewTrace::from_trace(&trace, now)),
                Err(e) => d.refused.push((trace_id(t), e.to_string())),
            }
        }
        let outcomes = self
            .store
            .append(&self.project_id, new)
            .await
            .map_err(|e| e.to_string())?;
        for o in outcomes {
            match o {
                trailwatch_store::AppendOutcome::Inserted { .. } => d.stored += 1,
                trailwatch_store::AppendOutcome::Duplicate { .. } => d.duplicates += 1,
            }
        }
        Ok(d)
    }
}

/// The `[[source]]` blocks of `trailwatch serve`, started once the server serves.
pub struct ServeSources {
    pub sources: Vec<SourceConfig>,
    pub data_dir: PathBuf,
}

impl ServeSources {
    /// Starts one collector per source. A project that does not exist stops the server (the
    /// file is wrong); a source that cannot run later (no journalctl) is logged and the
    /// others go on.
    pub async fn start(self, started: &trailwatch_api::server::Started) -> Result<(), String> {
        let state_dir = trailwatch_collect::run::serve_state_dir(&self.data_dir);
        for source in self.sources {
            let project_id = source
                .project_id
                .clone()
                .unwrap_or_else(|| started.project_id.clone());
            let pid = project_id.clone();
            let exists = started
                .store
                .read(move |c| trailwatch_store::iam::project_by_id(c, &pid))
                .await
                .map_err(|e| e.to_string())?
                .is_some();
            if !exists {
                return Err(format!(
                    "[[source]] {}: project_id {project_id} does not exist",
                    source.name
                ));
            }
            let sink = Arc::new(StoreSink {
                store: started.store.clone(),
                project_id,
            });
            let name = source.name.clone();
            // Never stopped: the collector ends with the process, and whatever it had not
            // checkpointed is read again at the next start (and answered as duplicates).
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let dir = state_dir.clone();
            tokio::spawn(async move {
                let _keep = stop_tx;
                if let Err(e) = trailwatch_collect::run_source(source, dir, sink, stop_rx).await {
                    tracing::error!("{e}");
                }
            });
            tracing::info!("collecting source {name}");
        }
        Ok(())
    }
}

fn kind_from_flag(s: &str) -> anyhow::Result<SourceKind> {
    SourceKind::ALL
        .into_iter()
        .find(|k| k.as_str() == s)
        .ok_or_else(|| {
            let kinds: Vec<&str> = SourceKind::ALL.iter().map(|k| k.as_str()).collect();
            anyhow::anyhow!("--kind {s}: not a source kind; kinds: {}", kinds.join(", "))
        })
}

fn sources_from(args: &CollectArgs) -> anyhow::Result<Vec<SourceConfig>> {
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        return crate::config::sources::parse_collect(&text).map_err(|errors| {
            let list: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
            anyhow::anyhow!("{} is invalid:\n{}", path.display(), list.join("\n"))
        });
    }
    let kind = match &args.kind {
        Some(k) => kind_from_flag(k)?,
        None => bail!("give --config FILE or --kind (with --path for files)"),
    };
    let source = SourceConfig {
        name: args.name.clone(),
        kind: Some(kind),
        path: args.path.clone(),
        host: args.host.clone(),
        start_at: if args.start_at_end {
            trailwatch_collect::StartAt::End
        } else {
            trailwatch_collect::StartAt::Beginning
        },
        units: args.unit.clone(),
        matches: args.matches.clone(),
        ..SourceConfig::default()
    };
    let problems: Vec<String> = source
        .problems()
        .into_iter()
        .map(|(key, m)| match key {
            Some(k) => format!("  --{}: {m}", k.replace('_', "-")),
            None => format!("  {m}"),
        })
        .collect();
    if !problems.is_empty() {
        bail!("the source is invalid:\n{}", problems.join("\n"));
    }
    Ok(vec![source])
}

/// Runs until Ctrl-C or SIGTERM. `Ok(false)` (exit status 1) when a source stopped with an
/// error; `Err` when nothing could run.
pub async fn collect(connection: &ConnectionArgs, args: &CollectArgs) -> anyhow::Result<bool> {
    let sources = sources_from(args)?;
    let sink = Arc::new(ApiSink {
        connection: connection.clone(),
        client: tokio::sync::Mutex::new(None),
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for source in sources {
        let (sink, stop, dir) = (sink.clone(), stop_rx.clone(), args.state_dir.clone());
        tasks.spawn(trailwatch_collect::run_source(source, dir, sink, stop));
    }
    let total = tasks.len();
    let mut failed = 0usize;
    let signal = crate::shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            () = &mut signal => break,
            next = tasks.join_next() => match next {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => {
                    failed += 1;
                    eprintln!("error: {e}");
                }
                Some(Err(e)) => {
                    failed += 1;
                    eprintln!("error: a source stopped unexpectedly: {e}");
                }
            },
        }
    }
    let _ = stop_tx.send(true);
    while let Some(r) = tasks.join_next().await {
        if let Ok(Err(e)) = r {
            failed += 1;
            eprintln!("error: {e}");
        }
    }
    if failed == total {
        bail!("no source could run");
    }
    Ok(failed == 0)
}
