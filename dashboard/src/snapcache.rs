//! The snapshot as the event streams and `/api/snapshot` send it, built at
//! most once per [`BUCKET_MS`] for every client together.
//!
//! The whole snapshot is built once per bucket (the only step that locks
//! the model), by the first client that asks; clients asking meanwhile
//! wait for that build instead of making their own. It records the model
//! version it covers (read before building), so a client that has seen a
//! newer version knows it is behind and asks again in the next bucket. A
//! `?site=` view is cut from the whole snapshot and keyed by the *resolved*
//! filter: a site the snapshot holds, the whole snapshot, or "a site that
//! is not there" — every unknown `?site=` value shares that one empty view,
//! so distinct query strings cannot make the server build a snapshot each.
//! At most [`MAX_VIEWS`] views are kept (the oldest is dropped), and only
//! those of the current bucket.

use std::sync::{Arc, Mutex};

use serde_json::Value as Json;
use tokio::sync::OnceCell;

/// Views kept at most for one bucket.
pub const MAX_VIEWS: usize = 64;
/// The width of a bucket: one build at most per this many ms.
pub const BUCKET_MS: i64 = 250;

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

/// The whole snapshot and the model version it covers.
type Whole = (u64, Json);

#[derive(Debug, Default)]
struct Generation {
    bucket: i64,
    whole: Cell<Whole>,
    views: Vec<(View, Cell<String>)>,
}

/// The cache (one per server).
#[derive(Debug, Default)]
pub struct SnapCache {
    current: Mutex<Generation>,
}

impl SnapCache {
    /// The whole snapshot's cell of `bucket`, started anew if needed.
    fn whole_cell(&self, bucket: i64) -> Cell<Whole> {
        let Ok(mut g) = self.current.lock() else {
            return Cell::default();
        };
        if g.bucket != bucket {
            *g = Generation {
                bucket,
                ..Generation::default()
            };
        }
        g.whole.clone()
    }

    fn view_cell(&self, bucket: i64, view: &View) -> Cell<String> {
        let Ok(mut g) = self.current.lock() else {
            return Cell::default();
        };
        if g.bucket != bucket {
            // A newer bucket started meanwhile: cut outside it.
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

    /// The serialized view of `site` (None: all) at `now_ms`, and the model
    /// version it covers. When no client has built this bucket's snapshot
    /// yet, `version` is read and then `build` makes it.
    pub async fn get(
        &self,
        now_ms: i64,
        site: Option<&str>,
        version: impl FnOnce() -> u64,
        build: impl FnOnce() -> Json,
    ) -> (Arc<String>, u64) {
        let bucket = now_ms.div_euclid(BUCKET_MS);
        let whole = self
            .whole_cell(bucket)
            .get_or_init(|| async move {
                let v = version();
                Arc::new((v, build()))
            })
            .await
            .clone();
        let view = resolve(&whole.1, site);
        let text = self
            .view_cell(bucket, &view)
            .get_or_init(|| async { Arc::new(cut(&whole.1, &view).to_string()) })
            .await
            .clone();
        (text, whole.0)
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
            let (text, covers) = cache
                .get(
                    1000,
                    Some(&site),
                    || 7,
                    || {
                        builds.fetch_add(1, Ordering::Relaxed);
                        snap()
                    },
                )
                .await;
            assert_eq!(covers, 7);
            texts.push(text);
        }
        assert_eq!(builds.load(Ordering::Relaxed), 1);
        assert!(texts.iter().all(|t| Arc::ptr_eq(t, &texts[0])));
        assert_eq!(cache.current.lock().unwrap().views.len(), 1);
        // A known site and the whole snapshot: two more views, no build.
        cache
            .get(1100, Some("a"), || unreachable!(), || unreachable!())
            .await;
        cache
            .get(1249, None, || unreachable!(), || unreachable!())
            .await;
        assert_eq!(cache.current.lock().unwrap().views.len(), 3);
        // The next bucket builds again and drops the old views.
        let (_, covers) = cache
            .get(
                1250,
                None,
                || 9,
                || {
                    builds.fetch_add(1, Ordering::Relaxed);
                    snap()
                },
            )
            .await;
        assert_eq!((builds.load(Ordering::Relaxed), covers), (2, 9));
        assert_eq!(cache.current.lock().unwrap().views.len(), 1);
    }

    #[tokio::test]
    async fn clients_asking_at_once_wait_for_one_build() {
        let cache = Arc::new(SnapCache::default());
        let builds = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..50)
            .map(|i| {
                let (cache, builds) = (cache.clone(), builds.clone());
                tokio::spawn(async move {
                    let site = format!("s{}", i % 3);
                    cache
                        .get(
                            5000,
                            Some(&site),
                            || 1,
                            || {
                                builds.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(std::time::Duration::from_millis(20));
                                snap()
                            },
                        )
                        .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(builds.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn the_number_of_views_is_bounded() {
        let cache = SnapCache::default();
        let many = json!({
            "sites": (0..200).map(|i| json!({"id": format!("s{i}")})).collect::<Vec<_>>(),
        });
        for i in 0..200 {
            let m = many.clone();
            cache.get(1, Some(&format!("s{i}")), || 1, || m).await;
        }
        assert_eq!(cache.current.lock().unwrap().views.len(), MAX_VIEWS);
    }
}
