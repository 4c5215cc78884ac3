//! The error log in headless Chromium at 1280 px: codes, times, stages and
//! levels stay whole on one line however long the messages beside them are;
//! only the message and excerpt cells wrap.

mod common;

use common::browser::{log_in, wait_for, Browser};
use common::*;
use fantoccini::Client;
use serde_json::Value;

/// The texts of the cells in `columns` (1-based) of `table` whose text is
/// laid out on more than one line (the distinct tops of its text's boxes).
async fn wrapped(b: &Client, table: &str, columns: &[usize]) -> Vec<String> {
    // Text nodes only: an element's box (a badge's padding) sits higher
    // than the text on its line, which is no wrap.
    let script = format!(
        "const cols = {columns:?}; const out = [];\
         document.querySelectorAll('{table} tbody tr').forEach(tr => cols.forEach(c => {{\
           const td = tr.children[c - 1]; if (!td) return;\
           const walk = document.createTreeWalker(td, NodeFilter.SHOW_TEXT); const tops = new Set();\
           for (let n = walk.nextNode(); n; n = walk.nextNode()) {{\
             if (!n.textContent.trim()) continue;\
             const range = document.createRange(); range.selectNodeContents(n);\
             Array.from(range.getClientRects()).forEach(r => tops.add(Math.round(r.top)));\
           }}\
           if (tops.size > 1) out.push(td.textContent.trim());\
         }})); return out;"
    );
    match b.execute(&script, vec![]).await.expect("script") {
        Value::Array(items) => items
            .into_iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect(),
        other => panic!("not a list: {other}"),
    }
}

backend_tests! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn error_log_columns_keep_their_words_whole_at_1280px() {
        let app = spawn_app().await;
        let Some(browser) = Browser::start().await else {
            return;
        };
        let b = browser.client.clone();
        // Long messages and excerpts next to long codes, from several senders.
        for name in ["Looker export", "Spreadsheet", "Shop"] {
            let source = app.source_named(name).await;
            let long_row = format!("{}\n", "x".repeat(400));
            for body in [
                format!(
                    "email,name\na@b.org,Ann\nc@d.org,Lee,{}",
                    "extra,".repeat(80)
                ),
                format!("a@b.org,{long_row}"),
                "email,name\n".to_string(),
            ] {
                app.send_raw(&source.hook, "text/csv", body).await;
            }
            app.send_raw(
                &source.hook,
                "application/json",
                format!("{{\"a\": {}", "1".repeat(300)),
            )
            .await;
        }
        log_in(&b, &app).await;
        // Time, level, stage and code in the list; code, stage, level, count and
        // both times in the groups.
        let pages: [(&str, &str, &[usize]); 2] = [
            ("/errors?view=list", "#errors", &[1, 2, 3, 4]),
            ("/errors", "#error-groups", &[2, 3, 4, 5, 6, 7]),
        ];
        for (path, table, columns) in pages {
            b.goto(&app.url(path)).await.unwrap();
            wait_for(&b, table).await;
            let broken = wrapped(&b, table, columns).await;
            assert!(broken.is_empty(), "{path}: cells wrap: {broken:?}");
            if let Ok(png) = b.screenshot().await {
                let name = if table == "#errors" { "list" } else { "groups" };
                let _ = std::fs::write(
                    std::env::temp_dir().join(format!("intake-errors-{name}.png")),
                    png,
                );
            }
        }
        browser.close().await;
    }
}
