//! `trailwatch topics|subscriptions|publish|deliveries|notifications`: the SMN API from the shell.

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Value, json};
use trailwatch_client::Client;

use crate::cli::{DeadLettersCommand, OutputFormat, SubscriptionsCommand, TopicsCommand};
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
    if items.is_empty() {
        println!(
            "no deliveries for {message_id} (no confirmed subscriber, or another project's message)"
        );
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
