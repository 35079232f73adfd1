//! QR codes: drawn on a terminal, written to a PNG, and read back from a PNG.
//!
//! Encoding uses `qrcode` (text in alphanumeric mode: the base32 codes fit it exactly),
//! PNG files are written and read with `png`, and decoding uses `rqrr`, a real QR decoder,
//! so a PNG round trip tests what a phone camera would see.

use std::fs::File;
use std::io::{self, BufReader, BufWriter};
use std::path::Path;

use qrcode::{Color, EcLevel, QrCode};

/// Pixels per QR module in written PNGs.
const SCALE: usize = 8;
/// Quiet-zone modules around the code.
const QUIET: usize = 4;

/// Why a QR code could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    /// The text does not fit in a QR code.
    #[error("the text is too long for a QR code")]
    TooLong,
    /// The PNG could not be read or written.
    #[error("{path}: {detail}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// The image holds no readable QR code.
    #[error(
        "{0} holds no QR code that can be read; take the picture again, square on and in focus"
    )]
    NoCode(String),
}

fn code(text: &str) -> Result<QrCode, QrError> {
    QrCode::with_error_correction_level(text.to_uppercase().as_bytes(), EcLevel::M)
        .map_err(|_| QrError::TooLong)
}

/// The QR code drawn with Unicode half blocks, two modules per character cell, dark on
/// light, with a quiet zone.
pub fn to_terminal(text: &str) -> Result<String, QrError> {
    let code = code(text)?;
    let width = code.width();
    let colors = code.to_colors();
    let dark = |x: isize, y: isize| {
        x >= 0
            && y >= 0
            && (x as usize) < width
            && (y as usize) < width
            && colors[y as usize * width + x as usize] == Color::Dark
    };
    let q = QUIET as isize;
    let mut out = String::new();
    let mut y = -q;
    while y < width as isize + q {
        for x in -q..width as isize + q {
            out.push(match (dark(x, y), dark(x, y + 1)) {
                (false, false) => '█',
                (true, false) => '▄',
                (false, true) => '▀',
                (true, true) => ' ',
            });
        }
        out.push('\n');
        y += 2;
    }
    Ok(out)
}

/// The QR code of `text` as an SVG image: one path of dark modules on a light square with
/// a quiet zone, drawn crisp at any size (the page shows it).
pub fn to_svg(text: &str) -> Result<String, QrError> {
    let code = code(text)?;
    let width = code.width();
    let side = width + 2 * QUIET;
    let mut path = String::new();
    for (i, c) in code.to_colors().iter().enumerate() {
        if *c == Color::Dark {
            let (x, y) = (i % width + QUIET, i / width + QUIET);
            path.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" \
         shape-rendering=\"crispEdges\"><rect width=\"{side}\" height=\"{side}\" \
         fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>"
    ))
}

/// Writes the QR code of `text` as a greyscale PNG.
pub fn write_png(text: &str, path: &Path) -> Result<(), QrError> {
    let code = code(text)?;
    let width = code.width();
    let colors = code.to_colors();
    let side = (width + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, c) in colors.iter().enumerate() {
        if *c == Color::Dark {
            let (mx, my) = (i % width + QUIET, i / width + QUIET);
            for dy in 0..SCALE {
                let row = (my * SCALE + dy) * side;
                pixels[row + mx * SCALE..row + (mx + 1) * SCALE].fill(0);
            }
        }
    }
    let file_err = |e: &dyn std::fmt::Display| QrError::File {
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    let file = File::create(path).map_err(|e| file_err(&e))?;
    let mut encoder = png::Encoder::new(BufWriter::new(file), side as u32, side as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| file_err(&e))?;
    writer.write_image_data(&pixels).map_err(|e| file_err(&e))?;
    writer.finish().map_err(|e| file_err(&e))?;
    Ok(())
}

/// Reads the first QR code found in a PNG image and returns its text.
pub fn read_png(path: &Path) -> Result<String, QrError> {
    let name = path.display().to_string();
    let file_err = |detail: String| QrError::File {
        path: name.clone(),
        detail,
    };
    let file = File::open(path).map_err(|e| file_err(describe(&e)))?;
    let mut decoder = png::Decoder::new(BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder
        .read_info()
        .map_err(|e| file_err(format!("not a readable PNG image ({e})")))?;
    let mut buf = vec![0; reader.output_buffer_size().unwrap_or(0)];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| file_err(format!("not a readable PNG image ({e})")))?;
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let line = info.line_size;
    let luma = |x: usize, y: usize| -> u8 {
        let p = &buf[y * line + x * channels..];
        match channels {
            1 | 2 => p[0],
            _ => ((u16::from(p[0]) * 3 + u16::from(p[1]) * 6 + u16::from(p[2])) / 10) as u8,
        }
    };
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(w, h, luma);
    for grid in prepared.detect_grids() {
        if let Ok((_, text)) = grid.decode() {
            return Ok(text);
        }
    }
    Err(QrError::NoCode(name))
}

fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trip_through_a_real_decoder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("code.png");
        let text = "ABCDEFGH-IJKLMNOP-QRSTUVWX-YZ234567-ABCDEFGH-IJKLMNOP-QRSTUVWX";
        write_png(text, &path).unwrap();
        assert_eq!(read_png(&path).unwrap(), text);
        assert!(to_terminal(text).unwrap().lines().count() > 10);
    }

    #[test]
    fn an_image_without_a_code_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blank.png");
        let file = File::create(&path).unwrap();
        let mut enc = png::Encoder::new(BufWriter::new(file), 64, 64);
        enc.set_color(png::ColorType::Grayscale);
        let mut w = enc.write_header().unwrap();
        w.write_image_data(&[200u8; 64 * 64]).unwrap();
        w.finish().unwrap();
        assert!(matches!(read_png(&path), Err(QrError::NoCode(_))));
        std::fs::write(&path, b"not a png").unwrap();
        assert!(matches!(read_png(&path), Err(QrError::File { .. })));
    }
}
