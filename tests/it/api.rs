//! The HTTP API over real TCP (and the CLI verbs that mirror it): tokens, the access
//! matrix of every action, views, filters, search and pages, messages and attachments,
//! blocked senders, delete forever with tombstones, trash retention on the test clock,
//! and the OpenAPI document against the served routes.

use serde_json::{json, Value};

use crate::support::*;

const SUPPORT: &str = "support@demo.hs-inbox.com";
const SALES: &str = "sales@demo.hs-inbox.com";
const BOB: &str = "bob@demo.example"; // member of Sales (and Support: everyone)
const ALICE: &str = "alice@demo.example"; // member of Support only
const ROOT: &str = "root@demo.example"; // super admin, member of Support only

fn message(id: &str, from: &str, to: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "Message-ID: <{id}>\r\nFrom: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n\
         Date: Sat, 21 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// Delivers one message over SMTP; returns the id of the conversation it landed in.
async fn deliver(d: &Daemon, id: &str, from: &str, to: &str, subject: &str, body: &str) -> i64 {
    let reply = d
        .send(from, &[to], &message(id, from, to, subject, body))
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    newest_conversation(d)
}

fn newest_conversation(d: &Daemon) -> i64 {
    d.list(&["--include-trash"])
        .iter()
        .filter_map(|c| c["id"].as_i64())
        .max()
        .expect("a conversation")
}

/// A token for a user who has since been removed from the config: the row exists,
/// the user does not. Made with the real CLI while the user was configured.
async fn removed_users_token(d: &Daemon) -> String {
    const GONE: &str = "gone@demo.example";
    let without = d.config_text();
    let with_gone = without.replacen(
        "[[users]]",
        &format!("[[users]]\nemail = \"{GONE}\"\nname = \"Gone User\"\n\n[[users]]"),
        1,
    );
    d.reload(&with_gone);
    let token = d.token(GONE);
    d.reload(&without);
    token
}

/// The request an action makes, with its body.
fn action_request(action: &str, id: i64) -> (&'static str, String, Option<Value>) {
    let path = format!("/api/v1/conversations/{id}/{action}");
    match action {
        "assign" => ("POST", path, Some(json!({ "assignee": BOB }))),
        "comment" => ("POST", path, Some(json!({ "text": "internal note" }))),
        "move" => ("POST", path, Some(json!({ "inbox": "Support" }))),
        "close" => ("POST", path, Some(json!({ "with_ticket": true }))),
        "delete" => ("DELETE", format!("/api/v1/conversations/{id}"), None),
        _ => ("POST", path, None),
    }
}

#[tokio::test]
async fn every_action_obeys_the_access_matrix() {
    let d = Daemon::start().await;
    let api = d.api();
    let member = d.token(BOB);
    let non_member = d.token(ALICE);
    let admin = d.token(ROOT);
    let removed = removed_users_token(&d).await;
    let actions = [
        "assign",
        "unassign",
        "comment",
        "close",
        "reopen",
        "move",
        "trash",
        "restore",
        "delete",
        "spam",
        "not_spam",
        "block_sender",
    ];
    for (n, action) in actions.into_iter().enumerate() {
        let id = deliver(
            &d,
            &format!("m{n}@klant.example"),
            &format!("klant{n}@klant.example"),
            SALES,
            &format!("Offerte {n}"),
            "Graag een offerte.",
        )
        .await;
        if action == "delete" {
            let (status, _) = api
                .post(
                    &format!("/api/v1/conversations/{id}/trash"),
                    &member,
                    json!({}),
                )
                .await;
            assert_eq!(status, 200);
        }
        let before = api
            .ok(&format!("/api/v1/conversations/{id}"), &member)
            .await;
        let (method, path, body) = action_request(action, id);
        for (who, token, expected) in [
            ("removed user", &removed, 401),
            ("non-member", &non_member, 404),
            ("super admin non-member", &admin, 403),
        ] {
            let (status, error) = api.call(method, &path, Some(token), body.clone()).await;
            assert_eq!(status, expected, "{action} by {who}: {error}");
            let code = match expected {
                401 => "unauthorized",
                404 => "not_found",
                _ => "forbidden",
            };
            assert_eq!(error["code"], code, "{action} by {who}");
        }
        let after = api
            .ok(&format!("/api/v1/conversations/{id}"), &member)
            .await;
        assert_eq!(before, after, "{action}: refused requests changed nothing");
        let (status, result) = api.call(method, &path, Some(&member), body).await;
        assert_eq!(status, 200, "{action} by member: {result}");
        let timeline = api
            .get(&format!("/api/v1/conversations/{id}"), &member)
            .await;
        if action == "delete" {
            assert_eq!(result["deleted"], true);
            assert_eq!(timeline.0, 404, "deleted forever");
            continue;
        }
        let entries = timeline.1["timeline"].as_array().expect("timeline").clone();
        let last = entries.last().expect("the action is on the timeline");
        assert_eq!(last["action"], action);
        assert_eq!(last["actor"], BOB);
    }
    // Viewing: the admin may, the others see nothing.
    let id = deliver(&d, "view@k", "v@klant.example", SALES, "Bekijk", "x").await;
    let path = format!("/api/v1/conversations/{id}");
    assert_eq!(api.get(&path, &admin).await.0, 200);
    assert_eq!(api.get(&path, &non_member).await.0, 404);
    assert_eq!(api.get(&path, &removed).await.0, 401);
    let listed = api.ok("/api/v1/conversations?inbox=Sales", &admin).await;
    assert!(!listed["conversations"].as_array().unwrap().is_empty());
    assert_eq!(
        api.get("/api/v1/conversations?inbox=Sales", &non_member)
            .await
            .0,
        404
    );
    let alices = api.ok("/api/v1/conversations", &non_member).await;
    assert!(alices["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["inbox"] != "Sales"));
    d.stop().await;
}

#[tokio::test]
async fn tokens_are_required_stored_hashed_and_failures_rate_limited() {
    let d = Daemon::start().await;
    let api = d.api();
    let token = d.token(BOB);
    let (status, body) = api.call("GET", "/api/v1/me", None, None).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    let me = api.ok("/api/v1/me", &token).await;
    assert_eq!(me["email"], BOB);
    let stored = d.store_bytes();
    assert!(
        stored.windows(BOB.len()).any(|w| w == BOB.as_bytes()),
        "the store's bytes hold the token's row (its user)"
    );
    let secret = token.rsplit('_').next().unwrap();
    assert!(
        !stored.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the token itself is not stored"
    );
    // Change the last character (to something it is not) so the token is wrong.
    let last = if token.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &token[..token.len() - 1]);
    for attempt in 0..10 {
        let (status, _) = api.get("/api/v1/me", &forged).await;
        assert_eq!(status, 401, "attempt {attempt}");
    }
    let (status, body) = api.get("/api/v1/me", &forged).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")));
    api.ok("/api/v1/me", &token).await;
    d.stop().await;
}

#[tokio::test]
async fn views_filters_search_and_pages() {
    let d = Daemon::start().await;
    let api = d.api();
    let bob = d.token(BOB);
    let mut ids = Vec::new();
    for (n, (from, subject, body)) in [
        (
            "jan@klant.example",
            "Bestelling 12",
            "Waar blijft mijn pakket?",
        ),
        ("piet@klant.example", "Factuur", "De factuur klopt niet."),
        (
            "anna@shop.example",
            "Retour",
            "Ik wil de schoenen terugsturen.",
        ),
        ("lisa@shop.example", "Vraag", "Hebben jullie maat 42?"),
        ("tom@shop.example", "Spam?", "Win een prijs"),
    ]
    .into_iter()
    .enumerate()
    {
        d.clock.advance(60);
        ids.push(deliver(&d, &format!("v{n}@x"), from, SUPPORT, subject, body).await);
    }
    let act = |id: i64, action: &'static str, body: Value| {
        let api = &api;
        let bob = &bob;
        async move {
            let (status, out) = api
                .post(&format!("/api/v1/conversations/{id}/{action}"), bob, body)
                .await;
            assert_eq!(status, 200, "{action}: {out}");
        }
    };
    act(ids[0], "assign", json!({ "assignee": BOB })).await;
    act(ids[1], "close", json!({})).await;
    act(ids[2], "comment", json!({ "text": "Retourlabel gestuurd" })).await;
    act(ids[4], "spam", json!({})).await;
    act(ids[3], "trash", json!({})).await;
    let view = |name: &'static str| {
        let api = &api;
        let bob = &bob;
        async move {
            let page = api
                .ok(&format!("/api/v1/conversations?view={name}"), bob)
                .await;
            page["conversations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_i64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(view("assigned_to_me").await, vec![ids[0]]);
    assert_eq!(view("unassigned").await, vec![ids[2]]);
    assert_eq!(view("all_open").await, vec![ids[2], ids[0]]);
    assert_eq!(view("closed").await, vec![ids[1]]);
    assert_eq!(view("spam").await, vec![ids[4]]);
    assert_eq!(view("trash").await, vec![ids[3]]);
    assert_eq!(view("email").await, vec![ids[2], ids[1], ids[0]]);
    assert_eq!(view("sent").await, Vec::<i64>::new());
    assert_eq!(view("filtered").await, Vec::<i64>::new());

    let list = |query: &'static str| {
        let api = &api;
        let bob = &bob;
        async move { api.ok(&format!("/api/v1/conversations?{query}"), bob).await }
    };
    let ids_of = |page: &Value| -> Vec<i64> {
        page["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_i64().unwrap())
            .collect()
    };
    // F3 fields on list items.
    let commented = list("contact=anna@shop.example").await;
    let item = &commented["conversations"][0];
    assert_eq!(item["comment_preview"], "Retourlabel gestuurd");
    assert_eq!(item["preview"], "Ik wil de schoenen terugsturen.");
    assert_eq!(item["participant_count"], 2);
    assert_eq!(item["contact"]["name"], Value::Null);
    // Filters.
    assert_eq!(ids_of(&list("status=closed").await), vec![ids[1]]);
    assert_eq!(
        ids_of(&list("assignee=bob@demo.example").await),
        vec![ids[0]]
    );
    assert_eq!(
        ids_of(&list("assignee=none&status=open&sort=oldest").await),
        vec![ids[2], ids[4]]
    );
    assert_eq!(
        ids_of(&list("hide_trash=false&sort=oldest&channel=support@demo.hs-inbox.com").await),
        ids
    );
    // Messages arrived at clock 1.8e9 + 60·n: this range holds the 3rd to the 5th.
    assert_eq!(
        ids_of(&list("since=2027-01-15T08:02:30Z&until=2027-01-15T08:05:30Z&sort=oldest").await),
        vec![ids[2], ids[4]],
        "the 4th is in trash"
    );
    // Search: body text, subject, sender; FTS syntax taken literally.
    assert_eq!(ids_of(&list("q=pakket").await), vec![ids[0]]);
    assert_eq!(ids_of(&list("q=factuur").await), vec![ids[1]]);
    assert_eq!(ids_of(&list("q=piet%40klant.example").await), vec![ids[1]]);
    assert_eq!(
        ids_of(&list("q=schoen").await),
        vec![ids[2]],
        "prefix match"
    );
    assert_eq!(ids_of(&list("q=%22NEAR(%20OR").await), Vec::<i64>::new());
    // Pages with a cursor.
    let first = list("hide_trash=false&limit=2").await;
    assert_eq!(ids_of(&first), vec![ids[4], ids[3]]);
    let cursor = first["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let second = api
        .ok(
            &format!("/api/v1/conversations?hide_trash=false&limit=2&cursor={cursor}"),
            &bob,
        )
        .await;
    assert_eq!(ids_of(&second), vec![ids[2], ids[1]]);
    // Bad input names the parameter.
    let (status, error) = api.get("/api/v1/conversations?view=inbox", &bob).await;
    assert_eq!((status, error["code"].as_str()), (400, Some("invalid")));
    assert!(error["message"].as_str().unwrap().starts_with("view"));
    let (status, _) = api.get("/api/v1/conversations?color=red", &bob).await;
    assert_eq!(status, 400);
    // Bulk close and bulk trash.
    let (status, out) = api
        .post(
            "/api/v1/conversations/bulk",
            &bob,
            json!({ "action": "close", "ids": [ids[0], ids[2], 9999] }),
        )
        .await;
    assert_eq!(status, 200);
    let oks: Vec<bool> = out["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ok"].as_bool().unwrap())
        .collect();
    assert_eq!(oks, vec![true, true, false]);
    assert_eq!(out["results"][2]["code"], "not_found");
    let (status, _) = api
        .post(
            "/api/v1/conversations/bulk",
            &bob,
            json!({ "action": "trash", "ids": [ids[0], ids[1]] }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(view("trash").await, vec![ids[3], ids[1], ids[0]]);
    d.stop().await;
}

#[tokio::test]
async fn inboxes_me_messages_raw_attachments_and_contacts() {
    let d = Daemon::start().await;
    let api = d.api();
    let alice = d.token(ALICE);
    let reply = d
        .send(
            "jan.devries@klant.example",
            &[SUPPORT],
            &fixture("attachment.eml"),
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let inboxes = api.ok("/api/v1/inboxes", &alice).await;
    assert_eq!(inboxes.as_array().unwrap().len(), 1, "Sales is invisible");
    assert_eq!(inboxes[0]["channels"][0]["address"], SUPPORT);
    assert_eq!(inboxes[0]["channels"][1]["forwarding_address"], SUPPORT);
    let (status, me) = api
        .call(
            "PUT",
            "/api/v1/me/availability",
            Some(&alice),
            Some(json!({ "available": false })),
        )
        .await;
    assert_eq!((status, &me["available"]), (200, &json!(false)));
    assert_eq!(api.ok("/api/v1/me", &alice).await["available"], false);

    let list = api.ok("/api/v1/conversations", &alice).await;
    let conversation = &list["conversations"][0];
    let shown = api
        .ok(
            &format!("/api/v1/conversations/{}", conversation["id"]),
            &alice,
        )
        .await;
    let message_id = shown["messages"][0]["id"].as_i64().unwrap();
    let message = api
        .ok(&format!("/api/v1/messages/{message_id}"), &alice)
        .await;
    assert_eq!(message["truncated"], false);
    assert_eq!(message["conversation_id"], conversation["id"]);
    let (status, raw) = api
        .bytes(&format!("/api/v1/messages/{message_id}/raw"), &alice)
        .await;
    assert_eq!(status, 200);
    assert!(raw.starts_with(b"Received: "), "our trace header first");
    let (status, png) = api
        .bytes(
            &format!("/api/v1/messages/{message_id}/attachments/1"),
            &alice,
        )
        .await;
    assert_eq!((status, png.len()), (200, 70));
    assert!(png.starts_with(b"\x89PNG"));
    let (status, pdf) = api
        .bytes(
            &format!("/api/v1/messages/{message_id}/attachments/0"),
            &alice,
        )
        .await;
    assert_eq!((status, &pdf[..5]), (200, &b"%PDF-"[..]));
    let (status, _) = api
        .bytes(
            &format!("/api/v1/messages/{message_id}/attachments/7"),
            &alice,
        )
        .await;
    assert_eq!(status, 404);
    let bob_only = d.token(BOB);
    let (status, _) = api
        .get(&format!("/api/v1/messages/{message_id}"), &d.token(ROOT))
        .await;
    assert_eq!(status, 200, "admins view every inbox");
    let _ = bob_only;

    let contact = api
        .ok("/api/v1/contacts/jan.devries@klant.example", &alice)
        .await;
    assert_eq!(contact["name"], "Jan de Vries");
    assert_eq!(contact["conversations"][0]["id"], conversation["id"]);
    assert_eq!(contact["tickets"], json!([]));
    let by_id = api
        .ok(&format!("/api/v1/contacts/{}", contact["id"]), &alice)
        .await;
    assert_eq!(by_id["email"], "jan.devries@klant.example");
    d.stop().await;
}

#[tokio::test]
async fn blocking_a_sender_filters_this_and_future_threads_until_unblocked() {
    let d = Daemon::start().await;
    let api = d.api();
    let alice = d.token(ALICE);
    let first = deliver(&d, "b1@x", "pest@spam.example", SUPPORT, "Koop nu", "!!!").await;
    let (status, c) = api
        .post(
            &format!("/api/v1/conversations/{first}/block_sender"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!((status, &c["filtered"]), (200, &json!(true)));
    let blocked = api.ok("/api/v1/senders/blocked", &alice).await;
    assert_eq!(blocked[0]["address"], "pest@spam.example");
    let second = deliver(&d, "b2@x", "pest@spam.example", SUPPORT, "Nieuw", "!!!").await;
    let filtered = api.ok("/api/v1/conversations?view=filtered", &alice).await;
    let filtered: Vec<i64> = filtered["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(filtered, vec![second, first]);
    let (status, _) = api
        .call(
            "DELETE",
            "/api/v1/senders/blocked/pest@spam.example",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let third = deliver(&d, "b3@x", "pest@spam.example", SUPPORT, "Weer", "?").await;
    let open = api.ok("/api/v1/conversations?view=all_open", &alice).await;
    assert_eq!(open["conversations"][0]["id"], third);
    assert_eq!(open["conversations"].as_array().unwrap().len(), 1);
    let shown = api
        .ok("/api/v1/conversations?hide_filtered=true", &alice)
        .await;
    assert_eq!(shown["conversations"].as_array().unwrap().len(), 1);
    let all = api.ok("/api/v1/conversations", &alice).await;
    assert_eq!(all["conversations"].as_array().unwrap().len(), 3);
    d.stop().await;
}

/// Messages in the search index: SQLite's FTS5 table or PostgreSQL's tsvectors.
fn indexed_messages(d: &Daemon) -> i64 {
    let table = if backend_is_postgres() {
        "messages_search"
    } else {
        "messages_fts"
    };
    d.query_i64(&format!("SELECT COUNT(*) FROM {table}"))
}

#[tokio::test]
async fn trash_is_deleted_for_good_after_30_days_and_never_reimported() {
    let d = Daemon::start().await;
    let api = d.api();
    let alice = d.token(ALICE);
    let m = message(
        "old@klant.example",
        "oud@klant.example",
        SUPPORT,
        "Oud",
        "weg ermee",
    );
    assert!(d
        .send("oud@klant.example", &[SUPPORT], &m)
        .await
        .starts_with("250"));
    let id = newest_conversation(&d);
    let (status, _) = api
        .post(
            &format!("/api/v1/conversations/{id}/trash"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    // Delete forever is refused outside trash; restoring and trashing again is fine.
    let kept = deliver(&d, "keep@k", "blijf@klant.example", SUPPORT, "Blijf", "x").await;
    let (status, error) = api
        .call(
            "DELETE",
            &format!("/api/v1/conversations/{kept}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!((status, error["code"].as_str()), (409, Some("conflict")));

    // A search catches the (batched) index up before it runs: both messages are in it.
    let (status, _) = api.get("/api/v1/conversations?q=anything", &alice).await;
    assert_eq!(status, 200);
    assert_eq!(indexed_messages(&d), 2);

    d.clock.advance(29 * 86_400);
    assert_eq!(d.sweep_trash().await, 0, "29 days: still in trash");
    assert_eq!(
        api.get(&format!("/api/v1/conversations/{id}"), &alice)
            .await
            .0,
        200
    );
    d.clock.advance(2 * 86_400);
    assert_eq!(d.sweep_trash().await, 1, "31 days: deleted for good");
    assert_eq!(
        api.get(&format!("/api/v1/conversations/{id}"), &alice)
            .await
            .0,
        404
    );
    let raw = d.query_i64("SELECT COUNT(*) FROM raw_messages");
    assert_eq!(raw, 1, "only the kept conversation's raw copy is left");
    let (status, _) = api.get("/api/v1/conversations?q=anything", &alice).await;
    assert_eq!(status, 200);
    assert_eq!(
        indexed_messages(&d),
        1,
        "its text left the search index too"
    );
    if backend_is_postgres() {
        let left = format!("SELECT COUNT(*) FROM messages_search WHERE conversation_id = {id}");
        assert_eq!(
            d.query_i64(&left),
            0,
            "the deleted conversation's documents"
        );
    }
    // The same message again (a retry, or IMAP seeing it) is not imported again.
    assert!(d
        .send("oud@klant.example", &[SUPPORT], &m)
        .await
        .starts_with("250"));
    let all = d.list(&["--include-trash"]);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0]["id"], kept);
    d.stop().await;
}

#[tokio::test]
async fn the_openapi_document_matches_the_served_routes() {
    let d = Daemon::start().await;
    let api = d.api();
    let token = d.token(BOB);
    let (status, doc) = api.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, 200, "served without a token");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let mut checked = 0;
    for (path, operations) in paths {
        let concrete = path
            .replace("{id}", "999")
            .replace("{index}", "0")
            .replace("{key}", "nobody@example.test")
            .replace("{address}", "x@example.test");
        for method in operations.as_object().unwrap().keys() {
            let body = (method != "get" && method != "delete").then(|| json!({}));
            let (status, reply) = api
                .call(&method.to_uppercase(), &concrete, Some(&token), body)
                .await;
            assert_ne!(status, 405, "{method} {path}");
            assert_ne!(reply["message"], "no such route", "{method} {path}");
            checked += 1;
        }
    }
    assert!(checked > 20);
    let (status, reply) = api.get("/api/v1/nothing-here", &token).await;
    assert_eq!(
        (status, reply["message"].as_str()),
        (404, Some("no such route"))
    );
    d.stop().await;
}

#[tokio::test]
async fn cli_verbs_mirror_the_api_with_the_same_access_rules() {
    let d = Daemon::start().await;
    let id = deliver(
        &d,
        "c1@k",
        "klant@klant.example",
        SALES,
        "Prijs",
        "Wat kost het?",
    )
    .await;
    let id_text = id.to_string();
    let out = d.cli(&[
        "conversations",
        "assign",
        &id_text,
        BOB,
        "--as",
        BOB,
        "--json",
    ]);
    let c: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(c["assignee"], BOB);
    d.cli(&[
        "conversations",
        "comment",
        &id_text,
        "Belt morgen terug",
        "--as",
        BOB,
    ]);
    d.cli(&["conversations", "close", &id_text, "--as", BOB]);
    let shown = d.show(id);
    assert_eq!(shown["status"], "closed");
    let actions: Vec<&str> = shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["assign", "comment", "close"]);
    for (who, code) in [(ALICE, "not_found"), (ROOT, "forbidden")] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_inboxgate"))
            .arg("--config")
            .arg(&d.config_path)
            .args(["conversations", "reopen", &id_text, "--as", who])
            .output()
            .expect("run");
        assert!(!out.status.success(), "{who}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(code),
            "{who}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let alices = d.list(&["--as", ALICE]);
    assert!(alices.is_empty(), "Sales is invisible to alice: {alices:?}");
    assert_eq!(d.list(&["--as", ROOT]).len(), 1);
    // Bulk trash, then delete forever.
    let other = deliver(&d, "c2@k", "ander@klant.example", SALES, "Nog een", "?").await;
    d.cli(&[
        "conversations",
        "trash",
        &id_text,
        &other.to_string(),
        "--as",
        BOB,
    ]);
    assert_eq!(d.list(&["--view", "trash"]).len(), 2);
    d.cli(&["conversations", "delete", &id_text, "--as", BOB]);
    assert_eq!(d.list(&["--view", "trash"]).len(), 1);
    d.stop().await;
}

#[tokio::test]
async fn the_other_cli_verbs_senders_users_contacts_and_attachments() {
    let d = Daemon::start().await;
    let id = deliver(&d, "o1@k", "klant@klant.example", SUPPORT, "Vraag", "Hoi").await;
    let id_text = id.to_string();
    let run = |args: &[&str]| -> Value {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--as", ALICE, "--json"]);
        serde_json::from_str(&d.cli(&all)).expect("json")
    };
    assert_eq!(run(&["conversations", "spam", &id_text])["spam"], true);
    assert_eq!(run(&["conversations", "not-spam", &id_text])["spam"], false);
    assert_eq!(run(&["conversations", "trash", &id_text])["trashed"], true);
    assert_eq!(
        run(&["conversations", "restore", &id_text])["trashed"],
        false
    );
    assert_eq!(
        run(&["conversations", "unassign", &id_text])["assignee"],
        Value::Null
    );
    let moved = d.cli(&[
        "conversations",
        "move",
        &id_text,
        "Sales",
        "--as",
        BOB,
        "--json",
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(&moved).unwrap()["inbox"],
        "Sales"
    );
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_inboxgate"))
        .arg("--config")
        .arg(&d.config_path)
        .args(["conversations", "block-sender", &id_text, "--as", ALICE])
        .output()
        .expect("run");
    assert!(!refused.status.success(), "alice is no member of Sales");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not_found"));
    let blocked = d.cli(&[
        "conversations",
        "block-sender",
        &id_text,
        "--as",
        BOB,
        "--json",
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(&blocked).unwrap()["filtered"],
        true
    );
    let senders: Value = serde_json::from_str(&d.cli(&["senders", "list"])).unwrap();
    assert_eq!(senders[0]["address"], "klant@klant.example");
    d.cli(&["senders", "unblock", "klant@klant.example", "--as", BOB]);
    d.cli(&["senders", "block", "Other@Spam.example", "--as", BOB]);
    let senders: Value = serde_json::from_str(&d.cli(&["senders", "list"])).unwrap();
    assert_eq!(senders.as_array().unwrap().len(), 1);
    assert_eq!(senders[0]["address"], "other@spam.example");
    let me: Value =
        serde_json::from_str(&d.cli(&["users", "availability", "away", "--as", BOB])).unwrap();
    assert_eq!(me["available"], false);
    let contact: Value =
        serde_json::from_str(&d.cli(&["contacts", "show", "klant@klant.example"])).unwrap();
    assert_eq!(contact["conversations"][0]["id"], id);
    let reply = d
        .send(
            "jan.devries@klant.example",
            &[SUPPORT],
            &fixture("attachment.eml"),
        )
        .await;
    assert!(reply.starts_with("250"), "{reply}");
    let newest = newest_conversation(&d);
    let message_id = d.show(newest)["messages"][0]["id"].as_i64().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_inboxgate"))
        .arg("--config")
        .arg(&d.config_path)
        .args([
            "messages",
            "attachment",
            &message_id.to_string(),
            "1",
            "--as",
            ALICE,
        ])
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(out.stdout.starts_with(b"\x89PNG") && out.stdout.len() == 70);
    d.stop().await;
}
