//! Undoing a wrong merge, told as support staff's story: two people were
//! joined by one event, support splits them apart, and later events keep
//! them apart. Through the real server over HTTP.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn str_of(v: &Value) -> String {
    v.as_str().expect("a string").to_string()
}

/// The `merge` line of a profile's history made by `event`.
async fn merge_line(app: &TestApp, profile: &str, event: &Value) -> String {
    let history = app.profile_history(profile).await;
    let line = history
        .iter()
        .find(|h| h["kind"] == "merge" && h["event_id"] == event["id"])
        .unwrap_or_else(|| panic!("no merge line for {} in {history:?}", event["id"]));
    str_of(&line["id"])
}

async fn split(app: &TestApp, profile: &str, merge: &str, reason: &str) -> reqwest::Response {
    app.api_send(
        Method::POST,
        &format!("/api/profiles/{profile}/split"),
        json!({"merge_id": merge, "reason": reason}),
    )
    .await
}

async fn split_ok(app: &TestApp, profile: &str, merge: &str) -> Value {
    let response = split(app, profile, merge, "shared laptop").await;
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, StatusCode::OK, "split: {body}");
    body
}

/// Ann (email, plan gold) and Bob (visitor id, plan free), then one event
/// from a shared laptop with Ann's email and Bob's visitor id merges them.
async fn ann_and_bob(app: &TestApp, source: &TestSource) -> (Value, Value, Value) {
    let ann = app
        .send_processed(
            &source.hook,
            &json!({"type": "signup", "email": "ann@example.org", "plan": "gold", "ts": "2026-01-01T10:00:00Z"}),
        )
        .await;
    let bob = app
        .send_processed(
            &source.hook,
            &json!({"type": "page", "anon": "v-bob", "plan": "free", "ts": "2026-01-02T10:00:00Z"}),
        )
        .await;
    let joining = app
        .send_processed(
            &source.hook,
            &json!({"type": "login", "email": "ann@example.org", "anon": "v-bob", "ts": "2026-01-03T10:00:00Z"}),
        )
        .await;
    assert_eq!(joining["resolution"], "merge");
    (ann, bob, joining)
}

backend_tests! {
    #[tokio::test]
    async fn a_split_gives_bob_back_his_profile_events_and_traits_and_later_events_keep_them_apart() {
        let app = spawn_app().await;
        let source = people_source(&app).await;
        let (ann, bob, joining) = ann_and_bob(&app, &source).await;
        let ann_id = str_of(&ann["profile_id"]);
        let bob_id = str_of(&bob["profile_id"]);
        let merged = app.profile(&ann_id).await;
        assert_eq!(merged["merged_from"], json!([bob_id]));
        let merge = merge_line(&app, &ann_id, &joining).await;

        let report = split_ok(&app, &ann_id, &merge).await;

        let mut ids: Vec<String> = report["profiles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| str_of(&p["id"]))
            .collect();
        ids.sort();
        let mut want = vec![ann_id.clone(), bob_id.clone()];
        want.sort();
        assert_eq!(ids, want, "Bob comes back under his own id: {report}");
        let rule = &report["never_merge"][0];
        assert_eq!(
            rule["a"],
            json!({"kind": "email", "value": "ann@example.org"})
        );
        assert_eq!(rule["b"], json!({"kind": "visitor_id", "value": "v-bob"}));
        assert_eq!(rule["by"], "api");
        assert_eq!(rule["reason"], "shared laptop");
        assert_eq!(rule["split_of"], json!(merge));

        // Identifiers, events and traits on both sides.
        let ann_p = app.profile(&ann_id).await;
        let bob_p = app.profile(&bob_id).await;
        assert_eq!(ann_p["id"], json!(ann_id));
        assert_eq!(bob_p["id"], json!(bob_id));
        assert_eq!(ann_p["emails"], json!(["ann@example.org"]));
        assert_eq!(ann_p["visitor_ids"], json!([]));
        assert_eq!(ann_p["merged_from"], json!([]));
        assert_eq!(bob_p["visitor_ids"], json!(["v-bob"]));
        assert_eq!(bob_p["emails"], json!([]));
        assert_eq!(ann_p["traits"]["plan"], "gold");
        assert_eq!(bob_p["traits"]["plan"], "free");
        assert_eq!(ann_p["event_count"], 2, "the merging event stays with Ann");
        assert_eq!(bob_p["event_count"], 1);
        let bobs: Vec<Value> = app.profile_events(&bob_id).await;
        assert_eq!(bobs.len(), 1);
        assert_eq!(bobs[0]["id"], bob["id"]);
        assert_eq!(app.profile_events(&ann_id).await.len(), 2);
        // The merging event is re-attributed, refused on Bob's visitor id.
        let event = app.event(&str_of(&joining["id"])).await;
        assert_eq!(event["profile_id"], json!(ann_id));
        assert_eq!(event["resolution"], "attach");
        assert!(
            event["warnings"]
                .to_string()
                .contains("visitor_id `v-bob` dropped: never_merge"),
            "{event}"
        );
        // ...and the error log says so, under the event's source.
        let logged = app.errors_at(&source, "identity").await;
        assert!(
            logged
                .iter()
                .any(|e| e["code"] == "never_merge" && e["event_id"] == joining["id"]),
            "{logged:?}"
        );

        // History: what happened stays, plus a split line on each.
        let ann_history = app.profile_history(&ann_id).await;
        assert!(ann_history.iter().any(|h| h["id"] == json!(merge)));
        let split_line = ann_history
            .iter()
            .find(|h| h["kind"] == "split")
            .expect("a split line on Ann");
        assert_eq!(split_line["detail"]["by"], "api");
        assert_eq!(split_line["detail"]["reason"], "shared laptop");
        assert_eq!(split_line["detail"]["merge_id"], json!(merge));
        let bob_history = app.profile_history(&bob_id).await;
        assert!(bob_history.iter().any(|h| h["kind"] == "split"));
        assert!(bob_history.iter().any(|h| h["kind"] == "create"));

        // A new event with both identifiers: refused, they stay apart.
        let again = app
            .send_processed(
                &source.hook,
                &json!({"type": "login", "email": "ann@example.org", "anon": "v-bob", "ts": "2026-01-04T10:00:00Z"}),
            )
            .await;
        assert_ne!(again["resolution"], "merge");
        assert!(
            again["warnings"].to_string().contains("never_merge"),
            "{again}"
        );
        assert_ne!(
            app.profile_by("visitor_id", "v-bob").await["id"],
            app.profile_by_email("ann@example.org").await["id"]
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_merge_that_a_later_merge_built_on_is_split_by_the_rules() {
        let app = spawn_app().await;
        let source = people_source(&app).await;
        let (ann, bob, joining) = ann_and_bob(&app, &source).await;
        let ann_id = str_of(&ann["profile_id"]);
        // Carl (an external id) is joined later through Bob's visitor id:
        // Carl's external id makes his profile the survivor.
        let carl = app
            .send_processed(
                &source.hook,
                &json!({"type": "signup", "user": "c-1", "ts": "2026-01-05T10:00:00Z"}),
            )
            .await;
        let via_bob = app
            .send_processed(
                &source.hook,
                &json!({"type": "page", "user": "c-1", "anon": "v-bob", "ts": "2026-01-06T10:00:00Z"}),
            )
            .await;
        assert_eq!(via_bob["resolution"], "merge");
        let carl_id = str_of(&carl["profile_id"]);
        let all = app.profile(&carl_id).await;
        assert_eq!(all["event_count"], 5);
        let merge = merge_line(&app, &ann_id, &joining).await;

        let report = split_ok(&app, &carl_id, &merge).await;

        // Replayed in order: the first merge is refused (Ann keeps her event),
        // so Bob's visitor id stays Bob's, and the later event joins Bob and
        // Carl by the same rules (Carl's external id survives).
        assert_eq!(report["profiles"].as_array().unwrap().len(), 2, "{report}");
        let ann_p = app.profile(&ann_id).await;
        assert_eq!(ann_p["emails"], json!(["ann@example.org"]));
        assert_eq!(ann_p["visitor_ids"], json!([]));
        assert_eq!(ann_p["external_ids"], json!([]));
        assert_eq!(ann_p["event_count"], 2);
        let carl_p = app.profile_by("visitor_id", "v-bob").await;
        assert_eq!(carl_p["id"], json!(carl_id));
        assert_eq!(carl_p["external_ids"], json!(["c-1"]));
        assert_eq!(carl_p["merged_from"], json!([bob["profile_id"]]));
        assert_eq!(carl_p["event_count"], 3);
        assert_eq!(carl_p["traits"]["plan"], "free");
        // Bob's old id opens the profile it went to.
        assert_eq!(
            app.profile(&str_of(&bob["profile_id"])).await["id"],
            json!(carl_id)
        );
    }
}

backend_tests! {
    #[tokio::test]
    async fn never_merge_rules_list_and_remove_and_a_second_split_is_refused() {
        let app = spawn_app().await;
        let source = people_source(&app).await;
        let (ann, _bob, joining) = ann_and_bob(&app, &source).await;
        let ann_id = str_of(&ann["profile_id"]);
        let merge = merge_line(&app, &ann_id, &joining).await;
        let report = split_ok(&app, &ann_id, &merge).await;
        let rule_id = str_of(&report["never_merge"][0]["id"]);

        let second = split(&app, &ann_id, &merge, "again").await;
        assert_eq!(second.status(), StatusCode::CONFLICT);
        let body: Value = second.json().await.unwrap();
        assert_eq!(body["code"], "merge_already_split", "{body}");

        let listed = app.api_json("/api/identity/never-merge").await;
        assert_eq!(listed["rules"].as_array().unwrap().len(), 1);
        assert_eq!(listed["rules"][0]["id"], json!(rule_id));

        let removed = app
            .api_send(
                Method::DELETE,
                &format!("/api/identity/never-merge/{rule_id}"),
                json!({}),
            )
            .await;
        assert_eq!(removed.status(), StatusCode::OK);
        let listed = app.api_json("/api/identity/never-merge").await;
        assert_eq!(listed["rules"], json!([]));
        let gone = app
            .api_send(
                Method::DELETE,
                &format!("/api/identity/never-merge/{rule_id}"),
                json!({}),
            )
            .await;
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);
        // Removing merges nothing back; a later event may merge them again.
        assert_eq!(app.profile(&ann_id).await["visitor_ids"], json!([]));
        let later = app
            .send_processed(
                &source.hook,
                &json!({"type": "login", "email": "ann@example.org", "anon": "v-bob", "ts": "2026-01-09T10:00:00Z"}),
            )
            .await;
        assert_eq!(later["resolution"], "merge");
    }
}

backend_tests! {
    #[tokio::test]
    async fn a_split_answers_404_for_unknown_ids_and_400_for_bad_ones() {
        let app = spawn_app().await;
        let source = people_source(&app).await;
        let (ann, _bob, joining) = ann_and_bob(&app, &source).await;
        let ann_id = str_of(&ann["profile_id"]);
        let merge = merge_line(&app, &ann_id, &joining).await;
        let unknown = "0190a0a0-0000-7000-8000-000000000000";

        let cases = [
            (unknown.to_string(), merge.clone(), StatusCode::NOT_FOUND),
            (ann_id.clone(), unknown.to_string(), StatusCode::NOT_FOUND),
            (
                "not-an-id".to_string(),
                merge.clone(),
                StatusCode::BAD_REQUEST,
            ),
            (ann_id.clone(), "nope".to_string(), StatusCode::BAD_REQUEST),
        ];
        for (profile, merge_id, want) in cases {
            let response = split(&app, &profile, &merge_id, "").await;
            assert_eq!(response.status(), want, "{profile} {merge_id}");
            let body: Value = response.json().await.unwrap();
            assert!(body["code"].is_string() && body["error"].is_string());
        }
        // A line that is not a merge.
        let create = app
            .profile_history(&ann_id)
            .await
            .into_iter()
            .find(|h| h["kind"] == "create")
            .unwrap();
        let response = split(&app, &ann_id, &str_of(&create["id"]), "").await;
        assert_eq!(response.status(), StatusCode::CONFLICT);
        // Nothing was changed by the refusals.
        assert_eq!(app.profile(&ann_id).await["visitor_ids"], json!(["v-bob"]));
    }
}

backend_tests! {
    #[tokio::test]
    async fn the_dashboard_splits_from_the_history_and_lists_the_rule() {
        let app = spawn_app().await;
        app.login().await;
        let source = people_source(&app).await;
        let (ann, bob, joining) = ann_and_bob(&app, &source).await;
        let ann_id = str_of(&ann["profile_id"]);
        let merge = merge_line(&app, &ann_id, &joining).await;

        let (status, html) = app.page(&format!("/profiles/{ann_id}")).await;
        assert_eq!(status, StatusCode::OK);
        // (handlebars escapes `=` in the page.)
        let shown = format!("/profiles/{ann_id}/split?merge&#x3D;{merge}");
        assert!(html.contains(&shown), "a Split link beside the merge");
        let link = format!("/profiles/{ann_id}/split?merge={merge}");

        let (status, confirm) = app.page(&link).await;
        assert_eq!(status, StatusCode::OK, "{confirm}");
        assert!(confirm.contains("id=\"split-form\""));
        assert!(confirm.contains("visitor id v-bob"));
        let csrf = csrf_in(&confirm).expect("a csrf token");

        let done = app
            .post_form(
                &format!("/profiles/{ann_id}/split"),
                &[
                    ("csrf", &csrf),
                    ("merge", &merge),
                    ("reason", "shared laptop"),
                ],
            )
            .await;
        assert_eq!(done.status(), StatusCode::OK);
        let html = done.text().await.unwrap();
        assert!(html.contains(&str_of(&bob["profile_id"])), "{html}");
        assert_eq!(app.profile(&ann_id).await["visitor_ids"], json!([]));
        let (status, after) = app.page(&format!("/profiles/{ann_id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            after.contains("Split a merge apart (by dashboard)"),
            "{after}"
        );

        let (status, rules) = app.page("/identity/never-merge").await;
        assert_eq!(status, StatusCode::OK);
        assert!(rules.contains("email ann@example.org / visitor id v-bob"));
        assert!(rules.contains("shared laptop"));
        let rule_id = str_of(&app.api_json("/api/identity/never-merge").await["rules"][0]["id"]);
        let csrf = csrf_in(&rules).unwrap();
        let removed = app
            .post_form(
                &format!("/identity/never-merge/{rule_id}/remove"),
                &[("csrf", &csrf)],
            )
            .await;
        assert!(removed.status().is_redirection() || removed.status().is_success());
        assert_eq!(
            app.api_json("/api/identity/never-merge").await["rules"],
            json!([])
        );
        // Without the session's token the split is refused.
        let forged = app
            .post_form(
                &format!("/profiles/{ann_id}/split"),
                &[("csrf", "forged"), ("merge", &merge)],
            )
            .await;
        assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    }
}
