//! `trailwatch functions|triggers|agencies`: the FunctionGraph API and IAM agencies from the
//! shell. The request-building helpers are shared with [`crate::apply`], which applies the
//! resources declared in the configuration file through the same API calls.

use std::io::Read as _;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Map, Value, json};
use trailwatch_client::Client;

use crate::cli::{
    AgenciesCommand, FunctionCreateArgs, FunctionsCommand, OutputFormat, TriggerCreateArgs,
    TriggersCommand,
};
use crate::iam::print_list;

/// The trust name of the function service (OTC's `op_svc_cff`).
pub const FUNCTION_SERVICE: &str = "op_svc_cff";

pub fn fgs(client: &Client) -> String {
    format!("/v2/{}/fgs", client.project_id())
}

/// `KEY=VALUE` flags as a JSON-object string (`user_data`); `flag` names them in errors.
fn pairs_json(pairs: &[String], flag: &str) -> anyhow::Result<String> {
    let mut m = Map::new();
    for p in pairs {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("{flag} `{p}` is not KEY=VALUE"))?;
        if m.insert(k.to_owned(), Value::String(v.to_owned()))
            .is_some()
        {
            bail!("{flag}: `{k}` is given twice");
        }
    }
    Ok(Value::Object(m).to_string())
}

/// The name a function is known by in a trigger: the last part of `package:name` or of a URN.
fn short_name(function: &str) -> &str {
    let parts: Vec<&str> = function.split(':').collect();
    match parts.as_slice() {
        ["urn", "fss", _, _, "function", _, name, ..] => name,
        _ => parts.last().copied().unwrap_or(function),
    }
}

fn time(ms: &Value) -> String {
    ms.as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| "-".into())
}

/// Runs a `functions` command; `Ok(false)` when an invocation failed (exit status 1).
pub async fn functions(client: &Client, command: &FunctionsCommand) -> anyhow::Result<bool> {
    let base = fgs(client);
    match command {
        FunctionsCommand::Create(args) => {
            let r = client
                .send(
                    Method::POST,
                    &format!("{base}/functions"),
                    "",
                    Some(create_body(args)?),
                )
                .await?;
            println!(
                "created {}",
                r.body["func_urn"].as_str().unwrap_or_default()
            );
        }
        FunctionsCommand::List { output } => {
            let items = list_functions(client).await?;
            print_list(
                &items,
                *output,
                &[
                    "func_name",
                    "package",
                    "handler",
                    "runtime",
                    "memory_size",
                    "timeout",
                    "xrole",
                    "last_modified",
                ],
            );
        }
        FunctionsCommand::Invoke {
            function,
            event,
            event_file,
            run_async,
            log,
        } => {
            let event = read_event(event.as_deref(), event_file.as_deref())?;
            if *run_async {
                let r = client
                    .send(
                        Method::POST,
                        &format!("{base}/functions/{function}/invocations-async"),
                        "",
                        Some(event),
                    )
                    .await?;
                println!("{}", r.body["request_id"].as_str().unwrap_or_default());
                eprintln!("queued; `trailwatch functions logs {function}` shows how it went");
                return Ok(true);
            }
            let r = client
                .send(
                    Method::POST,
                    &format!("{base}/functions/{function}/invocations"),
                    "",
                    Some(event),
                )
                .await?;
            let request_id = r.body["request_id"].as_str().unwrap_or_default();
            match &r.body["result"] {
                Value::String(s) => println!("{s}"),
                other => println!("{other}"),
            }
            if *log {
                // The typed client sends no extra headers, so the log comes from the
                // invocation's record: the same last 4 KB that `X-Cff-Log-Type: tail` returns.
                let log = invocation_log(client, function, request_id).await?;
                eprintln!("--- log of request {request_id} ---");
                eprintln!("{}", log.trim_end());
            }
            let status = r.body["status"].as_i64().unwrap_or(0);
            if status != 200 {
                eprintln!("the function failed (status {status}, request {request_id})");
                return Ok(false);
            }
        }
        FunctionsCommand::Logs {
            function,
            limit,
            output,
        } => {
            let r = client
                .send(
                    Method::GET,
                    &format!("{base}/functions/{function}/invocations"),
                    &format!("limit={limit}"),
                    None,
                )
                .await?;
            let mut items = r.body["invocations"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if *output == OutputFormat::Table {
                for i in &mut items {
                    i["time"] = json!(time(&i["created_at"]));
                    i["duration_ms"] = match i["duration"].as_f64() {
                        Some(d) => json!(format!("{d:.1}")),
                        None => Value::Null,
                    };
                    let result = i["error"]
                        .as_str()
                        .or(i["result"].as_str())
                        .unwrap_or_default();
                    i["outcome"] = json!(result.chars().take(60).collect::<String>());
                }
            }
            print_list(
                &items,
                *output,
                &[
                    "time",
                    "request_id",
                    "trigger",
                    "mode",
                    "state",
                    "status",
                    "duration_ms",
                    "outcome",
                ],
            );
        }
        FunctionsCommand::Stats { function, minutes } => {
            let r = client
                .send(
                    Method::GET,
                    &format!("{base}/functions/{function}/statistics/{minutes}"),
                    "",
                    None,
                )
                .await?;
            print!("{}", stats_text(function, *minutes, &r.body));
        }
        FunctionsCommand::Delete { function } => {
            client
                .send(
                    Method::DELETE,
                    &format!("{base}/functions/{function}"),
                    "",
                    None,
                )
                .await?;
            println!("deleted {function}");
        }
    }
    Ok(true)
}

fn create_body(a: &FunctionCreateArgs) -> anyhow::Result<Value> {
    let mut body = json!({
        "func_name": a.name,
        "package": a.package,
        "runtime": a.runtime,
        "handler": a.handler,
        "memory_size": a.memory,
        "timeout": a.timeout,
        "user_data": pairs_json(&a.env, "--env")?,
        "description": a.description,
        "code_type": "inline",
    });
    if !a.encrypted_env.is_empty() {
        body["encrypted_user_data"] = json!(pairs_json(&a.encrypted_env, "--encrypted-env")?);
    }
    if let Some(agency) = &a.agency {
        body["xrole"] = json!(agency);
    }
    if let Some(n) = a.max_instances {
        body["max_instance_num"] = json!(n);
    }
    Ok(body)
}

/// Every function of the project (following `next_marker`).
pub async fn list_functions(client: &Client) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut marker = 0u64;
    loop {
        let r = client
            .send(
                Method::GET,
                &format!("{}/functions", fgs(client)),
                &format!("marker={marker}&maxitems=400"),
                None,
            )
            .await?;
        out.extend(r.body["functions"].as_array().cloned().unwrap_or_default());
        match r.body["next_marker"].as_u64() {
            Some(next) if next > marker => marker = next,
            _ => return Ok(out),
        }
    }
}

fn read_event(event: Option<&str>, file: Option<&std::path::Path>) -> anyhow::Result<Value> {
    let (text, what) = match (event, file) {
        (Some(e), _) => (e.to_owned(), "--event".to_owned()),
        (None, Some(p)) if p.as_os_str() == "-" => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .context("reading the event from standard input")?;
            (s, "the event on standard input".to_owned())
        }
        (None, Some(p)) => (
            std::fs::read_to_string(p)
                .with_context(|| format!("reading the event file {}", p.display()))?,
            format!("the event file {}", p.display()),
        ),
        (None, None) => return Ok(json!({})),
    };
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(&text).with_context(|| format!("{what} is not valid JSON"))
}

async fn invocation_log(
    client: &Client,
    function: &str,
    request_id: &str,
) -> anyhow::Result<String> {
    let r = client
        .send(
            Method::GET,
            &format!("{}/functions/{function}/invocations", fgs(client)),
            "limit=100",
            None,
        )
        .await?;
    let log = r.body["invocations"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|i| i["request_id"] == request_id)
        .and_then(|i| i["log"].as_str())
        .unwrap_or("(no log recorded)");
    Ok(log.to_owned())
}

/// The totals of a statistics answer (per-minute series) as text.
fn stats_text(function: &str, minutes: u32, body: &Value) -> String {
    let series = |k: &str| -> Vec<f64> {
        body[k]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p["value"].as_f64().unwrap_or(0.0))
            .collect()
    };
    let count = series("count");
    let total: f64 = count.iter().sum();
    let fails: f64 = series("fail_count").iter().sum();
    let rejects: f64 = series("reject_count").iter().sum();
    // Per-minute averages weighted by that minute's invocations.
    let weighted: f64 = series("duration")
        .iter()
        .zip(&count)
        .filter(|(d, c)| **d >= 0.0 && **c > 0.0)
        .map(|(d, c)| d * c)
        .sum();
    let valid = |v: Vec<f64>| v.into_iter().filter(|d| *d >= 0.0).collect::<Vec<_>>();
    let max = valid(series("max_duration")).into_iter().reduce(f64::max);
    let min = valid(series("min_duration")).into_iter().reduce(f64::min);
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} ms"));
    let avg = (total > 0.0).then(|| weighted / total);
    format!(
        "{function}, last {minutes} minute(s)\n\
         invocations  {total}\n\
         failures     {fails}\n\
         throttled    {rejects}\n\
         duration     avg {}, max {}, min {}\n",
        ms(avg),
        ms(max),
        ms(min)
    )
}

/// The `POST /v2/{pid}/fgs/triggers/{function}` body of a trigger.
#[derive(Debug, Clone, Default)]
pub struct TriggerSpec {
    pub type_code: String,
    pub name: Option<String>,
    pub enabled: bool,
    pub operations: Vec<String>,
    pub schedule_type: String,
    pub schedule: Option<String>,
    pub user_event: Option<String>,
    pub log_group: Option<String>,
    pub log_stream: Option<String>,
}

impl TriggerSpec {
    /// `event_data` for the type; an error says what the type needs and is missing.
    pub fn event_data(&self, function: &str) -> anyhow::Result<Value> {
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| short_name(function).to_owned());
        Ok(match self.type_code.as_str() {
            "CTS" => {
                if self.operations.is_empty() {
                    bail!("a CTS trigger needs operations, e.g. 'IAM:user:login;logout'");
                }
                json!({"name": name, "operations": self.operations})
            }
            "TIMER" => {
                let Some(schedule) = &self.schedule else {
                    bail!("a TIMER trigger needs a schedule, e.g. 5m");
                };
                let mut d = json!({"name": name, "schedule_type": self.schedule_type,
                                   "schedule": schedule});
                if let Some(u) = &self.user_event {
                    d["user_event"] = json!(u);
                }
                d
            }
            "LTS" => match (&self.log_group, &self.log_stream) {
                (Some(g), Some(s)) => json!({"log_group_id": g, "log_topic_id": s}),
                _ => bail!("an LTS trigger needs a log group and a log stream (their ids)"),
            },
            // Let the API say what it supports.
            _ => json!({"name": name}),
        })
    }

    pub fn status(&self) -> &'static str {
        if self.enabled { "ACTIVE" } else { "DISABLED" }
    }

    pub fn body(&self, function: &str) -> anyhow::Result<Value> {
        let event_type = if self.type_code == "TIMER" {
            "triggered"
        } else {
            "MessageCreated"
        };
        Ok(json!({
            "trigger_type_code": self.type_code,
            "trigger_status": self.status(),
            "event_type_code": event_type,
            "event_data": self.event_data(function)?,
        }))
    }
}

/// What a trigger listens to, in a few words.
fn listens_to(t: &Value) -> String {
    let d = &t["event_data"];
    match t["trigger_type_code"].as_str() {
        Some("CTS") => d["operations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        Some("TIMER") => format!(
            "{} {}",
            d["schedule_type"].as_str().unwrap_or_default(),
            d["schedule"].as_str().unwrap_or_default()
        ),
        Some("LTS") => format!(
            "{}/{}",
            d["log_group_name"]
                .as_str()
                .or(d["log_group_id"].as_str())
                .unwrap_or_default(),
            d["log_topic_name"]
                .as_str()
                .or(d["log_topic_id"].as_str())
                .unwrap_or_default()
        ),
        _ => d.to_string(),
    }
}

pub async fn triggers(client: &Client, command: &TriggersCommand) -> anyhow::Result<()> {
    let base = fgs(client);
    match command {
        TriggersCommand::Create(a) => {
            let spec = spec_from_args(a);
            let body = spec.body(&a.function)?;
            let r = client
                .send(
                    Method::POST,
                    &format!("{base}/triggers/{}", a.function),
                    "",
                    Some(body),
                )
                .await?;
            println!("{}", r.body["trigger_id"].as_str().unwrap_or_default());
            eprintln!(
                "created {} trigger of {} ({})",
                spec.type_code,
                a.function,
                spec.status()
            );
        }
        TriggersCommand::List { function, output } => {
            let r = client
                .send(
                    Method::GET,
                    &format!("{base}/triggers/{function}"),
                    "",
                    None,
                )
                .await?;
            let mut items = r.body.as_array().cloned().unwrap_or_default();
            if *output == OutputFormat::Table {
                for t in &mut items {
                    t["listens_to"] = json!(listens_to(t));
                }
            }
            print_list(
                &items,
                *output,
                &[
                    "trigger_id",
                    "trigger_type_code",
                    "trigger_status",
                    "listens_to",
                    "created_time",
                ],
            );
        }
        TriggersCommand::Delete {
            function,
            trigger_type,
            trigger_id,
        } => {
            let type_code = trigger_type.to_ascii_uppercase();
            client
                .send(
                    Method::DELETE,
                    &format!("{base}/triggers/{function}/{type_code}/{trigger_id}"),
                    "",
                    None,
                )
                .await?;
            println!("deleted {type_code} trigger {trigger_id}");
        }
    }
    Ok(())
}

fn spec_from_args(a: &TriggerCreateArgs) -> TriggerSpec {
    TriggerSpec {
        type_code: a.trigger_type.to_ascii_uppercase(),
        name: a.name.clone(),
        enabled: !a.disabled,
        operations: a.operations.clone(),
        schedule_type: a.schedule_type.clone(),
        schedule: a.schedule.clone(),
        user_event: a.user_event.clone(),
        log_group: a.log_group.clone(),
        log_stream: a.log_stream.clone(),
    }
}

// ---- agencies ---------------------------------------------------------------------------

/// The id of the client's domain (from the projects it may use).
pub async fn domain_id(client: &Client) -> anyhow::Result<String> {
    let r = client
        .send(Method::GET, "/v3/auth/projects", "", None)
        .await?;
    r.body["projects"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["id"] == client.project_id())
        .and_then(|p| p["domain_id"].as_str())
        .map(str::to_owned)
        .context("the server did not list the current project's domain")
}

/// The roles named (by display name or internal name) with their ids, as the server lists
/// them; an unknown name is an error listing the roles.
pub async fn resolve_roles(
    client: &Client,
    names: &[String],
) -> anyhow::Result<Vec<(String, String)>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let r = client.send(Method::GET, "/v3/roles", "", None).await?;
    let roles = r.body["roles"].as_array().cloned().unwrap_or_default();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let Some(role) = roles
            .iter()
            .find(|r| r["display_name"] == name.as_str() || r["name"] == name.as_str())
        else {
            let known: Vec<&str> = roles
                .iter()
                .filter_map(|r| r["display_name"].as_str())
                .collect();
            bail!("role `{name}` does not exist; roles: {}", known.join(", "));
        };
        out.push((
            role["display_name"].as_str().unwrap_or(name).to_owned(),
            role["id"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    Ok(out)
}

/// The agency of this name in the client's domain, if any.
pub async fn find_agency(client: &Client, name: &str) -> anyhow::Result<Option<Value>> {
    let r = client
        .send(
            Method::GET,
            "/v3.0/OS-AGENCY/agencies",
            &trailwatch_client::encode_query(&[("name", name.to_owned())]),
            None,
        )
        .await?;
    Ok(r.body["agencies"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["name"] == name)
        .cloned())
}

/// Creates an agency trusting the function service; returns its id.
pub async fn create_agency(
    client: &Client,
    name: &str,
    description: &str,
) -> anyhow::Result<String> {
    let domain = domain_id(client).await?;
    let r = client
        .send(
            Method::POST,
            "/v3.0/OS-AGENCY/agencies",
            "",
            Some(json!({"agency": {"name": name, "domain_id": domain,
                        "trust_domain_name": FUNCTION_SERVICE, "description": description}})),
        )
        .await?;
    r.body["agency"]["id"]
        .as_str()
        .map(str::to_owned)
        .context("the server answered no agency id")
}

fn grants_path(client: &Client, agency_id: &str) -> String {
    format!(
        "/v3.0/OS-AGENCY/projects/{}/agencies/{agency_id}/roles",
        client.project_id()
    )
}

/// The roles granted to the agency in the client's project: (display name, id).
pub async fn granted_roles(
    client: &Client,
    agency_id: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let r = client
        .send(Method::GET, &grants_path(client, agency_id), "", None)
        .await?;
    Ok(r.body["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["display_name"].as_str().unwrap_or_default().to_owned(),
                r["id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

pub async fn grant_role(client: &Client, agency_id: &str, role_id: &str) -> anyhow::Result<()> {
    client
        .send(
            Method::PUT,
            &format!("{}/{role_id}", grants_path(client, agency_id)),
            "",
            None,
        )
        .await?;
    Ok(())
}

pub async fn agencies(client: &Client, command: &AgenciesCommand) -> anyhow::Result<()> {
    match command {
        AgenciesCommand::Create {
            name,
            role,
            description,
        } => {
            // Unknown roles are refused before anything is created.
            let roles = resolve_roles(client, role).await?;
            let id = create_agency(client, name, description).await?;
            println!("created agency {name} (id {id}), trusted by {FUNCTION_SERVICE}");
            for (display, role_id) in roles {
                grant_role(client, &id, &role_id).await.with_context(|| {
                    format!("agency {name} was created, but granting `{display}` failed")
                })?;
                println!("granted {display} in project {}", client.project_id());
            }
        }
        AgenciesCommand::List { output } => {
            let r = client
                .send(Method::GET, "/v3.0/OS-AGENCY/agencies", "", None)
                .await?;
            let mut items = r.body["agencies"].as_array().cloned().unwrap_or_default();
            for a in &mut items {
                let id = a["id"].as_str().unwrap_or_default().to_owned();
                let roles = granted_roles(client, &id).await?;
                a["roles"] = json!(roles.into_iter().map(|(n, _)| n).collect::<Vec<_>>());
                if *output == OutputFormat::Table {
                    a["roles"] = json!(
                        a["roles"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
            print_list(
                &items,
                *output,
                &[
                    "name",
                    "id",
                    "trust_domain_name",
                    "duration",
                    "roles",
                    "create_time",
                ],
            );
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn short_names() {
        assert_eq!(short_name("login_audit"), "login_audit");
        assert_eq!(short_name("default:login_audit"), "login_audit");
        assert_eq!(
            short_name("urn:fss:local:0123:function:default:login_audit:latest"),
            "login_audit"
        );
    }

    #[test]
    fn pairs_become_a_json_object_string() {
        let s = pairs_json(
            &["IP=10.0.0.0/8, 192.168.0.1".into(), "A=b=c".into()],
            "--env",
        )
        .unwrap();
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v, json!({"IP": "10.0.0.0/8, 192.168.0.1", "A": "b=c"}));
        assert!(pairs_json(&["nope".into()], "--env").is_err());
        assert!(pairs_json(&["a=1".into(), "a=2".into()], "--env").is_err());
    }

    #[test]
    fn stats_are_summed_and_weighted() {
        let body = json!({
            "count": [{"timestamp": 1, "value": 3.0}, {"timestamp": 2, "value": 1.0}, {"timestamp": 3, "value": 0.0}],
            "fail_count": [{"timestamp": 1, "value": 1.0}, {"timestamp": 2, "value": 0.0}, {"timestamp": 3, "value": 0.0}],
            "reject_count": [{"timestamp": 1, "value": 0.0}, {"timestamp": 2, "value": 0.0}, {"timestamp": 3, "value": 2.0}],
            "duration": [{"timestamp": 1, "value": 2.0}, {"timestamp": 2, "value": 6.0}, {"timestamp": 3, "value": -1.0}],
            "max_duration": [{"timestamp": 1, "value": 4.0}, {"timestamp": 2, "value": 6.0}, {"timestamp": 3, "value": -1.0}],
            "min_duration": [{"timestamp": 1, "value": 1.0}, {"timestamp": 2, "value": 6.0}, {"timestamp": 3, "value": -1.0}],
        });
        let text = stats_text("f", 60, &body);
        assert!(text.contains("invocations  4\n"), "{text}");
        assert!(text.contains("failures     1\n"), "{text}");
        assert!(text.contains("throttled    2\n"), "{text}");
        assert!(
            text.contains("avg 3.0 ms, max 6.0 ms, min 1.0 ms"),
            "{text}"
        );
        let empty = stats_text("f", 60, &json!({}));
        assert!(empty.contains("avg -, max -, min -"), "{empty}");
    }

    #[test]
    fn trigger_bodies() {
        let cts = TriggerSpec {
            type_code: "CTS".into(),
            enabled: true,
            operations: vec!["IAM:user:login;logout".into()],
            ..TriggerSpec::default()
        };
        let b = cts.body("default:login_audit").unwrap();
        assert_eq!(
            b["event_data"],
            json!({"name": "login_audit", "operations": ["IAM:user:login;logout"]})
        );
        assert_eq!(b["trigger_status"], "ACTIVE");
        let timer = TriggerSpec {
            type_code: "TIMER".into(),
            schedule_type: "Rate".into(),
            ..TriggerSpec::default()
        };
        assert!(timer.body("f").is_err());
        let lts = TriggerSpec {
            type_code: "LTS".into(),
            log_group: Some("g".into()),
            ..TriggerSpec::default()
        };
        assert!(lts.body("f").is_err());
    }
}
