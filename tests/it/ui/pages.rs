//! Each page through the real router: sign-in and sessions, CSRF, tenant isolation and roles as
//! in the API, the seed's labels, filters and pages, escaping, notifications, projections, and a
//! read model that is behind.

use axum::http::StatusCode;
use runledger_api::auth::Role;
use runledger_api::tokens::revoke_token;
use serde_json::json;

use super::support::{Browser, field_value, unescaped};
use crate::api::TestApi;
use crate::api::support::{run_path, runs_path};
use crate::helpers::verbs::tenant;

/// A run queued, started, progressed with `success`/`failed` of `total` and completed; its id.
async fn completed_run(
    api: &TestApi,
    writer: &str,
    name: &str,
    success: u64,
    failed: u64,
) -> String {
    let t = tenant(1);
    let id = api.running_run(t, writer, json!({ "name": name })).await;
    let failures = if failed > 0 {
        json!([{ "code": "ssh_refused", "message": "host refused the connection", "count": failed }])
    } else {
        json!([])
    };
    for (rest, body) in [
        (
            "/progress",
            json!({ "success": success, "failed": failed, "total": success + failed, "failures": failures }),
        ),
        ("/complete", json!({})),
    ] {
        let answer = api.post(&run_path(t, &id, rest), writer, &body).await;
        assert_eq!(answer.status, StatusCode::OK, "{rest}: {:#}", answer.body);
    }
    id
}

#[tokio::test]
async fn a_browser_signs_in_with_a_token_and_its_session_ends_at_sign_out_or_revocation() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let tokens = api.tokens(t).await;
    let mut browser = Browser::new(&api);

    let before = browser.get("/ui/tenants/1/runs?status=running").await;
    assert_eq!(
        before.location(),
        "/ui/sign-in?next=%2Fui%2Ftenants%2F1%2Fruns%3Fstatus%3Drunning"
    );

    let refused = browser.sign_in("rl_not-a-token", "").await;
    assert!(
        refused
            .assert_html(StatusCode::UNAUTHORIZED)
            .contains("not valid")
    );
    assert_eq!(refused.set_cookie("runledger_session"), None);

    // A form posted from elsewhere has no double-submit cookie to match.
    let mut stranger = Browser::new(&api);
    let forged = stranger
        .post_form(
            "/ui/sign-in",
            &[("token", &tokens.reader), ("csrf", "guess"), ("next", "")],
        )
        .await;
    forged.assert_html(StatusCode::FORBIDDEN);
    assert_eq!(forged.set_cookie("runledger_session"), None);

    let signed_in = browser
        .sign_in(&tokens.reader, "/ui/tenants/1/runs?status=running")
        .await;
    assert_eq!(signed_in.location(), "/ui/tenants/1/runs?status=running");
    let cookie = signed_in.set_cookie("runledger_session").unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains(&tokens.reader),
        "the cookie is a session id, not the token"
    );

    let runs = browser.get("/ui/tenants/1/runs").await;
    runs.assert_html(StatusCode::OK);
    let policy = runs.headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'"), "{policy}");

    // Sign-out is a form of the session: without its CSRF token it is refused.
    let csrf = runs.csrf();
    browser
        .post_form("/ui/sign-out", &[("csrf", "not-the-session's")])
        .await
        .assert_html(StatusCode::FORBIDDEN);
    let out = browser.post_form("/ui/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.location(), "/ui/sign-in");
    assert!(
        browser
            .get("/ui/tenants/1/runs")
            .await
            .location()
            .starts_with("/ui/sign-in")
    );

    // Revoking the token ends its sessions at once.
    let mut other = Browser::signed_in(&api, &tokens.admin).await;
    other
        .get("/ui/tenants/1/runs")
        .await
        .assert_html(StatusCode::OK);
    let admin_id: uuid::Uuid =
        sqlx::query_scalar("SELECT id FROM api_tokens WHERE name = 'test-admin'")
            .fetch_one(&api.store.pool)
            .await
            .unwrap();
    assert!(revoke_token(&api.store.pool, admin_id).await.unwrap());
    assert!(
        other
            .get("/ui/tenants/1/runs")
            .await
            .location()
            .starts_with("/ui/sign-in")
    );
}

#[tokio::test]
async fn the_sign_in_page_never_sends_a_browser_to_another_site() {
    let api = TestApi::new().await;
    let tokens = api.tokens(tenant(1)).await;
    let mut browser = Browser::new(&api);
    let answer = browser
        .sign_in(&tokens.reader, "//evil.example/ui/tenants/1/runs")
        .await;
    assert_eq!(answer.location(), "/ui/tenants/1/runs");
}

#[tokio::test]
async fn the_runs_page_shows_each_run_with_the_seeds_labels_counts_and_times() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let tokens = api.tokens(t).await;
    let queued = api
        .queue(t, &tokens.writer, "backup.nightly", json!({ "n": 1 }))
        .await;
    let running = api.running_run(t, &tokens.writer, json!({ "n": 2 })).await;
    let succeeded = completed_run(&api, &tokens.writer, "a", 10, 0).await;
    let partial = completed_run(&api, &tokens.writer, "b", 9, 1).await;
    api.project().await;

    let mut browser = Browser::signed_in(&api, &tokens.reader).await;
    let page = browser.get("/ui/tenants/1/runs").await;
    let html = page.assert_html(StatusCode::OK);
    let row = |id: &str| {
        let start = html
            .find(&format!(r#"<tr id="run-{id}""#))
            .unwrap_or_else(|| panic!("a row for {id}: {html}"));
        let end = start + html[start..].find("</tr>").unwrap();
        html[start..end].to_owned()
    };
    let queued_row = row(&queued);
    assert!(
        queued_row.contains(r#"data-status="queued""#),
        "{queued_row}"
    );
    // One indicator of status and outcome: a queued run says Queued, not also Pending, and
    // shows no counts it does not have.
    assert!(
        queued_row.contains(">Queued<") && !queued_row.contains(">Pending<"),
        "{queued_row}"
    );
    assert!(
        queued_row.contains("waiting for a worker") && !queued_row.contains("0 ok"),
        "{queued_row}"
    );
    assert!(
        queued_row.contains(&format!(
            r#"<code class="run-id" title="{queued}">{}…{}</code>"#,
            &queued[..8],
            &queued[31..]
        )),
        "a short id, the whole one on hover: {queued_row}"
    );
    assert!(queued_row.contains("backup.nightly"));
    assert!(row(&running).contains(">Running<"));
    let succeeded_row = row(&succeeded);
    assert!(succeeded_row.contains(">Succeeded<"), "{succeeded_row}");
    assert!(succeeded_row.contains("10 ok of 10"), "{succeeded_row}");
    assert!(
        succeeded_row.contains(", then ran "),
        "a duration: {succeeded_row}"
    );
    assert!(
        succeeded_row.contains("data-relative>just now</time>"),
        "a relative time, the absolute one on hover: {succeeded_row}"
    );
    let partial_row = row(&partial);
    assert!(
        partial_row.contains(">Partially succeeded<"),
        "{partial_row}"
    );
    assert!(
        partial_row.contains(
            r#"<code class="failure-code" title="host refused the connection">ssh_refused</code>"#
        ),
        "the failure code in the row: {partial_row}"
    );
    assert!(
        partial_row.contains(r#"aria-label="9 succeeded, 1 failed, 0 skipped of 10""#),
        "{partial_row}"
    );
    assert!(
        partial_row.contains(&format!(r#"href="/ui/tenants/1/runs/{partial}""#)),
        "{partial_row}"
    );
    // Newest first.
    assert!(html.find(&partial).unwrap() < html.find(&queued).unwrap());
    assert!(html.contains("data-live-url=\"/ui/tenants/1/runs/live?after="));
    assert!(html.contains(r#"<p id="matching" class="matching">4 runs match</p>"#));
    assert!(!html.contains("Show its runs"), "no bare tenant box");
}

#[tokio::test]
async fn the_runs_page_filters_and_pages_like_the_list_route() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let tokens = api.tokens(t).await;
    let mut ids = Vec::new();
    for n in 0..52 {
        ids.push(
            api.queue(t, &tokens.writer, "inventory.sync", json!({ "n": n }))
                .await,
        );
    }
    let backup = api
        .queue(t, &tokens.writer, "backup.nightly", json!({}))
        .await;
    let done = completed_run(&api, &tokens.writer, "done", 1, 0).await;
    api.project().await;
    let mut browser = Browser::signed_in(&api, &tokens.reader).await;

    let completed = browser.get("/ui/tenants/1/runs?status=completed").await;
    let html = completed.assert_html(StatusCode::OK);
    assert!(html.contains(&done));
    assert!(!html.contains(&backup) && !html.contains(&ids[0]));
    assert!(html.contains(r#"<input type="hidden" name="status" value="completed">"#));
    let succeeded = browser.get("/ui/tenants/1/runs?state=succeeded").await;
    let html = succeeded.assert_html(StatusCode::OK);
    assert!(html.contains(&done) && !html.contains(&backup));
    assert!(html.contains(r#"<option value="succeeded" selected>"#));
    assert!(html.contains("1 run matches"), "{html}");
    let queued = browser.get("/ui/tenants/1/runs?state=queued").await;
    assert!(queued.html.contains("53 runs match"), "{}", queued.html);

    let backups = browser.get("/ui/tenants/1/runs?type=backup").await;
    let html = backups.assert_html(StatusCode::OK);
    assert!(html.contains(&backup) && !html.contains(&ids[0]) && !html.contains(&done));

    // 54 queued or completed runs: a first page of 50, then the rest, each run once.
    let mut seen = Vec::new();
    let mut path = "/ui/tenants/1/runs?created_from=2000-01-01".to_owned();
    let row_ids = regex::Regex::new(r#"<tr id="run-([0-9a-f-]+)""#).unwrap();
    let next_link = regex::Regex::new(r#"<a rel="next" href="([^"]+)""#).unwrap();
    loop {
        let page = browser.get(&path).await;
        let html = page.assert_html(StatusCode::OK).to_owned();
        seen.extend(row_ids.captures_iter(&html).map(|c| c[1].to_owned()));
        let next = next_link.captures(&html).map(|c| unescaped(&c[1]));
        match next {
            Some(next) => path = next,
            None => break,
        }
    }
    let mut expected: Vec<String> = ids.iter().cloned().chain([backup, done]).collect();
    expected.sort();
    let mut seen_sorted = seen.clone();
    seen_sorted.sort();
    assert_eq!(seen_sorted, expected, "each run once over the pages");

    for (query, field) in [
        ("created_from=yesterday", "created_from"),
        ("initiator=-5", "initiator"),
        ("run=xyz", "run"),
        ("attribute=novalue", "attribute"),
        ("state=paused", "state"),
        ("status=paused", "status"),
        ("page_token=not-a-token", "page_token"),
    ] {
        let refused = browser.get(&format!("/ui/tenants/1/runs?{query}")).await;
        let html = refused.assert_html(StatusCode::BAD_REQUEST);
        assert!(html.contains(&format!("{field}: ")), "{query}: {html}");
    }
}

#[tokio::test]
async fn user_supplied_strings_render_as_text() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let tokens = api.tokens(t).await;
    let queued = api
        .post(
            &runs_path(t),
            &tokens.writer,
            &json!({
                "type": "inventory.sync",
                "context": { "note": "<script>alert('context')</script>" },
                "initiator": { "user_id": 5, "name": "<img src=x onerror=alert(1)>" }
            }),
        )
        .await;
    assert_eq!(queued.status, StatusCode::CREATED, "{:#}", queued.body);
    let id = queued.body["run"]["id"].as_str().unwrap().to_owned();
    for (rest, body) in [
        ("/start", json!({})),
        (
            "/progress",
            json!({ "failed": 1, "failures": [{ "code": "bad_host", "message": "<b>boom</b>", "count": 1 }] }),
        ),
    ] {
        let answer = api
            .post(&run_path(t, &id, rest), &tokens.writer, &body)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{:#}", answer.body);
    }
    api.project().await;
    let mut browser = Browser::signed_in(&api, &tokens.auditor).await;
    let list = browser.get("/ui/tenants/1/runs").await;
    let detail = browser.get(&format!("/ui/tenants/1/runs/{id}")).await;
    for (page, shown) in [
        (&list, &["<img src=x onerror=alert(1)>"][..]),
        (
            &detail,
            &[
                "<img src=x onerror=alert(1)>",
                "<script>alert('context')</script>",
                "<b>boom</b>",
            ][..],
        ),
    ] {
        let html = page.assert_html(StatusCode::OK);
        for text in shown {
            assert!(!html.contains(text), "{text} is markup in: {html}");
            assert!(
                unescaped(html).contains(text),
                "{text} is shown as text in: {html}"
            );
        }
    }
}

#[tokio::test]
async fn the_run_page_shows_every_field_and_the_timeline_to_auditors() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let tokens = api.tokens(t).await;
    let id = completed_run(&api, &tokens.writer, "x", 9, 1).await;
    api.project().await;

    let mut auditor = Browser::signed_in(&api, &tokens.auditor).await;
    let page = auditor.get(&format!("/ui/tenants/1/runs/{id}")).await;
    let html = page.assert_html(StatusCode::OK);
    for expected in [
        r#"<article id="run" data-status="completed" data-outcome="partially_succeeded""#,
        "Partially succeeded",
        "<dt>Identity hash</dt>",
        "<dt>Initiator</dt><dd>System",
        "<code>ssh_refused</code>",
        "host refused the connection",
        r#"id="chain-badge" class="badge chain-valid">Chain verified (4 events)"#,
    ] {
        assert!(html.contains(expected), "{expected}: {html}");
    }
    assert_eq!(html.matches(r#"<li class="timeline-event""#).count(), 4);
    for event_type in ["Queued", "Started", "Progressed", "Completed"] {
        assert!(
            html.contains(&format!(r#"<p class="muted">{event_type}, schema version"#)),
            "{event_type}"
        );
    }
    // Each event opens onto its payload and metadata, to the millisecond.
    assert_eq!(html.matches(r#"<pre class="event-payload">"#).count(), 4);
    assert!(html.contains("Completed: Partially succeeded"), "{html}");
    assert!(!html.contains("Completed (completed)"));
    let millis = regex::Regex::new(r"\d{2}:\d{2}:\d{2}\.\d{3} UTC").unwrap();
    assert!(millis.is_match(html), "{html}");
    // Actions for an auditor: copy, download, verify; no Cancel (not a writer; and it is done).
    assert!(html.contains(r#"data-copy-from="run-json""#));
    assert!(html.contains(&format!(r#"href="/ui/tenants/1/runs/{id}/events.ndjson""#)));
    assert!(!html.contains(r#"id="cancel""#));
    // A finished run's page has nothing left to wait for.
    assert!(!html.contains("data-live-url"));

    let mut reader = Browser::signed_in(&api, &tokens.reader).await;
    let page = reader.get(&format!("/ui/tenants/1/runs/{id}")).await;
    let html = page.assert_html(StatusCode::OK);
    assert!(html.contains("Partially succeeded"));
    assert!(!html.contains("timeline-event") && !html.contains("chain-badge"));
    assert!(html.contains("shown to auditors"));
}

#[tokio::test]
async fn another_tenants_pages_answer_exactly_like_missing_ones_and_roles_hold() {
    let api = TestApi::new().await;
    let (a, b) = (tenant(1), tenant(2));
    let tokens_a = api.tokens(a).await;
    let tokens_b = api.tokens(b).await;
    let theirs = api
        .queue(b, &tokens_b.writer, "inventory.sync", json!({}))
        .await;
    api.project().await;
    let mut browser = Browser::signed_in(&api, &tokens_a.auditor).await;

    let missing = browser
        .get("/ui/tenants/1/runs/0190a5a0-0000-7000-8000-000000000000")
        .await;
    let foreign = browser.get(&format!("/ui/tenants/1/runs/{theirs}")).await;
    let across = browser.get(&format!("/ui/tenants/2/runs/{theirs}")).await;
    missing.assert_html(StatusCode::NOT_FOUND);
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert_eq!(across.status, StatusCode::NOT_FOUND);
    assert_eq!(foreign.html, missing.html, "the same page as a missing run");
    assert_eq!(across.html, missing.html);
    let their_list = browser.get("/ui/tenants/2/runs").await;
    assert_eq!(their_list.status, StatusCode::NOT_FOUND);
    assert!(!their_list.html.contains(&theirs));
    let their_live = browser.get("/ui/tenants/2/runs/live?after=0.0").await;
    assert_eq!(their_live.status, StatusCode::NOT_FOUND);

    // Projections are for admins; an admin may look at any tenant.
    browser
        .get("/ui/projections")
        .await
        .assert_html(StatusCode::FORBIDDEN);
    let mut admin = Browser::signed_in(&api, &tokens_a.admin).await;
    let picked = admin.get("/ui/tenants?tenant_id=2").await;
    assert_eq!(picked.location(), "/ui/tenants/2/runs");
    admin
        .get("/ui/tenants?tenant_id=-1")
        .await
        .assert_html(StatusCode::BAD_REQUEST);
    let page = admin.get("/ui/tenants/2/runs").await;
    assert!(page.assert_html(StatusCode::OK).contains(&theirs));
    let projections = admin.get("/ui/projections").await;
    let html = projections.assert_html(StatusCode::OK);
    assert!(
        html.contains(r#"<tr id="projection-operation_runs""#),
        "{html}"
    );
    assert!(
        html.contains(r#"<tr id="projection-notifications""#),
        "{html}"
    );

    // A rebuild from the page is a form of the session.
    admin
        .post_form(
            "/ui/projections/operation_runs/rebuild",
            &[("csrf", "forged")],
        )
        .await
        .assert_html(StatusCode::FORBIDDEN);
    let csrf = projections.csrf();
    let started = admin
        .post_form("/ui/projections/operation_runs/rebuild", &[("csrf", &csrf)])
        .await;
    assert_eq!(started.location(), "/ui/projections");
    let rebuilding = admin.get("/ui/projections").await;
    assert!(
        rebuilding.html.contains(r#"data-state="rebuilding""#),
        "{}",
        rebuilding.html
    );
}

#[tokio::test]
async fn notifications_are_the_users_own_unread_first_and_marked_read_by_form() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let writer = api.token(t, Role::Writer).await;
    let ada = api.user_token(t, Role::Reader, 7).await;
    let bob = api.user_token(t, Role::Reader, 8).await;
    let queued = api
        .post(
            &runs_path(t),
            &writer,
            &json!({ "type": "inventory.sync", "initiator": { "user_id": 7, "name": "Ada" } }),
        )
        .await;
    let id = queued.body["run"]["id"].as_str().unwrap().to_owned();
    for rest in ["/start", "/complete"] {
        let answer = api.post(&run_path(t, &id, rest), &writer, &json!({})).await;
        assert_eq!(answer.status, StatusCode::OK, "{:#}", answer.body);
    }
    api.project().await;

    let mut browser = Browser::signed_in(&api, &ada).await;
    let page = browser.get("/ui/notifications").await;
    let html = page.assert_html(StatusCode::OK).to_owned();
    assert_eq!(html.matches(r#"data-read="false""#).count(), 2, "{html}");
    assert!(
        html.contains(">Succeeded</span>"),
        "the seed's label: {html}"
    );
    // The run's two notices are one group; the navigation counts the unread ones.
    assert_eq!(
        html.matches(r#"<li class="notice-group""#).count(),
        1,
        "{html}"
    );
    assert!(
        html.contains(r#"<span class="count" aria-label="2 unread">2</span>"#),
        "{html}"
    );
    assert!(html.contains(&format!(
        r#"class="notice-link" href="http://test/ui/tenants/1/runs/{id}""#
    )));
    let notice = regex::Regex::new(r#"action="/ui/notifications/([0-9a-f-]+)/read""#)
        .unwrap()
        .captures(&html)
        .map(|c| c[1].to_owned())
        .expect("a mark-read form");

    let mut other = Browser::signed_in(&api, &bob).await;
    let theirs = other.get("/ui/notifications").await;
    assert!(!theirs.html.contains(&id), "only the initiator is notified");
    let csrf = theirs.csrf();
    other
        .post_form(
            &format!("/ui/notifications/{notice}/read"),
            &[("csrf", &csrf)],
        )
        .await
        .assert_html(StatusCode::NOT_FOUND);

    browser
        .post_form(
            &format!("/ui/notifications/{notice}/read"),
            &[("csrf", "forged")],
        )
        .await
        .assert_html(StatusCode::FORBIDDEN);
    let csrf = field_value(&html, "csrf").unwrap();
    let marked = browser
        .post_form(
            &format!("/ui/notifications/{notice}/read"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(marked.location(), "/ui/notifications");
    let after = browser.get("/ui/notifications").await;
    assert_eq!(after.html.matches(r#"data-read="false""#).count(), 1);
    assert_eq!(after.html.matches(r#"data-read="true""#).count(), 1);
    assert!(
        after.html.contains(r#"aria-label="1 unread""#),
        "{}",
        after.html
    );

    // Mark all as read: every notice read, the badge gone.
    let all = browser
        .post_form("/ui/notifications/read-all", &[("csrf", &csrf)])
        .await;
    assert_eq!(all.location(), "/ui/notifications");
    let after = browser.get("/ui/notifications").await;
    assert_eq!(after.html.matches(r#"data-read="true""#).count(), 2);
    assert!(!after.html.contains(r#"class="count""#), "{}", after.html);
    browser
        .post_form("/ui/notifications/read-all", &[("csrf", "forged")])
        .await
        .assert_html(StatusCode::FORBIDDEN);

    let no_user = api.token(t, Role::Reader).await;
    let mut plain = Browser::signed_in(&api, &no_user).await;
    let page = plain.get("/ui/notifications").await;
    assert!(
        page.assert_html(StatusCode::OK)
            .contains("not bound to a user")
    );
}

#[tokio::test]
async fn a_read_model_that_is_behind_never_breaks_a_page() {
    // The projector has never run: the run is in the log only.
    let (api, tokens, id) = TestApi::with_queued_run().await;
    let mut browser = Browser::signed_in(&api, &tokens.auditor).await;

    let list = browser.get("/ui/tenants/1/runs").await;
    let html = list.assert_html(StatusCode::OK);
    assert!(!html.contains(&format!("run-{id}")));

    let page = browser.get(&format!("/ui/tenants/1/runs/{id}")).await;
    let html = page.assert_html(StatusCode::OK);
    assert!(html.contains(r#"data-status="not-projected""#), "{html}");
    assert!(html.contains("has not applied it yet"), "{html}");
    assert_eq!(html.matches(r#"<li class="timeline-event""#).count(), 1);

    api.project().await;
    let page = browser.get(&format!("/ui/tenants/1/runs/{id}")).await;
    assert!(page.html.contains(r#"data-status="queued""#));
}

#[tokio::test]
async fn unknown_pages_and_malformed_forms_are_pages_not_problems() {
    let api = TestApi::new().await;
    let tokens = api.tokens(tenant(1)).await;
    let mut browser = Browser::signed_in(&api, &tokens.reader).await;
    let missing = browser.get("/ui/no-such-page").await;
    let html = missing.assert_html(StatusCode::NOT_FOUND);
    // The navigation stays, and the page says what to do next.
    assert!(html.contains(r#"<nav aria-label="Main">"#), "{html}");
    assert!(html.contains(r#"<ul id="next-steps">"#), "{html}");
    assert!(
        html.contains("Search the runs list by the start of the run id"),
        "{html}"
    );
    browser
        .get("/ui/tenants/zero/runs")
        .await
        .assert_html(StatusCode::BAD_REQUEST);
    let refused = browser
        .post_form("/ui/sign-out", &[("nonsense", "1")])
        .await;
    refused.assert_html(StatusCode::BAD_REQUEST);
    for asset in [
        "/ui/assets/app.css",
        "/ui/assets/live.js",
        "/ui/assets/page.js",
    ] {
        let answer = browser.get(asset).await;
        assert_eq!(answer.status, StatusCode::OK, "{asset}");
    }
}

#[tokio::test]
async fn a_writer_cancels_from_the_run_page_and_other_roles_cannot() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let tokens = api.tokens(t).await;
    let queued = api
        .queue(t, &tokens.writer, "inventory.sync", json!({ "n": 1 }))
        .await;
    let running = api.running_run(t, &tokens.writer, json!({ "n": 2 })).await;
    api.project().await;

    // A reader sees no Cancel, and cannot post one.
    let mut reader = Browser::signed_in(&api, &tokens.reader).await;
    let page = reader.get(&format!("/ui/tenants/1/runs/{queued}")).await;
    assert!(!page.assert_html(StatusCode::OK).contains(r#"id="cancel""#));
    let csrf = page.csrf();
    reader
        .post_form(
            &format!("/ui/tenants/1/runs/{queued}/cancel"),
            &[("csrf", &csrf), ("reason", "")],
        )
        .await
        .assert_html(StatusCode::FORBIDDEN);

    // A writer's Cancel: a queued run completes cancelled at once, with the reason shown.
    let mut writer = Browser::signed_in(&api, &tokens.writer).await;
    let page = writer.get(&format!("/ui/tenants/1/runs/{queued}")).await;
    let html = page.assert_html(StatusCode::OK);
    assert!(
        html.contains(&format!(r#"action="/ui/tenants/1/runs/{queued}/cancel""#)),
        "{html}"
    );
    writer
        .post_form(
            &format!("/ui/tenants/1/runs/{queued}/cancel"),
            &[("csrf", "forged"), ("reason", "no")],
        )
        .await
        .assert_html(StatusCode::FORBIDDEN);
    let csrf = page.csrf();
    let done = writer
        .post_form(
            &format!("/ui/tenants/1/runs/{queued}/cancel"),
            &[("csrf", &csrf), ("reason", "<b>wrong site</b>")],
        )
        .await;
    assert_eq!(done.location(), format!("/ui/tenants/1/runs/{queued}"));
    api.project().await;
    let page = writer.get(&format!("/ui/tenants/1/runs/{queued}")).await;
    let html = page.assert_html(StatusCode::OK);
    assert!(
        html.contains(r#"data-status="completed" data-outcome="cancelled""#),
        "{html}"
    );
    assert!(html.contains(r#"<section id="reason" class="reason reason-cancelled""#));
    assert!(
        !html.contains("<b>wrong site</b>"),
        "the reason is text: {html}"
    );
    assert!(
        unescaped(html).contains("Reason: <b>wrong site</b>"),
        "{html}"
    );
    assert!(
        !html.contains(r#"id="cancel""#),
        "a done run offers no Cancel"
    );

    // A running run gets a cancel request: the page says so until its worker stops it.
    let csrf = page.csrf();
    writer
        .post_form(
            &format!("/ui/tenants/1/runs/{running}/cancel"),
            &[("csrf", &csrf), ("reason", "")],
        )
        .await
        .location();
    api.project().await;
    let page = writer.get(&format!("/ui/tenants/1/runs/{running}")).await;
    let html = page.assert_html(StatusCode::OK);
    assert!(html.contains(r#"data-status="running""#), "{html}");
    assert!(
        html.contains("Cancel requested: waiting for the worker to stop"),
        "{html}"
    );
    assert!(html.contains(r#"<dd id="cancel-request">"#), "{html}");
    assert!(!html.contains(r#"id="cancel""#), "asked once is enough");
    let list = writer.get("/ui/tenants/1/runs").await;
    assert!(
        list.html
            .contains(r#"title="A cancel was requested">cancelling"#)
    );
}

#[tokio::test]
async fn the_runs_page_searches_and_its_run_pages_lead_back_to_the_search() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let tokens = api.tokens(t).await;
    let restore = api
        .post(
            &runs_path(t),
            &tokens.writer,
            &json!({
                "type": "restore.execute",
                "identity": { "restore_run_id": 42 },
                "context": { "restore_run_id": 42, "note": "<script>alert('n')</script>" },
                "initiator": { "user_id": 5, "name": "Ada <Admin>" }
            }),
        )
        .await;
    assert_eq!(restore.status, StatusCode::CREATED, "{:#}", restore.body);
    let restore = restore.body["run"]["id"].as_str().unwrap().to_owned();
    let again = api
        .post(
            &runs_path(t),
            &tokens.writer,
            &json!({ "type": "restore.execute", "identity": { "restore_run_id": 7 } }),
        )
        .await;
    let other = again.body["run"]["id"].as_str().unwrap().to_owned();
    api.project().await;
    let mut browser = Browser::signed_in(&api, &tokens.auditor).await;

    let found = browser
        .get("/ui/tenants/1/runs?attribute=restore_run_id%3D42")
        .await;
    let html = found.assert_html(StatusCode::OK);
    assert!(html.contains(&restore) && !html.contains(&other), "{html}");
    assert!(html.contains("1 run matches"));
    let by_name = browser
        .get("/ui/tenants/1/runs?initiator=ada+%3Cadmin%3E")
        .await;
    assert!(by_name.html.contains(&restore) && !by_name.html.contains(&other));
    let by_id = browser
        .get(&format!("/ui/tenants/1/runs?run={}", &restore[..23]))
        .await;
    assert!(by_id.html.contains(&restore) && !by_id.html.contains(&other));

    // The row's link carries the search; the run page's way back is that search.
    let link = regex::Regex::new(&format!(
        r#"href="(/ui/tenants/1/runs/{restore}\?list=[^"]+)""#
    ))
    .unwrap()
    .captures(html)
    .map(|c| unescaped(&c[1]))
    .unwrap_or_else(|| panic!("a link carrying the list: {html}"));
    let page = browser.get(&link).await;
    let detail = page.assert_html(StatusCode::OK);
    assert!(
        detail.contains(
            r#"<a id="back-to-list" href="/ui/tenants/1/runs?attribute=restore_run_id%3D42">"#
        ),
        "{detail}"
    );
    // Context as key/value rows, each plain value a search of its own; raw JSON one click away.
    assert!(detail.contains(r#"<table id="context-table""#));
    assert!(
        detail.contains(
            r#"href="/ui/tenants/1/runs?attribute=restore_run_id%3D42">runs with this</a>"#
        ),
        "{detail}"
    );
    assert!(detail.contains(r#"<details class="raw"><summary>Raw JSON</summary>"#));
    // A list value that is not a filter of the page leads back to the plain list.
    let odd = browser
        .get(&format!("/ui/tenants/1/runs/{restore}?list=nonsense%3D1"))
        .await;
    assert!(
        odd.html
            .contains(r#"<a id="back-to-list" href="/ui/tenants/1/runs">"#)
    );

    // Every string a user typed or a product sent is text, in the form and in the page.
    let typed = "<img src=x onerror=alert(1)>";
    let echoed = browser
        .get(&format!(
            "/ui/tenants/1/runs?initiator={0}&attribute=k%3D{0}",
            form_urlencoded::byte_serialize(typed.as_bytes()).collect::<String>()
        ))
        .await;
    let html = echoed.assert_html(StatusCode::OK);
    assert!(!html.contains(typed), "{html}");
    assert!(unescaped(html).contains(typed), "{html}");
    for shown in ["<script>alert('n')</script>", "Ada <Admin>"] {
        assert!(!detail.contains(shown), "{shown} is markup in: {detail}");
        assert!(
            unescaped(detail).contains(shown),
            "{shown} is text in: {detail}"
        );
    }
    assert!(
        detail.contains("No other run of this identity."),
        "{detail}"
    );

    // The same identity queued again once the first is done: each page links to the other.
    let cancelled = api
        .post(
            &run_path(t, &restore, "/cancel"),
            &tokens.writer,
            &json!({}),
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:#}", cancelled.body);
    let requeued = api
        .post(
            &runs_path(t),
            &tokens.writer,
            &json!({ "type": "restore.execute", "identity": { "restore_run_id": 42 } }),
        )
        .await;
    assert_eq!(requeued.status, StatusCode::CREATED, "{:#}", requeued.body);
    let newer = requeued.body["run"]["id"].as_str().unwrap().to_owned();
    api.project().await;
    let page = browser.get(&format!("/ui/tenants/1/runs/{newer}")).await;
    let html = page.assert_html(StatusCode::OK);
    assert!(
        html.contains(&format!(
            r#"<a href="/ui/tenants/1/runs/{restore}"><code>{}…{}</code></a>"#,
            &restore[..8],
            &restore[31..]
        )),
        "{html}"
    );
}

#[tokio::test]
async fn the_run_page_shows_limits_heartbeat_age_and_why_a_run_timed_out() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let tokens = api.tokens(t).await;
    let queued = api
        .post(
            &runs_path(t),
            &tokens.writer,
            &json!({
                "type": "inventory.sync",
                "identity": { "site": "limits" },
                "run_deadline_seconds": 600,
                "heartbeat_timeout_seconds": 30,
            }),
        )
        .await;
    assert_eq!(queued.status, StatusCode::CREATED, "{:#}", queued.body);
    let id = queued.body["run"]["id"].as_str().unwrap().to_owned();
    for rest in ["/start", "/heartbeat"] {
        let answer = api
            .post(&run_path(t, &id, rest), &tokens.writer, &json!({}))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{rest}: {:#}", answer.body);
    }
    api.project().await;
    let mut browser = Browser::signed_in(&api, &tokens.reader).await;
    let page = browser.get(&format!("/ui/tenants/1/runs/{id}")).await;
    let html = page.assert_html(StatusCode::OK);
    for expected in [
        r#"<dt>Run deadline</dt><dd class="deadline">10 m 00 s · <time"#,
        r#"<dt>Heartbeat timeout</dt><dd class="deadline">30.0 s · <time"#,
        r#"<dd id="heartbeat"><time datetime="#,
    ] {
        assert!(html.contains(expected), "{expected}: {html}");
    }

    // The sweeper's command an hour later: the heartbeat timeout passed first.
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    api.state()
        .commands
        .execute(&crate::helpers::verbs::request(
            t,
            id.parse::<uuid::Uuid>().unwrap().into(),
            runledger_core::RunCommand::TimeOut(runledger_core::TimeOut {
                at: later,
                last_heartbeat_at: None,
            }),
        ))
        .await
        .unwrap();
    api.project().await;
    let page = browser.get(&format!("/ui/tenants/1/runs/{id}")).await;
    let html = page.assert_html(StatusCode::OK);
    assert!(
        html.contains(r#"<section id="reason" class="reason reason-timed-out""#),
        "{html}"
    );
    assert!(html.contains("Timed out: heartbeat timeout"), "{html}");
    assert!(
        html.contains("Failure code run.heartbeat_timeout."),
        "{html}"
    );
    let list = browser.get("/ui/tenants/1/runs").await;
    assert!(
        list.html.contains(r#">run.heartbeat_timeout</code>"#),
        "the code in the row: {}",
        list.html
    );
}

#[tokio::test]
async fn an_auditor_downloads_a_runs_events_as_ndjson_and_a_reader_cannot() {
    let api = TestApi::new().await;
    let t = tenant(1);
    let tokens = api.tokens(t).await;
    let id = completed_run(&api, &tokens.writer, "ndjson", 2, 0).await;
    api.project().await;
    let path = format!("/ui/tenants/1/runs/{id}/events.ndjson");

    let mut auditor = Browser::signed_in(&api, &tokens.auditor).await;
    let download = auditor.get(&path).await;
    assert_eq!(download.status, StatusCode::OK, "{}", download.html);
    let header = |name: &str| {
        download
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(header("content-type"), "application/x-ndjson");
    assert_eq!(
        header("content-disposition"),
        format!("attachment; filename=\"run-{id}.ndjson\"")
    );
    let lines: Vec<serde_json::Value> = download
        .html
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let types: Vec<&str> = lines
        .iter()
        .map(|line| line["event_type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        types,
        ["Queued", "Started", "Progressed", "Completed"],
        "{lines:#?}"
    );

    let mut reader = Browser::signed_in(&api, &tokens.reader).await;
    reader.get(&path).await.assert_html(StatusCode::FORBIDDEN);
    auditor
        .get(&format!(
            "/ui/tenants/1/runs/{}/events.ndjson",
            uuid::Uuid::nil()
        ))
        .await
        .assert_html(StatusCode::NOT_FOUND);
}
