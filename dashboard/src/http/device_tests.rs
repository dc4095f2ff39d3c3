//! Device identity in the routes: (site, gateway, device), and the old
//! two-segment URLs.
#![allow(clippy::unwrap_used)]

use super::*;

fn shared(dir: &std::path::Path) -> Arc<Shared> {
    let text = format!("data_dir = {:?}\n", dir.display().to_string());
    let settings = crate::config::check(toml::from_str(&text).unwrap(), dir).unwrap();
    let shared = Shared::new(settings);
    {
        let mut m = shared.model.lock().unwrap();
        for (gw, dev, name) in [
            ("gw-1", "pump-1", "一号楼 1号泵"),
            ("gw-2", "pump-1", "二号楼 1号泵"),
            ("gw-2", "pump_2", "二号楼 2号泵"),
        ] {
            let now = now_ms();
            let state = json!({"seq": 1, "ts": now, "device": dev, "class": "pump", "name_zh": name,
                "name_en": name, "location": "", "state": "up", "since": now, "reason": null});
            let applied = m.apply(
                &format!("bms/s1/{gw}/{dev}/state"),
                state.to_string().as_bytes(),
                true,
                now,
            );
            assert_eq!(applied, crate::model::Applied::Changed, "{gw}/{dev}");
        }
    }
    Arc::new(shared)
}

async fn body(r: Response) -> Json {
    let b = axum::body::to_bytes(r.into_body(), usize::MAX)
        .await
        .unwrap();
    serde_json::from_slice(&b).unwrap()
}

fn path3(site: &str, gw: &str, id: &str) -> Path<(String, String, String)> {
    Path((site.to_owned(), gw.to_owned(), id.to_owned()))
}

fn path2(site: &str, id: &str) -> Path<(String, String)> {
    Path((site.to_owned(), id.to_owned()))
}

#[tokio::test]
async fn each_gateway_of_a_site_has_its_own_device_with_the_same_id() {
    let dir = tempfile::tempdir().unwrap();
    let s = shared(dir.path());
    // The router with both kinds of device routes builds (no conflict).
    let _ = router(s.clone());
    for (gw, name) in [("gw-1", "一号楼 1号泵"), ("gw-2", "二号楼 1号泵")] {
        let r = device_api(State(s.clone()), path3("s1", gw, "pump-1")).await;
        assert_eq!(r.status(), StatusCode::OK);
        let d = body(r).await;
        assert_eq!(
            (d["gateway"].as_str(), d["name_zh"].as_str()),
            (Some(gw), Some(name))
        );
    }
    let r = device_api(State(s.clone()), path3("s1", "gw-1", "pump_2")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = device_page(State(s.clone()), path3("s1", "gw-3", "pump-1")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_old_url_redirects_when_one_gateway_has_the_id_and_is_refused_when_several_do() {
    let dir = tempfile::tempdir().unwrap();
    let s = shared(dir.path());
    let uri = |u: &str| u.parse::<axum::http::Uri>().unwrap();
    // One gateway: 308 to the new URL, the query kept.
    let r = legacy_device_api(
        State(s.clone()),
        uri("/api/sites/s1/devices/pump_2/history?range=7d"),
        path2("s1", "pump_2"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        r.headers()[header::LOCATION],
        "/api/sites/s1/gateways/gw-2/devices/pump_2/history?range=7d"
    );
    let r = legacy_device_page(
        State(s.clone()),
        uri("/devices/s1/pump_2"),
        path2("s1", "pump_2"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.headers()[header::LOCATION], "/devices/s1/gw-2/pump_2");
    // Several: 409 naming them.
    let r = legacy_device_api(
        State(s.clone()),
        uri("/api/sites/s1/devices/pump-1"),
        path2("s1", "pump-1"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let j = body(r).await;
    assert_eq!(j["gateways"], json!(["gw-1", "gw-2"]), "{j}");
    assert_eq!(
        j["urls"][1], "/api/sites/s1/gateways/gw-2/devices/pump-1",
        "{j}"
    );
    assert!(j["error"].as_str().unwrap().contains("several gateways"));
    let r = legacy_device_page(
        State(s.clone()),
        uri("/devices/s1/pump-1"),
        path2("s1", "pump-1"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    // None: 404 as before.
    let r = legacy_device_api(
        State(s.clone()),
        uri("/api/sites/s1/devices/nothing"),
        path2("s1", "nothing"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[test]
fn segments_are_percent_encoded() {
    assert_eq!(segment("a-b_c.d~1"), "a-b_c.d~1");
    assert_eq!(segment("泵 1/?#%"), "%E6%B3%B5%201%2F%3F%23%25");
}
