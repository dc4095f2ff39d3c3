//! The snapshot as the event streams and `/api/snapshot` send it, built
//! once per model version and second for every client.
//!
//! The whole snapshot is built once (the only step that locks the model);
//! a `?site=` view is cut from it. Views are keyed by the *resolved*
//! filter: a site the snapshot holds, the whole snapshot, or "a site that
//! is not there" — every unknown `?site=` value shares that one empty view,
//! so distinct query strings cannot make the server build a snapshot each.
//! At most [`MAX_VIEWS`] views are kept (the oldest is dropped), and only
//! those of the current version and second. Clients that ask at the same
//! moment wait for the one build in progress instead of each building.

use std::sync::{Arc, Mutex};

use serde_json::Value as Json;
use tokio::sync::OnceCell;

/// Views kept at most for one version and second.
pub const MAX_VIEWS: usize = 64;

/// What a `?site=` filter resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum View {
    /// No filter: every site.
    All,
    /// A site the snapshot holds.
    Site(String),
    /// A site the snapshot does not hold: no site, no events.
    Unknown,
}

type Cell<T> = Arc<OnceCell<Arc<T>>>;

#[derive(Debug, Default)]
struct Generation {
    version: u64,
    second: i64,
    whole: Cell<Json>,
    views: Vec<(View, Cell<String>)>,
}

/// The cache (one per server).
#[derive(Debug, Default)]
pub struct SnapCache {
    current: Mutex<Generation>,
}

impl SnapCache {
    /// The generation of `version` at `second`, started anew if needed.
    fn whole_cell(&self, version: u64, second: i64) -> Cell<Json> {
        let Ok(mut g) = self.current.lock() else {
            return Cell::default();
        };
        if g.version != version || g.second != second {
            *g = Generation {
                version,
                second,
                ..Generation::default()
            };
        }
        g.whole.clone()
    }

    fn view_cell(&self, version: u64, second: i64, view: &View) -> Cell<String> {
        let Ok(mut g) = self.current.lock() else {
            return Cell::default();
        };
        if g.version != version || g.second != second {
            // A newer generation started meanwhile: build outside it.
            return Cell::default();
        }
        if let Some((_, c)) = g.views.iter().find(|(v, _)| v == view) {
            return c.clone();
        }
        if g.views.len() >= MAX_VIEWS {
            g.views.remove(0);
        }
        let c = Cell::default();
        g.views.push((view.clone(), c.clone()));
        c
    }

    /// The serialized view of `site` (None: all) for `version` at `second`;
    /// `build` makes the whole snapshot when no client has yet.
    pub async fn get(
        &self,
        version: u64,
        second: i64,
        site: Option<&str>,
        build: impl FnOnce() -> Json,
    ) -> Arc<String> {
        let whole = self
            .whole_cell(version, second)
            .get_or_init(|| async move { Arc::new(build()) })
            .await
            .clone();
        let view = resolve(&whole, site);
        self.view_cell(version, second, &view)
            .get_or_init(|| async { Arc::new(cut(&whole, &view).to_string()) })
            .await
            .clone()
    }
}

/// What `site` means for the snapshot `whole`.
pub fn resolve(whole: &Json, site: Option<&str>) -> View {
    let Some(site) = site else {
        return View::All;
    };
    let known = whole["sites"]
        .as_array()
        .is_some_and(|l| l.iter().any(|s| s["id"].as_str() == Some(site)));
    if known {
        View::Site(site.to_owned())
    } else {
        View::Unknown
    }
}

/// The view `view` of the snapshot `whole`: for a site, its entry in
/// `sites` and its `events`; everything else as it is.
pub fn cut(whole: &Json, view: &View) -> Json {
    let site = match view {
        View::All => return whole.clone(),
        View::Site(s) => Some(s.as_str()),
        View::Unknown => None,
    };
    let Some(obj) = whole.as_object() else {
        return whole.clone();
    };
    let mut out = serde_json::Map::new();
    for (k, v) in obj {
        let field = match k.as_str() {
            "sites" => "id",
            "events" => "site",
            _ => {
                out.insert(k.clone(), v.clone());
                continue;
            }
        };
        let kept: Vec<Json> = v
            .as_array()
            .map(|l| {
                l.iter()
                    .filter(|x| site.is_some() && x[field].as_str() == site)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        out.insert(k.clone(), Json::Array(kept));
    }
    Json::Object(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn snap() -> Json {
        json!({
            "sites": [{"id": "a"}, {"id": "b"}],
            "events": [{"site": "a", "e": 1}, {"site": "b", "e": 2}],
            "now": 5,
        })
    }

    #[test]
    fn a_site_view_keeps_that_site_and_an_unknown_one_keeps_none() {
        let s = snap();
        assert_eq!(resolve(&s, None), View::All);
        assert_eq!(resolve(&s, Some("a")), View::Site("a".into()));
        assert_eq!(resolve(&s, Some("zz")), View::Unknown);
        let a = cut(&s, &View::Site("a".into()));
        assert_eq!(a["sites"], json!([{"id": "a"}]));
        assert_eq!(a["events"], json!([{"site": "a", "e": 1}]));
        assert_eq!(a["now"], 5);
        let u = cut(&s, &View::Unknown);
        assert_eq!(u["sites"], json!([]));
        assert_eq!(u["events"], json!([]));
        assert_eq!(cut(&s, &View::All), s);
    }

    #[tokio::test]
    async fn distinct_unknown_sites_share_one_build_and_one_view() {
        let cache = SnapCache::default();
        let builds = AtomicUsize::new(0);
        let mut texts = Vec::new();
        for i in 0..500 {
            let site = format!("nowhere-{i}");
            texts.push(
                cache
                    .get(7, 100, Some(&site), || {
                        builds.fetch_add(1, Ordering::Relaxed);
                        snap()
                    })
                    .await,
            );
        }
        assert_eq!(builds.load(Ordering::Relaxed), 1);
        assert!(texts.iter().all(|t| Arc::ptr_eq(t, &texts[0])));
        assert_eq!(cache.current.lock().unwrap().views.len(), 1);
        // A known site and the whole snapshot: two more views, no build.
        cache.get(7, 100, Some("a"), || unreachable!()).await;
        cache.get(7, 100, None, || unreachable!()).await;
        assert_eq!(cache.current.lock().unwrap().views.len(), 3);
        // A new version or second builds again and drops the old views.
        cache
            .get(8, 100, None, || {
                builds.fetch_add(1, Ordering::Relaxed);
                snap()
            })
            .await;
        assert_eq!(builds.load(Ordering::Relaxed), 2);
        assert_eq!(cache.current.lock().unwrap().views.len(), 1);
    }

    #[tokio::test]
    async fn the_number_of_views_is_bounded() {
        let cache = SnapCache::default();
        let many = json!({
            "sites": (0..200).map(|i| json!({"id": format!("s{i}")})).collect::<Vec<_>>(),
        });
        for i in 0..200 {
            let m = many.clone();
            cache.get(1, 1, Some(&format!("s{i}")), || m).await;
        }
        assert_eq!(cache.current.lock().unwrap().views.len(), MAX_VIEWS);
    }
}
