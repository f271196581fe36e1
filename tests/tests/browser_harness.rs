//! The browser harness itself (`nsm_tests::browser`): Chromium renders a page to its DOM and
//! to a screenshot of the window's size, and the screenshot's colours are counted.
//!
//! The rendering test needs `/usr/bin/chromium`: skipped outside CI without it, failed under
//! `CI=true`. The colour count's test runs everywhere.

use nsm_tests::browser;

/// Three coloured bands, and a paragraph only a script writes (so the DOM is read after
/// scripts ran).
const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>harness</title>
<style>body{margin:0;background:#fff;font-family:'DejaVu Sans',sans-serif}
div{height:90px;color:#fff;font-size:24px}</style></head>
<body>
<div style="background:#d62728">red lane</div>
<div style="background:#2ca02c">green lane</div>
<div style="background:#1f4fd6">blue lane</div>
<script>document.body.insertAdjacentHTML('beforeend', '<p id="js">written by a script</p>');</script>
</body></html>
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_a_page_to_its_dom_and_a_coloured_screenshot() {
    if browser::chromium_or_skip().is_none() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let html = dir.path().join("page with spaces.html");
    std::fs::write(&html, PAGE).expect("write the page");

    let rendered = browser::render(&html, dir.path(), 640, 400)
        .await
        .expect("chromium renders the page");

    for text in ["red lane", "green lane", "blue lane", "written by a script"] {
        assert!(
            rendered.dom.contains(text),
            "{text} in the DOM:\n{}",
            rendered.dom
        );
    }
    assert_eq!((rendered.width, rendered.height), (640, 400));
    assert!(
        rendered.distinct_colours >= 4,
        "{} colours: a blank page?",
        rendered.distinct_colours
    );
    let image = browser::read_png(&rendered.screenshot).expect("the harness reads it");
    assert_eq!((image.width, image.height), (640, 400));
    let red = image
        .rgba
        .chunks_exact(4)
        .filter(|p| p[..3] == [0xd6, 0x27, 0x28])
        .count();
    assert!(red > 640 * 60, "the red band is painted ({red} red pixels)");
}

#[test]
fn distinct_colours_counts_each_rgba_value_once() {
    let pixels: Vec<u8> = (0..16u8).flat_map(|i| [i % 3, 0, 0]).collect();
    let bytes = encode(
        4,
        4,
        png::ColorType::Rgb,
        png::FilterType::Sub,
        png::Compression::Default,
        &pixels,
    );
    assert_eq!(browser::decode_png(&bytes).unwrap().distinct_colours(), 3);
}

fn encode(
    width: u32,
    height: u32,
    colour: png::ColorType,
    filter: png::FilterType,
    compression: png::Compression,
    pixels: &[u8],
) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width, height);
    encoder.set_color(colour);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_filter(filter);
    encoder.set_compression(compression);
    let mut writer = encoder.write_header().expect("PNG header");
    writer.write_image_data(pixels).expect("PNG data");
    writer.finish().expect("PNG end");
    bytes
}
