//! `report.html` in a real browser: a run on the sandbox writes it, headless Chromium (Debian
//! package `chromium-headless-shell`, installed by `ci/test.sh`) screenshots it, and the pixels
//! must show what the report claims to draw — the fault's window shaded on the charts and the
//! series' lines — at the places the page lays them out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn browser() -> PathBuf {
    for name in ["chromium-headless-shell", "chromium", "chromium-browser"] {
        for dir in ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"] {
            let p = Path::new(dir).join(name);
            if p.exists() {
                return p;
            }
        }
    }
    panic!(
        "no headless Chromium found: `apt-get install --no-install-recommends \
         chromium-headless-shell` (ci/test.sh does this)"
    );
}

/// RGB pixels of a PNG, with its width.
fn pixels(path: &Path) -> (usize, Vec<[u8; 3]>) {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut reader = png::Decoder::new(file).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let px = buf[..info.buffer_size()]
        .chunks_exact(step)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    (info.width as usize, px)
}

fn near(p: [u8; 3], c: [u8; 3], tol: i32) -> bool {
    p.iter()
        .zip(c)
        .all(|(a, b)| (i32::from(*a) - i32::from(b)).abs() <= tol)
}

#[test]
fn report_html_renders_in_headless_chromium() {
    let dir = std::env::temp_dir().join(format!("chaos-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("run");
    // A real run: az-outage on the embedded sandbox, shortened.
    let o = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args([
            "run",
            "az-outage",
            "--time-scale",
            "0.05",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "the run itself broke: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let html = out.join("report.html");
    let shot = dir.join("report.png");
    let b = Command::new(browser())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--window-size=1200,2400",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        b.status.success() && shot.exists(),
        "chromium failed: {}",
        String::from_utf8_lossy(&b.stderr)
    );
    let (width, px) = pixels(&shot);
    assert_eq!(width, 1200);
    // The fault's window: #f4b183 at 35% opacity over white, on each of the three charts.
    let shade = [251, 228, 212];
    let rows_with_shade: Vec<usize> = px
        .chunks_exact(width)
        .enumerate()
        .filter(|(_, row)| row.iter().filter(|p| near(**p, shade, 3)).count() > 50)
        .map(|(y, _)| y)
        .collect();
    assert!(
        rows_with_shade.len() > 300,
        "the fault window is not shaded: {} rows",
        rows_with_shade.len()
    );
    // Three separate shaded bands (one per chart), from top to bottom.
    let mut bands: Vec<(usize, usize)> = Vec::new();
    for &y in &rows_with_shade {
        match bands.last_mut() {
            Some(b) if y - b.1 <= 10 => b.1 = y,
            _ => bands.push((y, y)),
        }
    }
    assert_eq!(bands.len(), 3, "one shaded band per chart: {bands:?}");
    let count_in = |rows: (usize, usize), c: [u8; 3]| {
        px[rows.0 * width..(rows.1 + 1) * width]
            .iter()
            .filter(|p| near(**p, c, 40))
            .count()
    };
    // The lines, each on its own chart: "sent" (#1565c0) on throughput, p99 (#c62828) on latency.
    assert!(
        count_in(bands[0], [0x15, 0x65, 0xc0]) > 300,
        "no throughput line"
    );
    assert!(count_in(bands[2], [0xc6, 0x28, 0x28]) > 300, "no p99 line");
    // Most of the page is white and something is drawn on it: not a blank or error page.
    let white = px.iter().filter(|p| near(**p, [255, 255, 255], 2)).count();
    assert!(white > px.len() / 2 && white < px.len() * 99 / 100);
    let _ = std::fs::remove_dir_all(&dir);
}
