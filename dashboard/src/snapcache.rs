//! The snapshot as the event streams and `/api/snapshot` send it, built
//! for every client together and not more often than the server can afford.
//!
//! The whole snapshot (the only step that locks the model) is built by the
//! first client that needs a newer one; clients asking meanwhile wait for
//! that build instead of making their own. It records the model version it
//! covers (read before building); one older than [`MAX_AGE`] is renewed
//! even when the model did not change, for its clock. The next build starts no sooner than
//! [`MIN_GAP`] after the previous one ended, nor sooner than twice the time
//! that one took, so snapshots take at most about a third of the CPU
//! however many clients ask; until then clients get the latest one, and a
//! client that has seen a newer version than it covers knows it is behind.
//!
//! A `?site=` view is cut from the whole snapshot and keyed by the
//! *resolved* filter: a site the snapshot holds, the whole snapshot, or "a
//! site that is not there" — every unknown `?site=` value shares that one
//! empty view, so distinct query strings cannot make the server build a
//! snapshot each. At most [`MAX_VIEWS`] views are kept per snapshot (the
//! oldest is dropped).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use tokio::sync::OnceCell;

/// Views kept at most for one snapshot.
pub const MAX_VIEWS: usize = 64;
/// The shortest time between the end of one build and the start of the next.
pub const MIN_GAP: Duration = Duration::from_millis(250);
/// A snapshot older than this is rebuilt (when allowed) even if the model
/// did not change: it carries the server's clock (`now`).
pub const MAX_AGE: Duration = Duration::from_secs(1);

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

/// One built snapshot and the views cut from it.
#[derive(Debug)]
struct Built {
    /// Which build this is (1, 2, …).
    id: u64,
    /// Every model change up to this version is in it.
    covers: u64,
    /// When the build ended, and how long it took.
    ended: Instant,
    took: Duration,
    whole: Json,
    views: Mutex<Vec<(View, Cell<String>)>>,
}

impl Built {
    /// Whether a build may start after this one at `now`.
    fn next_allowed(&self, now: Instant) -> bool {
        now >= self.ended + MIN_GAP.max(self.took * 2)
    }

    fn view_cell(&self, view: &View) -> Cell<String> {
        let Ok(mut views) = self.views.lock() else {
            return Cell::default();
        };
        if let Some((_, c)) = views.iter().find(|(v, _)| v == view) {
            return c.clone();
        }
        if views.len() >= MAX_VIEWS {
            views.remove(0);
        }
        let c = Cell::default();
        views.push((view.clone(), c.clone()));
        c
    }
}

#[derive(Debug, Default)]
struct State {
    /// The latest snapshot.
    last: Option<Arc<Built>>,
    /// The build in progress, joined by every client that needs it.
    pending: Option<Cell<Built>>,
}

/// One answer of the cache.
#[derive(Clone, Debug)]
pub struct Snap {
    /// The serialized view.
    pub text: Arc<String>,
    /// The model version the snapshot covers.
    pub covers: u64,
    /// Which build it was cut from (the same build gives the same text).
    pub build: u64,
}

/// The cache (one per server).
#[derive(Debug, Default)]
pub struct SnapCache {
    state: Mutex<State>,
    builds: AtomicU64,
}

impl SnapCache {
    /// The snapshot to use for a client that has seen model version `seen`:
    /// the latest, or the build in progress or to start.
    fn choose(&self, seen: u64) -> Result<Arc<Built>, Cell<Built>> {
        let Ok(mut st) = self.state.lock() else {
            return Err(Cell::default());
        };
        let now = Instant::now();
        if let Some(last) = &st.last
            && (last.covers >= seen && now < last.ended + MAX_AGE || !last.next_allowed(now))
        {
            return Ok(last.clone());
        }
        Err(st.pending.get_or_insert_with(Cell::default).clone())
    }

    /// The serialized view of `site` (None: all) for a client that has
    /// seen model version `seen`. When a new snapshot is due, `version` is
    /// read and then `build` makes it.
    pub async fn get(
        &self,
        seen: u64,
        site: Option<&str>,
        version: impl FnOnce() -> u64,
        build: impl FnOnce() -> Json,
    ) -> Snap {
        let built = match self.choose(seen) {
            Ok(b) => b,
            Err(cell) => cell
                .get_or_init(|| async {
                    let started = Instant::now();
                    let covers = version();
                    let whole = build();
                    let b = Arc::new(Built {
                        id: self.builds.fetch_add(1, Ordering::Relaxed) + 1,
                        covers,
                        ended: Instant::now(),
                        took: started.elapsed(),
                        whole,
                        views: Mutex::new(Vec::new()),
                    });
                    if let Ok(mut st) = self.state.lock() {
                        st.last = Some(b.clone());
                        st.pending = None;
                    }
                    b
                })
                .await
                .clone(),
        };
        let view = resolve(&built.whole, site);
        let text = built
            .view_cell(&view)
            .get_or_init(|| async { Arc::new(cut(&built.whole, &view).to_string()) })
            .await
            .clone();
        Snap {
            text,
            covers: built.covers,
            build: built.id,
        }
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
            let s = cache
                .get(
                    7,
                    Some(&site),
                    || 7,
                    || {
                        builds.fetch_add(1, Ordering::Relaxed);
                        snap()
                    },
                )
                .await;
            assert_eq!((s.covers, s.build), (7, 1));
            texts.push(s.text);
        }
        assert_eq!(builds.load(Ordering::Relaxed), 1);
        assert!(texts.iter().all(|t| Arc::ptr_eq(t, &texts[0])));
        let last = cache.state.lock().unwrap().last.clone().unwrap();
        assert_eq!(last.views.lock().unwrap().len(), 1);
        // A known site and the whole snapshot: two more views, no build.
        cache
            .get(7, Some("a"), || unreachable!(), || unreachable!())
            .await;
        cache
            .get(7, None, || unreachable!(), || unreachable!())
            .await;
        assert_eq!(last.views.lock().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn a_newer_version_is_built_only_after_the_gap() {
        let cache = SnapCache::default();
        let first = cache.get(1, None, || 1, snap).await;
        // Seen version 2 right away: the latest snapshot, which says it
        // covers only 1 (the client is behind).
        let early = cache
            .get(2, None, || unreachable!(), || unreachable!())
            .await;
        assert_eq!((early.covers, early.build), (1, first.build));
        tokio::time::sleep(MIN_GAP + Duration::from_millis(20)).await;
        let later = cache.get(2, None, || 2, snap).await;
        assert_eq!((later.covers, later.build), (2, first.build + 1));
    }

    #[tokio::test]
    async fn a_slow_build_widens_the_gap() {
        let cache = SnapCache::default();
        cache
            .get(
                1,
                None,
                || 1,
                || {
                    std::thread::sleep(Duration::from_millis(200));
                    snap()
                },
            )
            .await;
        // 300 ms after: past MIN_GAP, not past twice the 200 ms build.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s = cache
            .get(2, None, || unreachable!(), || unreachable!())
            .await;
        assert_eq!(s.covers, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
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
                            1,
                            Some(&site),
                            || 1,
                            || {
                                builds.fetch_add(1, Ordering::Relaxed);
                                std::thread::sleep(Duration::from_millis(50));
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
        cache.get(1, None, || 1, || many).await;
        for i in 0..200 {
            cache
                .get(
                    1,
                    Some(&format!("s{i}")),
                    || unreachable!(),
                    || unreachable!(),
                )
                .await;
        }
        let last = cache.state.lock().unwrap().last.clone().unwrap();
        assert_eq!(last.views.lock().unwrap().len(), MAX_VIEWS);
    }
}
