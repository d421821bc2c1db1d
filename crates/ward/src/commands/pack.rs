//! `ward pack`: a charm directory into a `.charm` file.

use std::path::Path;

use crate::error::{Context, Result};

pub(crate) fn run(dir: &Path, output: Option<&Path>) -> Result<()> {
    let (name, bytes) = crate::charmpkg::pack_dir(dir)?;
    let out = output
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(&format!("{name}.charm")).to_path_buf());
    std::fs::write(&out, &bytes).failed(|| format!("writing {}", out.display()))?;
    println!("Packed {} ({} bytes).", out.display(), bytes.len());
    Ok(())
}
