//! Which files of the library belong together: sidecars (XMP, AAE, THM) and the photo or
//! video they describe, and Live Photo pairs (a still and its short video). Told by name, in
//! the same folder: `IMG_1.xmp` or `IMG_1.JPG.xmp` belongs to `IMG_1.JPG`; `IMG_1.HEIC` and
//! `IMG_1.MOV` are a Live Photo. Pure: it reads only the paths and kinds it is given.

use std::collections::HashMap;

use photomesh_protocol::record::{MediaClass, MediaType};

/// How one file is linked to others (paths within the same folder label).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Links {
    /// The sidecars of this photo or video.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sidecars: Vec<String>,
    /// For a sidecar: the photo or video it describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sidecar_of: Option<String>,
    /// For half of a Live Photo: the other half.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_pair: Option<String>,
}

/// The links among `files`: (folder label, path, kind) each; the result is in their order.
pub fn link(files: &[(&str, &str, MediaType)]) -> Vec<Links> {
    let mut out = vec![Links::default(); files.len()];
    // Photos and videos by (folder, directory + stem) and by (folder, exact path), lowercased.
    let mut by_stem: HashMap<(String, String), Vec<usize>> = HashMap::new();
    let mut by_path: HashMap<(String, String), usize> = HashMap::new();
    for (i, (folder, path, kind)) in files.iter().enumerate() {
        if matches!(kind.class(), MediaClass::Photo | MediaClass::Video) {
            let lower = path.to_lowercase();
            by_stem
                .entry((folder.to_string(), stem(&lower).to_owned()))
                .or_default()
                .push(i);
            by_path.insert((folder.to_string(), lower), i);
        }
    }
    for (i, (folder, path, kind)) in files.iter().enumerate() {
        if kind.class() != MediaClass::Sidecar {
            continue;
        }
        let lower = path.to_lowercase();
        let base = stem(&lower);
        let owner = by_path
            .get(&(folder.to_string(), base.to_owned()))
            .copied()
            .or_else(|| {
                let same = by_stem.get(&(folder.to_string(), base.to_owned()))?;
                // A still before a video: `IMG_1.xmp` beside `IMG_1.HEIC` and `IMG_1.MOV`
                // describes the still.
                same.iter()
                    .copied()
                    .min_by_key(|j| files[*j].2.class() == MediaClass::Video)
            });
        if let Some(j) = owner {
            out[i].sidecar_of = Some(files[j].1.to_owned());
            out[j].sidecars.push(path.to_string());
        }
    }
    for group in by_stem.values() {
        let still = group
            .iter()
            .copied()
            .filter(|j| matches!(files[*j].2, MediaType::Heif | MediaType::Jpeg))
            .collect::<Vec<_>>();
        let video = group
            .iter()
            .copied()
            .filter(|j| matches!(files[*j].2, MediaType::Mov | MediaType::Mp4))
            .collect::<Vec<_>>();
        if let ([s], [v]) = (&still[..], &video[..]) {
            out[*s].live_pair = Some(files[*v].1.to_owned());
            out[*v].live_pair = Some(files[*s].1.to_owned());
        }
    }
    out
}

/// The path without its last extension.
fn stem(path: &str) -> &str {
    let name_at = path.rfind('/').map_or(0, |i| i + 1);
    match path[name_at..].rfind('.') {
        Some(dot) if dot > 0 => &path[..name_at + dot],
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MediaType as M;

    #[test]
    fn sidecars_and_live_photos_are_linked_by_name() {
        let files = [
            ("cam", "2024/IMG_1.HEIC", M::Heif),
            ("cam", "2024/IMG_1.MOV", M::Mov),
            ("cam", "2024/IMG_1.AAE", M::Aae),
            ("cam", "raw/DSC_2.NEF", M::Nef),
            ("cam", "raw/DSC_2.NEF.xmp", M::Xmp),
            ("cam", "raw/DSC_3.xmp", M::Xmp),
            ("other", "2024/IMG_1.xmp", M::Xmp),
            ("cam", "2024/notes.txt", M::Other),
        ];
        let links = link(&files);
        assert_eq!(links[0].live_pair.as_deref(), Some("2024/IMG_1.MOV"));
        assert_eq!(links[1].live_pair.as_deref(), Some("2024/IMG_1.HEIC"));
        assert_eq!(links[0].sidecars, vec!["2024/IMG_1.AAE"]);
        assert_eq!(links[2].sidecar_of.as_deref(), Some("2024/IMG_1.HEIC"));
        assert_eq!(links[3].sidecars, vec!["raw/DSC_2.NEF.xmp"]);
        assert_eq!(links[5], Links::default(), "no DSC_3 photo");
        assert_eq!(
            links[6],
            Links::default(),
            "another folder's photo is not its"
        );
        assert_eq!(links[7], Links::default());
    }
}
