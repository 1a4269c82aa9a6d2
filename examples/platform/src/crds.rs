//! `knative crds`: every CRD of the SDK, as YAML.

use std::io::Write;

/// Writes every CRD of the SDK to `out` as a multi-document YAML stream.
pub fn run(out: &mut impl Write) -> anyhow::Result<()> {
    for crd in knative_serving::crds() {
        writeln!(out, "---")?;
        out.write_all(serde_yaml::to_string(&crd)?.as_bytes())?;
    }
    for crd in knative_eventing::crds() {
        writeln!(out, "---")?;
        out.write_all(serde_yaml::to_string(&crd)?.as_bytes())?;
    }
    for crd in knative_build::crds() {
        writeln!(out, "---")?;
        out.write_all(serde_yaml::to_string(&crd)?.as_bytes())?;
    }
    Ok(())
}
