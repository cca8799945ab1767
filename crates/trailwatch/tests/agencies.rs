//! Agencies and roles through the real server: the built-in roles, agency create/list/get/delete,
//! per-project role grants, the IAM error shape for bad requests, administrator-only access,
//! other domains, and `agency_rights` over what the HTTP API granted.
#![allow(clippy::unwrap_used)]

mod common;

use common::Server;
use common::fgs::{call, domain_id};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use trailwatch_client::{Client, ClientConfig, Credentials, RawResponse};
use trailwatch_iam::roles;

const AGENCIES: &str = "/v3.0/OS-AGENCY/agencies";

fn role_id(display_name: &str) -> &'static str {
    roles::by_display_name(display_name).unwrap().id
}

async fn post_bytes(client: &Client, path: &str, body: &[u8]) -> RawResponse {
    client
        .raw(Method::POST, path, "", Some(body.to_vec()), true)
        .await
        .unwrap()
}

/// Asserts the Keystone-style IAM error body with this status and a message containing `needle`.
fn assert_iam_error(r: &RawResponse, status: u16, needle: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    let e = &r.body["error"];
    assert_eq!(e["code"], status, "{}", r.body);
    let title = StatusCode::from_u16(status)
        .unwrap()
        .canonical_reason()
        .unwrap();
    assert_eq!(e["title"], title, "{}", r.body);
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains(needle), "`{msg}` should contain `{needle}`");
}

async fn create_agency(client: &Client, agency: Value) -> RawResponse {
    call(
        client,
        Method::POST,
        AGENCIES,
        Some(json!({ "agency": agency })),
    )
    .await
}

/// Creates an agency trusting the function service and returns its id.
async fn function_agency(client: &Client, domain: &str, name: &str) -> String {
    let r = create_agency(
        client,
        json!({"name": name, "domain_id": domain, "trust_domain_name": "op_svc_cff"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["agency"]["id"].as_str().unwrap().to_owned()
}

fn grant_path(project: &str, agency: &str, role: &str) -> String {
    format!("/v3.0/OS-AGENCY/projects/{project}/agencies/{agency}/roles/{role}")
}

fn grants_path(project: &str, agency: &str) -> String {
    format!("/v3.0/OS-AGENCY/projects/{project}/agencies/{agency}/roles")
}

async fn create_project(admin: &Client, name: &str) -> String {
    let r = admin
        .send(
            Method::POST,
            "/v3/projects",
            "",
            Some(json!({"project": {"name": name}})),
        )
        .await
        .unwrap();
    r.body["project"]["id"].as_str().unwrap().to_owned()
}

fn role_names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| r["display_name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn agency_lifecycle() {
    let server = Server::start();
    let admin = server.admin_password().await;
    let domain = domain_id(&admin).await;

    let r = create_agency(
        &admin,
        json!({"name": "serverless_trust", "domain_id": domain, "trust_domain_name": "op_svc_cff",
               "description": "functions write to SMN"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let a = r.body["agency"].clone();
    let id = a["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32);
    assert_eq!(a["name"], "serverless_trust");
    assert_eq!(a["domain_id"], domain.as_str());
    assert_eq!(a["trust_domain_name"], "op_svc_cff");
    assert_eq!(a["trust_domain_id"], roles::FUNCTION_SERVICE_TRUST_ID);
    assert_eq!(a["description"], "functions write to SMN");
    assert_eq!(a["duration"], "FOREVER");
    assert!(a["expire_time"].is_null(), "{a}");
    assert!(a["create_time"].as_str().unwrap().ends_with('Z'), "{a}");

    // ONEDAY agencies expire a day after their creation; the trust may be given by id.
    let r = create_agency(
        &admin,
        json!({"name": "short", "domain_id": domain,
               "trust_domain_id": roles::FUNCTION_SERVICE_TRUST_ID, "duration": "ONEDAY"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let short = r.body["agency"].clone();
    assert_eq!(short["duration"], "ONEDAY");
    assert_eq!(short["trust_domain_name"], "op_svc_cff");
    let created =
        chrono::DateTime::parse_from_rfc3339(short["create_time"].as_str().unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(short["expire_time"].as_str().unwrap()).unwrap();
    assert_eq!(expires - created, chrono::Duration::days(1));
    let short_id = short["id"].as_str().unwrap().to_owned();

    // The same name again, in the same domain: 409.
    let dup = create_agency(
        &admin,
        json!({"name": "serverless_trust", "domain_id": domain, "trust_domain_name": "op_svc_cff"}),
    )
    .await;
    assert_iam_error(&dup, 409, "`serverless_trust` already exists");

    // List (by name), filter, get.
    let list = call(&admin, Method::GET, AGENCIES, None).await;
    assert_eq!(list.status, 200);
    let names: Vec<&str> = list.body["agencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["serverless_trust", "short"]);
    let filtered = admin
        .raw(
            Method::GET,
            AGENCIES,
            &format!("domain_id={domain}&name=short"),
            None,
            true,
        )
        .await
        .unwrap();
    assert_eq!(filtered.status, 200);
    assert_eq!(filtered.body["agencies"].as_array().unwrap().len(), 1);
    assert_eq!(filtered.body["agencies"][0]["id"], short_id.as_str());
    let foreign = admin
        .raw(
            Method::GET,
            AGENCIES,
            &format!("domain_id={}", "0".repeat(32)),
            None,
            true,
        )
        .await
        .unwrap();
    assert_iam_error(&foreign, 403, "own domain");
    let got = call(&admin, Method::GET, &format!("{AGENCIES}/{id}"), None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["agency"], a);

    // Delete: 204, then it is gone everywhere.
    let del = call(&admin, Method::DELETE, &format!("{AGENCIES}/{id}"), None).await;
    assert_eq!(del.status, 204, "{}", del.body);
    let gone = call(&admin, Method::GET, &format!("{AGENCIES}/{id}"), None).await;
    assert_iam_error(&gone, 404, "does not exist");
    let again = call(&admin, Method::DELETE, &format!("{AGENCIES}/{id}"), None).await;
    assert_iam_error(&again, 404, "does not exist");
    let list = call(&admin, Method::GET, AGENCIES, None).await;
    assert_eq!(list.body["agencies"].as_array().unwrap().len(), 1);
    // The name is free again.
    function_agency(&admin, &domain, "serverless_trust").await;
}

#[tokio::test]
async fn bad_bodies_get_precise_iam_errors() {
    let server = Server::start();
    let admin = server.admin().await;
    let domain = domain_id(&admin).await;
    let base = json!({"name": "fn_trust", "domain_id": domain, "trust_domain_name": "op_svc_cff"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let without = |k: &str| {
        let mut b = base.clone();
        b.as_object_mut().unwrap().remove(k);
        b
    };

    let cases: Vec<(Value, u16, &str)> = vec![
        (without("name"), 400, "`/agency/name` is required"),
        (
            with("name", json!("")),
            400,
            "`/agency/name` must not be empty",
        ),
        (
            with("name", json!(42)),
            400,
            "`/agency/name` must be a string",
        ),
        (
            with("name", json!("has space")),
            400,
            "agency name `has space` is invalid",
        ),
        (with("name", json!("x".repeat(65))), 400, "is invalid"),
        (without("domain_id"), 400, "`/agency/domain_id` is required"),
        (
            with("domain_id", json!(["a"])),
            400,
            "`/agency/domain_id` must be a string",
        ),
        (
            with("domain_id", json!("0".repeat(32))),
            403,
            "only in your own domain",
        ),
        (
            without("trust_domain_name"),
            400,
            "`/agency/trust_domain_id` or `/agency/trust_domain_name` is required",
        ),
        (
            with("trust_domain_name", json!(7)),
            400,
            "`/agency/trust_domain_name` must be a string",
        ),
        (
            with("trust_domain_name", json!("no-such-domain")),
            404,
            "trust domain `no-such-domain` does not exist",
        ),
        (
            with("trust_domain_name", json!("default")),
            400,
            "cannot trust its own domain",
        ),
        (
            with("duration", json!("TWODAYS")),
            400,
            "`/agency/duration` must be `FOREVER` or `ONEDAY`, not `TWODAYS`",
        ),
        (
            with("duration", json!(1)),
            400,
            "`/agency/duration` must be a string",
        ),
        (
            with("description", json!(true)),
            400,
            "`/agency/description` must be a string",
        ),
        (
            with("description", json!("d".repeat(256))),
            400,
            "longer than 255 characters",
        ),
    ];
    for (agency, status, needle) in cases {
        let r = create_agency(&admin, agency.clone()).await;
        assert_iam_error(&r, status, needle);
    }
    // By id, an unknown trust domain is also 404.
    let mut by_id = without("trust_domain_name");
    by_id["trust_domain_id"] = json!("f".repeat(32));
    assert_iam_error(&create_agency(&admin, by_id).await, 404, "does not exist");

    // Not an agency object, not JSON, nothing.
    let r = call(&admin, Method::POST, AGENCIES, Some(json!({"name": "x"}))).await;
    assert_iam_error(&r, 400, "`/agency` is required");
    let r = call(&admin, Method::POST, AGENCIES, Some(json!({"agency": "x"}))).await;
    assert_iam_error(&r, 400, "`/agency` must be an object");
    let r = post_bytes(&admin, AGENCIES, b"{\"agency\": {\"name\": ").await;
    assert_iam_error(&r, 400, "not valid JSON");
    let r = post_bytes(&admin, AGENCIES, b"  ").await;
    assert_iam_error(&r, 400, "empty");

    // None of them created anything; the base body does.
    let list = call(&admin, Method::GET, AGENCIES, None).await;
    assert_eq!(list.body["agencies"], json!([]));
    assert_eq!(create_agency(&admin, base).await.status, 201);
}

#[tokio::test]
async fn grants_are_per_project() {
    let server = Server::start();
    let admin = server.admin().await;
    let domain = domain_id(&admin).await;
    let project_a = admin.project_id().to_owned();
    let project_b = create_project(&admin, "team-b").await;
    let agency = function_agency(&admin, &domain, "fn_trust").await;
    let smn = role_id("SMN Administrator");
    let invoker = role_id("FunctionGraph Invoker");

    // Nothing granted yet.
    let r = call(&admin, Method::GET, &grants_path(&project_a, &agency), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["roles"], json!([]));
    let r = call(
        &admin,
        Method::HEAD,
        &grant_path(&project_a, &agency, smn),
        None,
    )
    .await;
    assert_eq!(r.status, 404);

    // Grant two roles in project A (granting again is fine).
    for role in [smn, invoker, smn] {
        let r = call(
            &admin,
            Method::PUT,
            &grant_path(&project_a, &agency, role),
            None,
        )
        .await;
        assert_eq!(r.status, 204, "{}", r.body);
    }
    let r = call(&admin, Method::GET, &grants_path(&project_a, &agency), None).await;
    assert_eq!(
        role_names(&r.body["roles"]),
        ["SMN Administrator", "FunctionGraph Invoker"]
    );
    assert_eq!(r.body["roles"][0]["id"], smn);
    assert_eq!(
        r.body["roles"][0]["policy"]["Statement"][0]["Action"],
        json!(["smn:*:*"])
    );
    for role in [smn, invoker] {
        let r = call(
            &admin,
            Method::HEAD,
            &grant_path(&project_a, &agency, role),
            None,
        )
        .await;
        assert_eq!(r.status, 204);
    }

    // Nothing of it in project B.
    let r = call(&admin, Method::GET, &grants_path(&project_b, &agency), None).await;
    assert_eq!(r.body["roles"], json!([]));
    let r = call(
        &admin,
        Method::HEAD,
        &grant_path(&project_b, &agency, smn),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    let r = call(
        &admin,
        Method::DELETE,
        &grant_path(&project_b, &agency, smn),
        None,
    )
    .await;
    assert_iam_error(&r, 404, "is not granted");

    // Revoke in A: gone there, the other role stays.
    let r = call(
        &admin,
        Method::DELETE,
        &grant_path(&project_a, &agency, smn),
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = call(
        &admin,
        Method::HEAD,
        &grant_path(&project_a, &agency, smn),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    let r = call(
        &admin,
        Method::DELETE,
        &grant_path(&project_a, &agency, smn),
        None,
    )
    .await;
    assert_iam_error(&r, 404, "`SMN Administrator` is not granted");
    let r = call(&admin, Method::GET, &grants_path(&project_a, &agency), None).await;
    assert_eq!(role_names(&r.body["roles"]), ["FunctionGraph Invoker"]);

    // Unknown role, agency or project: 404, and nothing is granted.
    let unknown_role = "0123456789abcdef0123456789abcdef";
    for method in [Method::PUT, Method::DELETE] {
        let r = call(
            &admin,
            method,
            &grant_path(&project_a, &agency, unknown_role),
            None,
        )
        .await;
        assert_iam_error(
            &r,
            404,
            "role `0123456789abcdef0123456789abcdef` does not exist",
        );
    }
    let r = call(
        &admin,
        Method::HEAD,
        &grant_path(&project_a, &agency, unknown_role),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    let nobody = "f".repeat(32);
    let r = call(
        &admin,
        Method::PUT,
        &grant_path(&project_a, &nobody, smn),
        None,
    )
    .await;
    assert_iam_error(
        &r,
        404,
        "agency `ffffffffffffffffffffffffffffffff` does not exist",
    );
    let r = call(
        &admin,
        Method::PUT,
        &grant_path(&nobody, &agency, smn),
        None,
    )
    .await;
    assert_iam_error(
        &r,
        404,
        "project `ffffffffffffffffffffffffffffffff` does not exist",
    );
    let r = call(&admin, Method::GET, &grants_path(&nobody, &agency), None).await;
    assert_eq!(r.status, 404);
    let r = call(&admin, Method::GET, &grants_path(&project_a, &agency), None).await;
    assert_eq!(role_names(&r.body["roles"]), ["FunctionGraph Invoker"]);

    // Deleting the agency deletes its grants: a new agency of the same name starts empty.
    let r = call(
        &admin,
        Method::DELETE,
        &format!("{AGENCIES}/{agency}"),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    let r = call(&admin, Method::GET, &grants_path(&project_a, &agency), None).await;
    assert_eq!(r.status, 404);
    let again = function_agency(&admin, &domain, "fn_trust").await;
    let r = call(&admin, Method::GET, &grants_path(&project_a, &again), None).await;
    assert_eq!(r.body["roles"], json!([]));
}

#[tokio::test]
async fn only_administrators_manage_agencies_and_roles() {
    let server = Server::start();
    let admin = server.admin_password().await;
    let domain = domain_id(&admin).await;
    let project = admin.project_id().to_owned();
    let agency = function_agency(&admin, &domain, "fn_trust").await;
    let smn = role_id("SMN Administrator");
    let r = admin
        .send(
            Method::POST,
            "/v3/users",
            "",
            Some(json!({"user": {"name": "bob", "password": "Bob-password-1"}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    let bob = server
        .client(Credentials::Password {
            user: "bob".into(),
            password: "Bob-password-1".into(),
        })
        .await;

    let body =
        json!({"agency": {"name": "bobs", "domain_id": domain, "trust_domain_name": "op_svc_cff"}});
    let attempts = [
        (Method::POST, AGENCIES.to_owned(), Some(body)),
        (Method::GET, AGENCIES.to_owned(), None),
        (Method::GET, format!("{AGENCIES}/{agency}"), None),
        (Method::DELETE, format!("{AGENCIES}/{agency}"), None),
        (Method::PUT, grant_path(&project, &agency, smn), None),
        (Method::GET, grants_path(&project, &agency), None),
        (Method::DELETE, grant_path(&project, &agency, smn), None),
        (Method::GET, "/v3/roles".to_owned(), None),
        (Method::GET, format!("/v3/roles/{smn}"), None),
    ];
    for (method, path, body) in attempts {
        let r = call(&bob, method.clone(), &path, body).await;
        assert_iam_error(&r, 403, "needs a domain administrator");
    }
    let r = call(
        &bob,
        Method::HEAD,
        &grant_path(&project, &agency, smn),
        None,
    )
    .await;
    assert_eq!(r.status, 403);

    // Nothing changed.
    let r = call(&admin, Method::GET, AGENCIES, None).await;
    assert_eq!(r.body["agencies"].as_array().unwrap().len(), 1);
    let r = call(&admin, Method::GET, &grants_path(&project, &agency), None).await;
    assert_eq!(r.body["roles"], json!([]));
    // Without credentials: the gateway's 401.
    let r = server
        .http()
        .get(format!("{}{AGENCIES}", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn roles_are_listed_with_their_actions() {
    let server = Server::start();
    let admin = server.admin().await;
    let r = call(&admin, Method::GET, "/v3/roles", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let list = r.body["roles"].as_array().unwrap();
    assert_eq!(r.body["total_number"], list.len());
    assert!(
        r.body["links"]["self"]
            .as_str()
            .unwrap()
            .ends_with("/v3/roles")
    );
    let names = role_names(&r.body["roles"]);
    for name in [
        "Tenant Administrator",
        "Tenant Guest",
        "SMN Administrator",
        "OBS Administrator",
        "CTS Administrator",
        "FunctionGraph Invoker",
        "FunctionGraph Administrator",
        "LTS Administrator",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
    let find = |display: &str| {
        list.iter()
            .find(|r| r["display_name"] == display)
            .unwrap()
            .clone()
    };
    let admin_role = find("Tenant Administrator");
    assert_eq!(admin_role["id"], role_id("Tenant Administrator"));
    assert_eq!(admin_role["name"], "te_admin");
    assert_eq!(admin_role["catalog"], "BASE");
    assert_eq!(admin_role["type"], "AX");
    assert_eq!(
        admin_role["policy"],
        json!({"Version": "1.1", "Statement": [
            {"Effect": "Allow", "Action": ["*:*:*"]},
            {"Effect": "Deny", "Action": ["iam:*:*", "identity:*:*"]},
        ]})
    );
    let expected_actions = [
        ("SMN Administrator", json!(["smn:*:*"])),
        ("OBS Administrator", json!(["obs:*:*"])),
        ("CTS Administrator", json!(["cts:*:*"])),
        (
            "FunctionGraph Invoker",
            json!(["functiongraph:function:invoke"]),
        ),
        ("FunctionGraph Administrator", json!(["functiongraph:*:*"])),
        ("LTS Administrator", json!(["lts:*:*"])),
        (
            "Tenant Guest",
            json!(["*:*:get*", "*:*:list*", "*:*:head*"]),
        ),
    ];
    for (display, actions) in expected_actions {
        let role = find(display);
        assert_eq!(role["policy"]["Version"], "1.1");
        assert_eq!(role["policy"]["Statement"][0]["Effect"], "Allow");
        assert_eq!(
            role["policy"]["Statement"][0]["Action"], actions,
            "{display}"
        );
        assert!(matches!(role["type"].as_str(), Some("AX" | "XA")), "{role}");
        let id = role["id"].as_str().unwrap();
        assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    assert_eq!(find("FunctionGraph Invoker")["type"], "XA");

    // Filters: exact internal name, display name (substring, as OTC), catalog.
    let get = |query: &'static str| {
        let admin = &admin;
        async move {
            let r = admin
                .raw(Method::GET, "/v3/roles", query, None, true)
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{}", r.body);
            role_names(&r.body["roles"])
        }
    };
    assert_eq!(get("name=te_admin").await, ["Tenant Administrator"]);
    assert_eq!(
        get("display_name=FunctionGraph%20Invoker").await,
        ["FunctionGraph Invoker"]
    );
    assert_eq!(
        get("display_name=Administrator").await,
        [
            "Tenant Administrator",
            "SMN Administrator",
            "OBS Administrator",
            "CTS Administrator",
            "FunctionGraph Administrator",
            "LTS Administrator"
        ]
    );
    assert_eq!(
        get("catalog=SMN").await,
        ["SMN Administrator", "SMN ReadOnlyAccess"]
    );
    assert!(get("name=nobody").await.is_empty());

    // One role by id; an unknown id is 404.
    let smn = role_id("SMN Administrator");
    let r = call(&admin, Method::GET, &format!("/v3/roles/{smn}"), None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["role"], find("SMN Administrator"));
    let r = call(
        &admin,
        Method::GET,
        &format!("/v3/roles/{}", "0".repeat(32)),
        None,
    )
    .await;
    assert_iam_error(&r, 404, "does not exist");
}

#[tokio::test]
async fn other_domains_neither_see_nor_touch_agencies() {
    let server = Server::start();
    let admin = server.admin().await;
    let domain = domain_id(&admin).await;
    let project = admin.project_id().to_owned();
    let agency = function_agency(&admin, &domain, "fn_trust").await;
    let smn = role_id("SMN Administrator");
    let r = call(
        &admin,
        Method::PUT,
        &grant_path(&project, &agency, smn),
        None,
    )
    .await;
    assert_eq!(r.status, 204);

    // A second domain with its own administrator (there is no API for domains yet).
    let mut server = server;
    server.kill9();
    let hash = trailwatch_iam::hash_password("Other-password-1").unwrap();
    {
        let store =
            trailwatch_store::Store::open(trailwatch_store::StoreOptions::new(&server.data_dir))
                .unwrap();
        store
            .write(move |c| {
                use trailwatch_store::iam;
                iam::create_domain(c, &"e".repeat(32), "other")?;
                iam::create_project(c, &"d".repeat(32), &"e".repeat(32), "other-p")?;
                iam::create_user(
                    c,
                    iam::NewUser {
                        id: &"c".repeat(32),
                        domain_id: &"e".repeat(32),
                        name: "root",
                        password_hash: Some(&hash),
                        is_admin: true,
                    },
                )?;
                Ok(())
            })
            .await
            .unwrap();
    }
    let server = server.restart_after_kill9();
    let admin = server.admin_password().await;
    let other = Client::connect(ClientConfig {
        endpoint: server.url.clone(),
        credentials: Credentials::Password {
            user: "root".into(),
            password: "Other-password-1".into(),
        },
        project: "other-p".into(),
        domain: "other".into(),
        ca_cert_pem: None,
    })
    .await
    .unwrap();
    let other_domain = "e".repeat(32);
    let other_project = "d".repeat(32);

    // The other administrator sees none of default's agencies and can touch none of them.
    let r = call(&other, Method::GET, AGENCIES, None).await;
    assert_eq!(r.body["agencies"], json!([]), "{}", r.body);
    let r = other
        .raw(
            Method::GET,
            AGENCIES,
            &format!("domain_id={domain}"),
            None,
            true,
        )
        .await
        .unwrap();
    assert_iam_error(&r, 403, "own domain");
    for method in [Method::GET, Method::DELETE] {
        let r = call(&other, method, &format!("{AGENCIES}/{agency}"), None).await;
        assert_iam_error(&r, 404, "does not exist in your domain");
    }
    for method in [Method::PUT, Method::DELETE] {
        let r = call(&other, method, &grant_path(&project, &agency, smn), None).await;
        assert_iam_error(&r, 404, "does not exist in your domain");
    }
    let r = call(
        &other,
        Method::HEAD,
        &grant_path(&project, &agency, smn),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    let r = create_agency(
        &other,
        json!({"name": "x", "domain_id": domain, "trust_domain_name": "op_svc_cff"}),
    )
    .await;
    assert_iam_error(&r, 403, "only in your own domain");

    // Its own agency of the same name is another agency; it cannot be granted in default's
    // project, nor default's agency in its project.
    let mine = function_agency(&other, &other_domain, "fn_trust").await;
    assert_ne!(mine, agency);
    let r = call(&other, Method::PUT, &grant_path(&project, &mine, smn), None).await;
    assert_iam_error(&r, 404, "project");
    let r = call(
        &admin,
        Method::PUT,
        &grant_path(&other_project, &agency, smn),
        None,
    )
    .await;
    assert_iam_error(&r, 404, "project");

    // Default's grant survived the restart; the other domain's changes did not touch it.
    let r = call(
        &admin,
        Method::HEAD,
        &grant_path(&project, &agency, smn),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    let r = call(&admin, Method::GET, AGENCIES, None).await;
    assert_eq!(r.body["agencies"].as_array().unwrap().len(), 1);

    // An agency may trust another domain, by name or id.
    let r = create_agency(
        &admin,
        json!({"name": "partner", "domain_id": domain, "trust_domain_name": "other"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["agency"]["trust_domain_id"], other_domain.as_str());
    assert_eq!(r.body["agency"]["trust_domain_name"], "other");
    let r = create_agency(
        &admin,
        json!({"name": "partner2", "domain_id": domain, "trust_domain_id": other_domain}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["agency"]["trust_domain_name"], "other");
    let r = admin
        .raw(
            Method::GET,
            AGENCIES,
            &format!("trust_domain_id={other_domain}"),
            None,
            true,
        )
        .await
        .unwrap();
    let names: Vec<&str> = r.body["agencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["partner", "partner2"]);
}

#[tokio::test]
async fn agency_rights_are_what_was_granted_in_that_project() {
    let server = Server::start();
    let admin = server.admin().await;
    let domain = domain_id(&admin).await;
    let project_a = admin.project_id().to_owned();
    let project_b = create_project(&admin, "team-b").await;
    let agency = function_agency(&admin, &domain, "fn_trust").await;
    function_agency(&admin, &domain, "idle").await;
    for (project, role) in [
        (&project_a, "SMN Administrator"),
        (&project_a, "FunctionGraph Invoker"),
        (&project_a, "CTS Administrator"),
        (&project_b, "OBS Administrator"),
    ] {
        let r = call(
            &admin,
            Method::PUT,
            &grant_path(project, &agency, role_id(role)),
            None,
        )
        .await;
        assert_eq!(r.status, 204, "{}", r.body);
    }
    let r = call(
        &admin,
        Method::DELETE,
        &grant_path(&project_a, &agency, role_id("CTS Administrator")),
        None,
    )
    .await;
    assert_eq!(r.status, 204);

    // What a function acting through `fn_trust` may do, read from the same database.
    let mut server = server;
    server.kill9();
    let store =
        trailwatch_store::Store::open(trailwatch_store::StoreOptions::new(&server.data_dir))
            .unwrap();
    use trailwatch_store::agencies::agency_rights;
    let in_a = agency_rights(&store, &domain, &project_a, "fn_trust")
        .await
        .unwrap();
    assert!(in_a.allows("smn:topic:publish"));
    assert!(in_a.allows("smn:topic:list"));
    assert!(in_a.allows("functiongraph:function:invoke"));
    assert!(!in_a.allows("functiongraph:function:create"));
    assert!(!in_a.allows("cts:trace:list"), "revoked");
    assert!(
        !in_a.allows("obs:object:putObject"),
        "granted in project B only"
    );
    let in_b = agency_rights(&store, &domain, &project_b, "fn_trust")
        .await
        .unwrap();
    assert!(in_b.allows("obs:object:putObject"));
    assert!(in_b.allows("obs:object:getObject"));
    assert!(!in_b.allows("smn:topic:publish"));
    let idle = agency_rights(&store, &domain, &project_a, "idle")
        .await
        .unwrap();
    assert_eq!(idle, roles::Rights::none());
    let missing = agency_rights(&store, &domain, &project_a, "nope").await;
    assert!(
        matches!(missing, Err(trailwatch_store::StoreError::NotFound(_))),
        "{missing:?}"
    );
    drop(store);

    // The grants survive a restart.
    let server = server.restart_after_kill9();
    let admin = server.admin().await;
    let r = call(&admin, Method::GET, &grants_path(&project_a, &agency), None).await;
    assert_eq!(
        role_names(&r.body["roles"]),
        ["SMN Administrator", "FunctionGraph Invoker"]
    );
}
