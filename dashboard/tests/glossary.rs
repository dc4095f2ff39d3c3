//! The pages name classes and figures as the glossary does
//! (`gateway_core::glossary`), as the alerts and the monthly report do: the
//! static assets carry no name of their own, and no retired name.

#![allow(clippy::unwrap_used)]

use gateway_core::glossary;

const PAGES: [(&str, &str); 4] = [
    ("wall.html", include_str!("../assets/wall.html")),
    ("device.html", include_str!("../assets/device.html")),
    ("tickets.html", include_str!("../assets/tickets.html")),
    ("404.html", include_str!("../assets/404.html")),
];

const SCRIPTS: [(&str, &str); 5] = [
    ("common.js", include_str!("../assets/common.js")),
    ("wall.js", include_str!("../assets/wall.js")),
    ("device.js", include_str!("../assets/device.js")),
    ("tickets.js", include_str!("../assets/tickets.js")),
    ("reports.js", include_str!("../assets/reports.js")),
];

#[test]
fn no_page_or_script_shows_a_retired_name() {
    for (file, text) in PAGES.iter().chain(SCRIPTS.iter()) {
        for old in glossary::RETIRED {
            assert!(!text.contains(old), "{file} still says {old:?}");
        }
    }
}

#[test]
fn the_scripts_take_class_and_figure_names_from_the_glossary_only() {
    let mut names: Vec<&str> = glossary::CLASS_ORDER
        .iter()
        .flat_map(|c| [glossary::class(*c).zh, glossary::class(*c).en])
        .collect();
    names.extend(
        glossary::FIGURES
            .iter()
            .filter(|(k, _)| *k != "target")
            .flat_map(|(_, t)| [t.zh, t.en]),
    );
    for (file, text) in SCRIPTS {
        for n in &names {
            assert!(
                !text.contains(&format!("\"{n}\"")),
                "{file} writes the name {n:?} itself; take it from GLOSSARY"
            );
        }
    }
    let common = SCRIPTS[0].1;
    assert!(
        common.contains("GLOSSARY.classes"),
        "classes from the glossary"
    );
    assert!(common.contains("GLOSSARY.figures.availability"));
    assert!(common.contains("GLOSSARY.figures.intact_rate"));
}

#[test]
fn every_page_with_the_common_script_loads_the_glossary_first() {
    for (file, text) in PAGES {
        let Some(common) = text.find("/assets/common.js") else {
            continue;
        };
        let glossary_at = text
            .find("<script src=\"/assets/glossary.js\"></script>")
            .unwrap_or_else(|| panic!("{file} does not load glossary.js"));
        assert!(glossary_at < common, "{file}: glossary.js after common.js");
    }
}
