//! `trailwatch topics|subscriptions|publish|deliveries|notifications|silences`: the SMN API from
//! the shell.

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};
use trailwatch_client::Client;

use crate::cli::{
    DeadLettersCommand, OutputFormat, SilencesCommand, SubscriptionsCommand, TopicsCommand,
};
use crate::iam::print_list;

fn base(client: &Client) -> String {
    format!("/v2/{}/notifications", client.project_id())
}

/// A topic given by URN or by name (looked up among the project's topics).
async fn topic_urn(client: &Client, topic: &str) -> anyhow::Result<String> {
    if topic.starts_with("urn:smn:") {
        return Ok(topic.to_owned());
    }
    let mut offset = 0;
    loop {
        let page = client
            .send(
                Method::GET,
                &format!("{}/topics", base(client)),
                &format!("offset={offset}&limit=100"),
                None,
            )
            .await?;
        let topics = page.body["topics"].as_array().cloned().unwrap_or_default();
        if let Some(t) = topics.iter().find(|t| t["name"] == topic) {
            return Ok(t["topic_urn"].as_str().unwrap_or_default().to_owned());
        }
        if topics.len() < 100 {
            bail!("no topic named `{topic}` in this project (topics list shows them)");
        }
        offset += 100;
    }
}

pub async fn topics(client: &Client, command: &TopicsCommand) -> anyhow::Result<()> {
    match command {
        TopicsCommand::Create { name, display_name } => {
            let r = client
                .send(
                    Method::POST,
                    &format!("{}/topics", base(client)),
                    "",
                    Some(json!({"name": name, "display_name": display_name})),
                )
                .await?;
            let verb = if r.status == 201 { "created" } else { "exists" };
            println!(
                "{verb} {}",
                r.body["topic_urn"].as_str().unwrap_or_default()
            );
        }
        TopicsCommand::List { output } => {
            let r = client
                .send(
                    Method::GET,
                    &format!("{}/topics", base(client)),
                    "limit=100",
                    None,
                )
                .await?;
            let items = r.body["topics"].as_array().cloned().unwrap_or_default();
            print_list(
                &items,
                *output,
                &["name", "display_name", "topic_urn", "create_time"],
            );
        }
        TopicsCommand::Delete { topic } => {
            let urn = topic_urn(client, topic).await?;
            client
                .send(
                    Method::DELETE,
                    &format!("{}/topics/{urn}", base(client)),
                    "",
                    None,
                )
                .await?;
            println!("deleted {urn}");
        }
        TopicsCommand::Hygiene {
            topic,
            dedup_window,
        } => {
            let urn = topic_urn(client, topic).await?;
            let path = format!("{}/topics/{urn}/hygiene", base(client));
            let r = match dedup_window {
                Some(seconds) => {
                    client
                        .send(
                            Method::PUT,
                            &path,
                            "",
                            Some(json!({"dedup_window_seconds": seconds})),
                        )
                        .await?
                }
                None => client.send(Method::GET, &path, "", None).await?,
            };
            match r.body["dedup_window_seconds"].as_u64().unwrap_or(0) {
                0 => println!("{urn}: dedup window off"),
                n => println!("{urn}: dedup window {n} s"),
            }
        }
    }
    Ok(())
}

pub async fn subscriptions(client: &Client, command: &SubscriptionsCommand) -> anyhow::Result<()> {
    match command {
        SubscriptionsCommand::Add {
            topic,
            protocol,
            address,
            remark,
            header,
        } => {
            let urn = topic_urn(client, topic).await?;
            let mut body = json!({"protocol": protocol, "endpoint": address, "remark": remark});
            if !header.is_empty() {
                let mut headers = serde_json::Map::new();
                for h in header {
                    let (k, v) = h
                        .split_once('=')
                        .with_context(|| format!("--header `{h}` is not NAME=VALUE"))?;
                    headers.insert(k.to_owned(), Value::String(v.to_owned()));
                }
                body["extension"] = json!({"header": headers});
            }
            let r = client
                .send(
                    Method::POST,
                    &format!("{}/topics/{urn}/subscriptions", base(client)),
                    "",
                    Some(body),
                )
                .await?;
            println!(
                "{}",
                r.body["subscription_urn"].as_str().unwrap_or_default()
            );
            if r.status == 201 && protocol != "functionstage" {
                eprintln!(
                    "the endpoint was sent a confirmation (SMS may be confirmed at once, per gateway configuration)"
                );
            }
        }
        SubscriptionsCommand::List { topic, output } => {
            let path = match topic {
                Some(t) => format!(
                    "{}/topics/{}/subscriptions",
                    base(client),
                    topic_urn(client, t).await?
                ),
                None => format!("{}/subscriptions", base(client)),
            };
            let r = client.send(Method::GET, &path, "limit=100", None).await?;
            let items = r.body["subscriptions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            print_list(
                &items,
                *output,
                &[
                    "protocol",
                    "endpoint",
                    "status",
                    "remark",
                    "subscription_urn",
                ],
            );
        }
        SubscriptionsCommand::Confirm { url } => {
            let resp = reqwest::get(url)
                .await
                .with_context(|| format!("fetching {url}"))?;
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if !status.is_success() {
                bail!(
                    "{status}: {}",
                    body["message"].as_str().unwrap_or("confirmation failed")
                );
            }
            println!(
                "confirmed {}",
                body["subscription_urn"].as_str().unwrap_or_default()
            );
        }
        SubscriptionsCommand::Delete { subscription_urn } => {
            client
                .send(
                    Method::DELETE,
                    &format!("{}/subscriptions/{subscription_urn}", base(client)),
                    "",
                    None,
                )
                .await?;
            println!("deleted {subscription_urn}");
        }
    }
    Ok(())
}

pub async fn publish(
    client: &Client,
    topic: &str,
    subject: Option<&str>,
    message: &str,
    ttl: Option<u32>,
) -> anyhow::Result<()> {
    let urn = topic_urn(client, topic).await?;
    let mut body = json!({"message": message});
    if let Some(s) = subject {
        body["subject"] = Value::String(s.to_owned());
    }
    if let Some(t) = ttl {
        body["time_to_live"] = Value::String(t.to_string());
    }
    let r = client
        .send(
            Method::POST,
            &format!("{}/topics/{urn}/publish", base(client)),
            "",
            Some(body),
        )
        .await?;
    println!("{}", r.body["message_id"].as_str().unwrap_or_default());
    Ok(())
}

fn time(ms: &Value) -> String {
    ms.as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| "-".into())
}

pub async fn deliveries(
    client: &Client,
    message_id: &str,
    output: OutputFormat,
) -> anyhow::Result<()> {
    let r = client
        .send(
            Method::GET,
            &format!("{}/messages/{message_id}/deliveries", base(client)),
            "",
            None,
        )
        .await?;
    let items = r.body["deliveries"].as_array().cloned().unwrap_or_default();
    if output == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    let held = ["silenced_by", "deduplicated_into"]
        .iter()
        .any(|k| r.body[*k].is_string());
    if items.is_empty() && !held {
        println!(
            "no deliveries for {message_id} (no confirmed subscriber, or another project's message)"
        );
    }
    if let Some(id) = r.body["silenced_by"].as_str() {
        println!("silenced by {id}: recorded, not delivered");
    }
    if let Some(first) = r.body["deduplicated_into"].as_str() {
        println!(
            "a repeat of {first} within its dedup window: counted in summary {}, not delivered",
            r.body["summary_message_id"].as_str().unwrap_or("-")
        );
    }
    if let Some(first) = r.body["summary_of"].as_str() {
        println!("the dedup summary of {first}");
    }
    for d in &items {
        println!(
            "{} {} -> {}: {} after {} attempt(s)",
            d["kind"].as_str().unwrap_or(""),
            d["protocol"].as_str().unwrap_or(""),
            d["endpoint"].as_str().unwrap_or(""),
            d["state"].as_str().unwrap_or(""),
            d["attempts"]
        );
        for a in d["attempt_log"].as_array().into_iter().flatten() {
            println!(
                "  #{} {} {} ms {} ({})",
                a["attempt"],
                time(&a["at"]),
                a["latency_ms"],
                a["result"].as_str().unwrap_or(""),
                a["outcome"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}

pub async fn dead_letters(client: &Client, command: &DeadLettersCommand) -> anyhow::Result<()> {
    match command {
        DeadLettersCommand::List { output } => {
            let r = client
                .send(
                    Method::GET,
                    &format!("{}/dead-letters", base(client)),
                    "limit=100",
                    None,
                )
                .await?;
            let items = r.body["dead_letters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            print_list(
                &items,
                *output,
                &[
                    "delivery_id",
                    "message_id",
                    "protocol",
                    "endpoint",
                    "attempts",
                    "last_error",
                ],
            );
        }
        DeadLettersCommand::Replay { delivery_ids } => {
            let body = if delivery_ids.is_empty() {
                json!({})
            } else {
                json!({"delivery_ids": delivery_ids})
            };
            let r = client
                .send(
                    Method::POST,
                    &format!("{}/dead-letters/replay", base(client)),
                    "",
                    Some(body),
                )
                .await?;
            println!("replayed {}", r.body["replayed"]);
        }
    }
    Ok(())
}

/// A duration from now such as `90s`, `30m`, `2h`, `7d`, in milliseconds.
fn parse_duration_ms(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    let factor = match s.chars().last() {
        Some('s') => 1_000,
        Some('m') => 60_000,
        Some('h') => 3_600_000,
        Some('d') => 86_400_000,
        _ => 0,
    };
    match s[..s.len().saturating_sub(1)].parse::<i64>() {
        Ok(n) if factor > 0 && n > 0 => Ok(n.saturating_mul(factor)),
        _ => bail!(
            "`{s}` is not a duration: use a positive number with s, m, h or d, such as 30m or 2h"
        ),
    }
}

pub async fn silences(client: &Client, command: &SilencesCommand) -> anyhow::Result<()> {
    let now = trailwatch_store::now_ms();
    match command {
        SilencesCommand::Create {
            topic,
            ends_in,
            ends_at,
            starts_at,
            subject_contains,
            message_contains,
            comment,
        } => {
            let ends_at = match (ends_in, ends_at) {
                (Some(d), _) => now + parse_duration_ms(d)?,
                (None, Some(t)) => crate::traces::parse_time(t, now)?,
                (None, None) => bail!("give --ends-in or --ends-at"),
            };
            let urn = topic_urn(client, topic).await?;
            let mut body = json!({"topic_urn": urn, "ends_at": ends_at, "comment": comment});
            if let Some(t) = starts_at {
                body["starts_at"] = json!(crate::traces::parse_time(t, now)?);
            }
            if let Some(m) = subject_contains {
                body["subject_contains"] = json!(m);
            }
            if let Some(m) = message_contains {
                body["message_contains"] = json!(m);
            }
            let r = client
                .send(
                    Method::POST,
                    &format!("{}/silences", base(client)),
                    "",
                    Some(body),
                )
                .await?;
            println!("{}", r.body["silence_id"].as_str().unwrap_or_default());
            eprintln!("silenced until {}", time(&r.body["ends_at"]));
        }
        SilencesCommand::List { topic, output } => {
            let mut query = "limit=100".to_owned();
            if let Some(t) = topic {
                let urn = topic_urn(client, t).await?;
                query.push_str(&format!(
                    "&{}",
                    trailwatch_client::encode_query(&[("topic_urn", urn)])
                ));
            }
            let r = client
                .send(
                    Method::GET,
                    &format!("{}/silences", base(client)),
                    &query,
                    None,
                )
                .await?;
            let mut items = r.body["silences"].as_array().cloned().unwrap_or_default();
            if *output == OutputFormat::Table {
                for i in &mut items {
                    i["topic"] = json!(
                        i["topic_urn"]
                            .as_str()
                            .and_then(|u| u.rsplit(':').next())
                            .unwrap_or_default()
                    );
                    i["starts"] = json!(time(&i["starts_at"]));
                    i["ends"] = json!(time(&i["ends_at"]));
                    i["matches"] = json!(
                        [
                            ("subject", &i["subject_contains"]),
                            ("message", &i["message_contains"])
                        ]
                        .iter()
                        .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}~{v:?}")))
                        .collect::<Vec<_>>()
                        .join(" ")
                    );
                }
            }
            print_list(
                &items,
                *output,
                &[
                    "silence_id",
                    "topic",
                    "matches",
                    "starts",
                    "ends",
                    "active",
                    "silenced_messages",
                    "comment",
                ],
            );
        }
        SilencesCommand::Expire { silence_id } => {
            let r = client
                .send(
                    Method::DELETE,
                    &format!("{}/silences/{silence_id}", base(client)),
                    "",
                    None,
                )
                .await?;
            if r.body["already_ended"] == true {
                println!("{silence_id} had already ended");
            } else {
                println!("expired {silence_id}");
            }
        }
    }
    Ok(())
}
