//! `nsm timeline` drawn from a log a node wrote, opened in a real headless browser: the page
//! and the SVG load offline, hold one lane per vWire with its events, and paint each state's
//! colour (not a blank page).
//!
//! Needs `/usr/bin/chromium`: skipped outside CI without it, failed under `CI=true`. Set
//! `NSM_TIMELINE_SCREENSHOT=FILE.png` to keep the page's screenshot for a review.

use std::path::Path;
use std::process::Command;

use nsm_tests::browser::{self, Image};
use nsm_tests::fixture::incident_log;
use nsm_tests::mesh::nsm_binary;

/// The state colours `nsm timeline` paints, as the screenshot holds them.
const STATE_COLOURS: [(&str, [u8; 3]); 5] = [
    ("requested", [0xe3, 0xa0, 0x08]),
    ("established", [0x2f, 0x9e, 0x44]),
    ("closed", [0x86, 0x8e, 0x96]),
    ("expired", [0x8e, 0x44, 0xad]),
    ("failed", [0xe0, 0x31, 0x31]),
];

fn timeline(db: &Path, out: &Path, filters: &[&str]) {
    let output = Command::new(nsm_binary())
        .arg("timeline")
        .arg("--db")
        .arg(db)
        .arg("--out")
        .arg(out)
        .args(filters)
        .output()
        .expect("run nsm");
    assert!(
        output.status.success(),
        "nsm timeline {filters:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

fn pixels_of(image: &Image, rgb: [u8; 3]) -> usize {
    image.rgba.chunks_exact(4).filter(|p| p[..3] == rgb).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_renders_every_lane_and_event_in_a_headless_browser() {
    if browser::chromium_or_skip().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fixture = incident_log(dir.path()).await;

    let html = dir.path().join("incident.html");
    timeline(&fixture.db, &html, &[]);
    let page = browser::render(&html, &dir.path().join("html"), 1400, 900)
        .await
        .expect("chromium renders the page");
    if let Some(keep) = std::env::var_os("NSM_TIMELINE_SCREENSHOT") {
        std::fs::copy(&page.screenshot, keep).expect("keep the screenshot");
    }
    let dom = &page.dom;
    let lanes: Vec<&str> = dom
        .split("<g class=\"lane\" data-vwire=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    let vwire_lanes: Vec<&&str> = lanes
        .iter()
        .filter(|lane| !lane.starts_with("dataplane-"))
        .collect();
    assert_eq!(
        vwire_lanes.len(),
        fixture.vwires.len(),
        "one lane per vWire, no registry lanes: {lanes:?}"
    );
    for (name, id) in &fixture.vwires {
        assert!(
            dom.contains(&format!("<g class=\"lane\" data-vwire=\"{id}\">")),
            "the {name} vWire's lane"
        );
    }
    // Each vWire's events are drawn: the lifecycle paths the fixture takes.
    assert_eq!(count(dom, "data-kind=\"Requested\""), 5);
    assert_eq!(count(dom, "data-kind=\"Closed\""), 1);
    assert_eq!(count(dom, "data-kind=\"Failed\""), 1);
    assert_eq!(count(dom, "data-kind=\"Expired\""), 2);
    assert_eq!(count(dom, "data-kind=\"Established\""), 4);
    for (state, _) in STATE_COLOURS {
        assert!(
            dom.contains(&format!("class=\"segment state-{state}\"")),
            "a {state} segment"
        );
    }
    // The table of events lists the downtime expiry's vWire for Ctrl-F.
    assert!(dom.contains(&fixture.vwires["downtime"]));

    // Painted, not merely present: every state's colour is on the screen.
    assert_eq!((page.width, page.height), (1400, 900));
    let image = browser::read_png(&page.screenshot).unwrap();
    for (state, rgb) in STATE_COLOURS {
        let painted = pixels_of(&image, rgb);
        assert!(painted > 20, "{state} is painted: {painted} pixels");
    }
    assert!(
        page.distinct_colours >= 12,
        "{} colours: a blank page?",
        page.distinct_colours
    );

    // The SVG on its own, filtered to one vWire.
    let svg = dir.path().join("expired.svg");
    let expired = &fixture.vwires["expired"];
    timeline(&fixture.db, &svg, &["--vwire", expired]);
    let picture = browser::render(&svg, &dir.path().join("svg"), 1400, 400)
        .await
        .expect("chromium renders the svg");
    assert_eq!(count(&picture.dom, "<g class=\"lane\" data-vwire=\""), 1);
    assert!(
        picture
            .dom
            .contains(&format!("<g class=\"lane\" data-vwire=\"{expired}\">"))
    );
    assert_eq!(count(&picture.dom, "data-kind=\"Expired\""), 1);
    let image = browser::read_png(&picture.screenshot).unwrap();
    assert!(
        pixels_of(&image, STATE_COLOURS[3].1) > 20,
        "expired is painted"
    );
}
