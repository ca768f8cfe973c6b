//! Images: their manifest and config files match their digests, their layers are present;
//! references point at images.

use std::fs;

use super::inventory::Inventory;
use super::problem::{Fix, Problem, ProblemKind};
use crate::digest::Digest;
use crate::id::ImageId;
use crate::store::{ImageRecord, Store, StoreError};

/// Images: manifest and config match their digests, layers are present; references point at
/// images.
pub(crate) fn images(
    store: &Store,
    inv: &Inventory,
    problems: &mut Vec<Problem>,
) -> Result<(), StoreError> {
    for image in inv.images.values() {
        let users = inv.image_users(&image.id);
        for detail in image_file_problems(store, image) {
            let mut p = Problem::new(ProblemKind::Image, image.id.to_string(), detail)
                .fix(Fix::RemoveImage(image.id.clone()));
            p.affects.clone_from(&users);
            problems.push(p);
        }
        for layer in &image.layers {
            if inv.layers.contains_key(&layer.chain_id) {
                // A present but broken layer is reported as such.
                continue;
            }
            let mut p = Problem::new(
                ProblemKind::ImageLayer,
                image.id.to_string(),
                format!(
                    "layer {} is missing: the next pull of the image fetches it again",
                    layer.chain_id
                ),
            );
            p.affects.clone_from(&users);
            problems.push(p);
        }
    }
    for (name, id) in &inv.refs {
        if !inv.images.contains_key(id) && !image_being_fixed(problems, id) {
            problems.push(Problem::new(
                ProblemKind::Tag,
                name.clone(),
                format!("points at image {id}, which is not in the store: pull {name} again"),
            ));
        }
    }
    Ok(())
}

/// What is wrong with an image's manifest and config files: missing, or not matching their
/// digests.
pub(crate) fn image_file_problems(store: &Store, image: &ImageRecord) -> Vec<String> {
    let dir = store.image_dir(&image.id);
    let mut out = Vec::new();
    for (file, expected) in [
        ("manifest.json", &image.manifest_digest),
        ("config.json", image.id.digest()),
    ] {
        match fs::read(dir.join(file)) {
            Ok(bytes) if Digest::of(&bytes) == *expected => {}
            Ok(bytes) => out.push(format!(
                "{file} has digest {}, not {expected}",
                Digest::of(&bytes)
            )),
            Err(e) => out.push(format!("{file}: {e}")),
        }
    }
    out
}

/// Whether an image record problem already covers `id` (its references are not reported again).
fn image_being_fixed(problems: &[Problem], id: &ImageId) -> bool {
    problems
        .iter()
        .any(|p| p.kind == ProblemKind::Image && p.object == id.to_string())
}
