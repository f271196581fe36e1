//! The browser harness itself (`nsm_tests::browser`): Chromium renders a page to its DOM and
//! to a screenshot of the window's size, and the harness's PNG reader agrees with the `png`
//! crate, byte for byte.
//!
//! The rendering test needs `/usr/bin/chromium`: skipped outside CI without it, failed under
//! `CI=true`. The PNG reader's tests run everywhere.

use nsm_tests::browser::{self, Image};

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
    assert_eq!(
        image,
        reference_decode(&std::fs::read(&rendered.screenshot).unwrap())
    );
    let red = image
        .rgba
        .chunks_exact(4)
        .filter(|p| p[..3] == [0xd6, 0x27, 0x28])
        .count();
    assert!(red > 640 * 60, "the red band is painted ({red} red pixels)");
}

#[test]
fn the_png_reader_agrees_with_the_png_crate() {
    let (width, height) = (37, 23);
    for colour in [
        png::ColorType::Grayscale,
        png::ColorType::GrayscaleAlpha,
        png::ColorType::Rgb,
        png::ColorType::Rgba,
    ] {
        let channels = colour.samples();
        let pixels = pattern(width * height * channels as u32);
        for filter in [
            png::FilterType::NoFilter,
            png::FilterType::Sub,
            png::FilterType::Up,
            png::FilterType::Avg,
            png::FilterType::Paeth,
        ] {
            for compression in [
                png::Compression::Fast,
                png::Compression::Default,
                png::Compression::Best,
            ] {
                let bytes = encode(width, height, colour, filter, compression, &pixels);
                let ours = browser::decode_png(&bytes).unwrap_or_else(|e| {
                    panic!("{colour:?} {filter:?} {compression:?}: {e:#}");
                });
                assert_eq!(
                    ours,
                    reference_decode(&bytes),
                    "{colour:?} {filter:?} {compression:?}"
                );
            }
        }
    }
}

#[test]
fn the_png_reader_counts_colours() {
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

#[test]
fn the_png_reader_fails_on_damaged_files_without_panicking() {
    let pixels = pattern(64 * 64 * 4);
    let bytes = encode(
        64,
        64,
        png::ColorType::Rgba,
        png::FilterType::Paeth,
        png::Compression::Best,
        &pixels,
    );
    assert!(browser::decode_png(b"not a png").is_err());
    for cut in [8, 20, 40, bytes.len() / 2, bytes.len() - 13] {
        assert!(browser::decode_png(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut state = 1u32;
    for _ in 0..200 {
        let mut damaged = bytes.clone();
        for _ in 0..4 {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let at = 33 + (state >> 8) as usize % (damaged.len() - 33);
            damaged[at] ^= (state >> 24) as u8 | 1;
        }
        let _ = browser::decode_png(&damaged);
    }
}

/// Bytes with runs and noise, so every filter and both literal and match codes are used.
fn pattern(len: u32) -> Vec<u8> {
    let mut state = 7u32;
    (0..len)
        .map(|i| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            if (i / 97) % 2 == 0 {
                (i / 5) as u8
            } else {
                (state >> 24) as u8
            }
        })
        .collect()
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

/// The `png` crate's reading, as RGBA.
fn reference_decode(bytes: &[u8]) -> Image {
    let mut decoder = png::Decoder::new(bytes);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("png reads the header");
    let mut buffer = vec![0; reader.output_buffer_size()];
    let frame = reader
        .next_frame(&mut buffer)
        .expect("png reads the pixels");
    let samples = frame.color_type.samples();
    let rgba = buffer[..frame.buffer_size()]
        .chunks_exact(samples)
        .flat_map(|p| match *p {
            [g] => [g, g, g, 255],
            [g, a] => [g, g, g, a],
            [r, g, b] => [r, g, b, 255],
            [r, g, b, a] => [r, g, b, a],
            _ => panic!("{samples} samples per pixel"),
        })
        .collect();
    Image {
        width: frame.width,
        height: frame.height,
        rgba,
    }
}
