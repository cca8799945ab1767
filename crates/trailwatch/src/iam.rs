//! `trailwatch iam users|credentials`.

use anyhow::Context;
use reqwest::Method;
use serde_json::{Value, json};
use trailwatch_client::{Client, encode_query};

use crate::cli::{CredentialsCommand, IamCommand, OutputFormat, UsersCommand};

pub async fn run(client: &Client, command: &IamCommand) -> anyhow::Result<()> {
    match command {
        IamCommand::Users(UsersCommand::Create {
            name,
            password,
            admin,
        }) => {
            let password = match password {
                Some(p) => p.clone(),
                None => {
                    eprintln!("password for `{name}` (one line on standard input):");
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("reading the password")?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let body =
                json!({"user": {"name": name, "password": password, "is_domain_admin": admin}});
            let resp = client
                .send(Method::POST, "/v3/users", "", Some(body))
                .await?;
            let user = &resp.body["user"];
            println!(
                "created user {} (id {})",
                user["name"].as_str().unwrap_or(name),
                user["id"].as_str().unwrap_or("?")
            );
        }
        IamCommand::Users(UsersCommand::List { output }) => {
            let resp = client.send(Method::GET, "/v3/users", "", None).await?;
            let users = resp.body["users"].as_array().cloned().unwrap_or_default();
            print_list(
                &users,
                *output,
                &["id", "name", "enabled", "is_domain_admin", "create_time"],
            );
        }
        IamCommand::Credentials(CredentialsCommand::Create {
            user_id,
            description,
        }) => {
            let mut credential = json!({"description": description});
            if let Some(id) = user_id {
                credential["user_id"] = Value::String(id.clone());
            }
            let resp = client
                .send(
                    Method::POST,
                    "/v3.0/OS-CREDENTIAL/credentials",
                    "",
                    Some(json!({"credential": credential})),
                )
                .await?;
            let c = &resp.body["credential"];
            // Data to stdout: this is the only time the secret key is shown.
            println!("access_key = \"{}\"", c["access"].as_str().unwrap_or(""));
            println!("secret_key = \"{}\"", c["secret"].as_str().unwrap_or(""));
            eprintln!("store the secret key now: it cannot be shown again");
        }
        IamCommand::Credentials(CredentialsCommand::List { user_id, output }) => {
            let params: Vec<(&str, String)> =
                user_id.iter().map(|u| ("user_id", u.clone())).collect();
            let resp = client
                .send(
                    Method::GET,
                    "/v3.0/OS-CREDENTIAL/credentials",
                    &encode_query(&params),
                    None,
                )
                .await?;
            let creds = resp.body["credentials"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            print_list(
                &creds,
                *output,
                &["access", "user_id", "status", "create_time", "description"],
            );
        }
    }
    Ok(())
}

/// Prints JSON objects as a table of `columns`, or as pretty JSON.
pub fn print_list(items: &[Value], output: OutputFormat, columns: &[&str]) {
    if output == OutputFormat::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(items).unwrap_or_default()
        );
        return;
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            columns
                .iter()
                .map(|c| match &i[*c] {
                    Value::String(s) => s.clone(),
                    Value::Null => "-".into(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = columns.iter().map(|c| c.len()).collect();
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let print_row = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    print_row(columns.iter().map(|c| c.to_uppercase()).collect());
    for row in rows {
        print_row(row);
    }
}
