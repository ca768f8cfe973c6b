//! Containers: their image, its layers and their own layers are there.

use std::fs;
use std::path::Path;

use super::inventory::Inventory;
use super::problem::{Problem, ProblemKind};
use crate::store::Store;

/// Containers: their image, its layers and their own layers are there.
pub(crate) fn containers(store: &Store, inv: &Inventory, problems: &mut Vec<Problem>) {
    for c in &inv.containers {
        let me = vec![format!("container {}", c.name)];
        let mut report = |kind, detail: String| {
            let mut p = Problem::new(kind, c.name.clone(), detail);
            p.affects.clone_from(&me);
            problems.push(p);
        };
        match inv.images.get(&c.image_id) {
            None => report(
                ProblemKind::Container,
                format!(
                    "its image {} is missing: pull {} again",
                    c.image_id, c.image_ref
                ),
            ),
            Some(image) => {
                for layer in &image.layers {
                    if !inv.present(store, &layer.chain_id) {
                        report(
                            ProblemKind::ContainerLayer,
                            format!(
                                "layer {} is missing: pull {} to fetch it again",
                                layer.chain_id, c.image_ref
                            ),
                        );
                    }
                }
            }
        }
        for (dir, link) in [
            (c.id.clone(), &c.link),
            (format!("{}-init", c.id), &c.init_link),
        ] {
            let path = store.overlay_dir().join(&dir);
            let expected = format!("../{dir}/diff");
            let link_ok = fs::read_link(store.links_dir().join(link))
                .is_ok_and(|t| t == Path::new(&expected));
            if !path.join("diff").is_dir() || !link_ok {
                report(
                    ProblemKind::Container,
                    format!(
                        "overlay2/{dir} or its short link l/{link} is missing or wrong: it cannot \
                         be repaired; remove the container (strata rm -f {})",
                        c.name
                    ),
                );
            }
        }
    }
}
