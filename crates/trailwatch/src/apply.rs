//! Applying the resources declared in the configuration file (`[[topics]]`, `[[agencies]]`,
//! `[[functions]]`) at start: through the HTTP API, as the bootstrap administrator in the
//! bootstrap project, so that every resource is judged by exactly the API's rules.
//!
//! Idempotent, and additive: a resource is identified by its name (topic, agency, function),
//! a subscription by protocol and endpoint, a trigger by its type and what it listens to (CTS
//! operations, timer schedule, LTS stream). What exists already is left alone, except that a
//! topic's display name, a function's configuration and a trigger's status, name and timer
//! event are updated to match the file, and missing role grants are added. Nothing is ever
//! deleted: resources, grants, subscriptions and triggers that are not (or no longer) declared
//! stay as they are. The first resource that cannot be applied stops the start with an error
//! naming it.

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};
use trailwatch_client::Client;

use crate::config::{AgencyDecl, FunctionDecl, Resources, TopicDecl, TriggerDecl};
use crate::functions_cli::{self as fc, FUNCTION_SERVICE, TriggerSpec};

/// What a start did.
#[derive(Debug, Default)]
pub struct Report {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    /// Things a person should know (unconfirmed subscriptions, undeclared triggers).
    pub notes: Vec<String>,
}

impl Report {
    pub fn summary(&self) -> String {
        format!(
            "declared resources: {} created, {} updated, {} unchanged",
            self.created.len(),
            self.updated.len(),
            self.unchanged.len()
        )
    }
}

fn at(line: Option<usize>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

/// Applies everything, in dependency order: topics and their subscriptions, agencies and their
/// grants, functions and their triggers. The error names the resource that failed.
pub async fn apply(client: &Client, resources: &Resources) -> Result<Report, String> {
    let mut report = Report::default();
    for t in &resources.topics {
        topic(client, t, &mut report)
            .await
            .map_err(|e| format!("topic `{}`{}: {e:#}", t.name, at(t.line)))?;
    }
    for a in &resources.agencies {
        agency(client, a, &mut report)
            .await
            .map_err(|e| format!("agency `{}`{}: {e:#}", a.name, at(a.line)))?;
    }
    for f in &resources.functions {
        function(client, f, &mut report)
            .await
            .map_err(|e| format!("function `{}`{}: {e:#}", f.name, at(f.line)))?;
    }
    Ok(report)
}

async fn topic(client: &Client, t: &TopicDecl, report: &mut Report) -> anyhow::Result<()> {
    let base = format!("/v2/{}/notifications/topics", client.project_id());
    let r = client
        .send(
            Method::POST,
            &base,
            "",
            Some(json!({"name": t.name, "display_name": t.display_name})),
        )
        .await?;
    let urn = r.body["topic_urn"]
        .as_str()
        .context("the server answered no topic_urn")?
        .to_owned();
    let what = format!("topic {}", t.name);
    if r.status == 201 {
        report.created.push(what);
    } else {
        let current = client
            .send(Method::GET, &format!("{base}/{urn}"), "", None)
            .await?;
        if current.body["display_name"] != t.display_name.as_str() {
            client
                .send(
                    Method::PUT,
                    &format!("{base}/{urn}"),
                    "",
                    Some(json!({"display_name": t.display_name})),
                )
                .await?;
            report.updated.push(format!("{what} (display_name)"));
        } else {
            report.unchanged.push(what);
        }
    }
    for s in &t.subscriptions {
        let mut body = json!({"protocol": s.protocol, "endpoint": s.endpoint, "remark": s.remark});
        if !s.headers.is_empty() {
            body["extension"] = json!({"header": s.headers});
        }
        let r = client
            .send(
                Method::POST,
                &format!("{base}/{urn}/subscriptions"),
                "",
                Some(body),
            )
            .await
            .with_context(|| format!("subscription {} {}{}", s.protocol, s.endpoint, at(s.line)))?;
        let what = format!(
            "subscription {} {} of topic {}",
            s.protocol, s.endpoint, t.name
        );
        let sub_urn = r.body["subscription_urn"].as_str().unwrap_or_default();
        let status = subscription_status(client, &base, &urn, sub_urn).await?;
        match status {
            Some(0) if r.status == 201 => report.notes.push(format!(
                "{what}: a confirmation request was sent; it receives alarms once confirmed"
            )),
            Some(0) => report.notes.push(format!(
                "{what} is not confirmed yet (a confirmation link is valid 48 h; to send a new \
                 one, delete the subscription and restart)"
            )),
            Some(3) => report.notes.push(format!(
                "{what} was canceled by its recipient and stays canceled (delete it and restart \
                 to subscribe again)"
            )),
            _ => {}
        }
        if r.status == 201 {
            report.created.push(what);
        } else {
            report.unchanged.push(what);
        }
    }
    Ok(())
}

/// The status of one subscription of the topic (0 unconfirmed, 1 confirmed, 3 canceled).
async fn subscription_status(
    client: &Client,
    base: &str,
    topic_urn: &str,
    subscription_urn: &str,
) -> anyhow::Result<Option<i64>> {
    let mut offset = 0;
    loop {
        let r = client
            .send(
                Method::GET,
                &format!("{base}/{topic_urn}/subscriptions"),
                &format!("offset={offset}&limit=100"),
                None,
            )
            .await?;
        let subs = r.body["subscriptions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(s) = subs
            .iter()
            .find(|s| s["subscription_urn"] == subscription_urn)
        {
            return Ok(s["status"].as_i64());
        }
        if subs.len() < 100 {
            return Ok(None);
        }
        offset += 100;
    }
}

async fn agency(client: &Client, a: &AgencyDecl, report: &mut Report) -> anyhow::Result<()> {
    let roles = fc::resolve_roles(client, &a.roles).await?;
    let what = format!("agency {}", a.name);
    let id = match fc::find_agency(client, &a.name).await? {
        None => {
            let id = fc::create_agency(client, &a.name, &a.description).await?;
            report.created.push(what.clone());
            id
        }
        Some(existing) => {
            let trusts = existing["trust_domain_name"].as_str().unwrap_or_default();
            if trusts != FUNCTION_SERVICE {
                bail!(
                    "an agency of this name exists and trusts `{trusts}`, not the function \
                     service ({FUNCTION_SERVICE}); rename the declared agency or delete the \
                     existing one"
                );
            }
            report.unchanged.push(what.clone());
            existing["id"]
                .as_str()
                .context("the server answered no agency id")?
                .to_owned()
        }
    };
    let granted = fc::granted_roles(client, &id).await?;
    for (display, role_id) in roles {
        if granted.iter().any(|(_, g)| *g == role_id) {
            report
                .unchanged
                .push(format!("grant of {display} to {what}"));
            continue;
        }
        fc::grant_role(client, &id, &role_id)
            .await
            .with_context(|| format!("granting `{display}`"))?;
        report.created.push(format!(
            "grant of {display} to {what} in project {}",
            client.project_id()
        ));
    }
    Ok(())
}

/// The function's `user_data`, `encrypted_user_data` (from the named environment variables)
/// and the rest of its configuration, as the API takes them.
fn function_body(f: &FunctionDecl) -> anyhow::Result<Value> {
    let mut body = json!({
        "runtime": f.runtime,
        "handler": f.handler,
        "memory_size": f.memory,
        "timeout": f.timeout,
        "user_data": serde_json::to_string(&f.env)?,
        "xrole": f.agency.clone().unwrap_or_default(),
        "description": f.description,
    });
    if let Some(n) = f.max_instances {
        body["max_instance_num"] = json!(n);
    }
    if !f.secret_env.is_empty() {
        let mut secrets = serde_json::Map::new();
        for (key, var) in &f.secret_env {
            let value = std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .with_context(|| {
                    format!("secret_env.{key}: the environment variable {var} is not set")
                })?;
            secrets.insert(key.clone(), Value::String(value));
        }
        body["encrypted_user_data"] = json!(Value::Object(secrets).to_string());
    }
    Ok(body)
}

/// Whether the stored configuration differs from the declared one (encrypted variables
/// cannot be compared: they are never returned).
fn differs(current: &Value, desired: &Value) -> bool {
    let user_data = |v: &Value| -> Value {
        v["user_data"]
            .as_str()
            .filter(|s| !s.trim().is_empty())
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_else(|| json!({}))
    };
    let text = |v: &Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
    user_data(current) != user_data(desired)
        || ["runtime", "handler", "xrole", "description"]
            .iter()
            .any(|k| text(current, k) != text(desired, k))
        || ["memory_size", "timeout"]
            .iter()
            .any(|k| current[*k] != desired[*k])
        || (desired.get("max_instance_num").is_some()
            && current["max_instance_num"] != desired["max_instance_num"])
        || desired.get("encrypted_user_data").is_some()
}

async fn function(client: &Client, f: &FunctionDecl, report: &mut Report) -> anyhow::Result<()> {
    let base = fc::fgs(client);
    let reference = format!("{}:{}", f.package, f.name);
    let mut body = function_body(f)?;
    let what = format!("function {reference}");
    match client
        .send(
            Method::GET,
            &format!("{base}/functions/{reference}/config"),
            "",
            None,
        )
        .await
    {
        Ok(current) => {
            if differs(&current.body, &body) {
                client
                    .send(
                        Method::PUT,
                        &format!("{base}/functions/{reference}/config"),
                        "",
                        Some(body),
                    )
                    .await?;
                report.updated.push(what.clone());
            } else {
                report.unchanged.push(what.clone());
            }
        }
        Err(e) if e.status().map(|s| s.as_u16()) == Some(404) => {
            body["func_name"] = json!(f.name);
            body["package"] = json!(f.package);
            body["code_type"] = json!("inline");
            client
                .send(Method::POST, &format!("{base}/functions"), "", Some(body))
                .await?;
            report.created.push(what.clone());
        }
        Err(e) => return Err(e.into()),
    }

    let existing = client
        .send(
            Method::GET,
            &format!("{base}/triggers/{reference}"),
            "",
            None,
        )
        .await?
        .body
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut matched = vec![false; existing.len()];
    for (i, t) in f.triggers.iter().enumerate() {
        trigger(client, &reference, t, &existing, &mut matched, report)
            .await
            .with_context(|| format!("{} trigger #{}{}", t.type_code, i + 1, at(t.line)))?;
    }
    for (t, m) in existing.iter().zip(&matched) {
        if !m {
            report.notes.push(format!(
                "{what} also has the undeclared {} trigger {}; it is left alone (`trailwatch \
                 triggers delete` removes it)",
                t["trigger_type_code"].as_str().unwrap_or_default(),
                t["trigger_id"].as_str().unwrap_or_default()
            ));
        }
    }
    Ok(())
}

/// The identity of an existing trigger, in the form of [`crate::config::trigger_identity`].
fn existing_identity(t: &Value) -> Option<String> {
    let d = &t["event_data"];
    let declared = TriggerDecl {
        type_code: t["trigger_type_code"].as_str()?.to_owned(),
        operations: d["operations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        schedule_type: d["schedule_type"].as_str().map(str::to_owned),
        schedule: d["schedule"].as_str().map(str::to_owned),
        log_group_id: d["log_group_id"].as_str().map(str::to_owned),
        log_stream_id: d["log_topic_id"].as_str().map(str::to_owned),
        ..TriggerDecl::default()
    };
    crate::config::trigger_identity(&declared)
}

async fn trigger(
    client: &Client,
    function: &str,
    t: &TriggerDecl,
    existing: &[Value],
    matched: &mut [bool],
    report: &mut Report,
) -> anyhow::Result<()> {
    let base = fc::fgs(client);
    let spec = TriggerSpec {
        type_code: t.type_code.clone(),
        name: t.name.clone(),
        enabled: t.enabled,
        operations: t.operations.clone(),
        schedule_type: t.schedule_type().to_owned(),
        schedule: t.schedule.clone(),
        user_event: t.user_event.clone(),
        log_group: t.log_group_id.clone(),
        log_stream: t.log_stream_id.clone(),
    };
    let identity = crate::config::trigger_identity(t);
    let what = format!(
        "{} trigger {} of function {function}",
        t.type_code,
        identity
            .as_deref()
            .and_then(|i| i.split_once(' '))
            .map(|(_, rest)| rest)
            .unwrap_or_default()
    );
    let found = existing
        .iter()
        .enumerate()
        .find(|(i, e)| !matched[*i] && identity.is_some() && existing_identity(e) == identity);
    let Some((i, current)) = found else {
        client
            .send(
                Method::POST,
                &format!("{base}/triggers/{function}"),
                "",
                Some(spec.body(function)?),
            )
            .await?;
        report.created.push(what);
        return Ok(());
    };
    matched[i] = true;
    let desired = spec.event_data(function)?;
    let d = &current["event_data"];
    let same_data = ["name", "user_event"]
        .iter()
        .all(|k| desired.get(*k).is_none_or(|v| d.get(*k) == Some(v)));
    if current["trigger_status"] == spec.status() && same_data {
        report.unchanged.push(what);
        return Ok(());
    }
    let id = current["trigger_id"].as_str().unwrap_or_default();
    client
        .send(
            Method::PUT,
            &format!("{base}/triggers/{function}/{}/{id}", t.type_code),
            "",
            Some(json!({"trigger_status": spec.status(), "event_data": desired})),
        )
        .await?;
    report.updated.push(what);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_function_matching_its_declaration_is_not_updated() {
        let f = FunctionDecl {
            name: "login_audit".into(),
            handler: "login_audit".into(),
            agency: Some("serverless_trust".into()),
            env: [("IP".to_owned(), "10.0.0.0/8".to_owned())].into(),
            ..FunctionDecl::default()
        };
        let desired = function_body(&f).unwrap();
        let current = json!({"func_name": "login_audit", "runtime": "builtin", "handler": "login_audit",
            "memory_size": 128, "timeout": 30, "user_data": "{\"IP\":\"10.0.0.0/8\"}",
            "xrole": "serverless_trust", "description": "", "max_instance_num": 100});
        assert!(!differs(&current, &desired));
        let mut other = current.clone();
        other["user_data"] = json!("{\"IP\":\"10.0.0.0/16\"}");
        assert!(differs(&other, &desired));
        let mut no_agency = current.clone();
        no_agency["xrole"] = Value::Null;
        assert!(differs(&no_agency, &desired));
    }

    #[test]
    fn existing_triggers_are_recognised_by_what_they_listen_to() {
        let declared = TriggerDecl {
            type_code: "CTS".into(),
            operations: vec!["IAM:user:login;logout".into()],
            ..TriggerDecl::default()
        };
        let existing = json!({"trigger_type_code": "CTS", "trigger_status": "ACTIVE",
            "event_data": {"name": "x", "operations": ["IAM:user:login;logout"]}});
        assert_eq!(
            existing_identity(&existing),
            crate::config::trigger_identity(&declared)
        );
        let timer = json!({"trigger_type_code": "TIMER",
            "event_data": {"schedule_type": "Rate", "schedule": "5m"}});
        let declared_timer = TriggerDecl {
            type_code: "TIMER".into(),
            schedule: Some("5m".into()),
            ..TriggerDecl::default()
        };
        assert_eq!(
            existing_identity(&timer),
            crate::config::trigger_identity(&declared_timer)
        );
    }
}
