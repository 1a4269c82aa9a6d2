//! `knative validate`: the Knative objects of YAML files checked offline, exactly as the
//! admission webhook checks them (`knative_serving::webhook::check_yaml`); Eventing kinds as
//! Knative Eventing's webhook does (`knative_eventing::apis::check::check_yaml`).
//!
//! ```text
//! $ knative validate -f service.yaml -f -
//! ok  serving.knative.dev/v1 Service default/hello
//! invalid  serving.knative.dev/v1 Service split
//!     Traffic targets sum to 90, want 100: spec.traffic
//! skipped  v1 ConfigMap settings (not a Knative kind)
//! ```
//!
//! Exit code: 0 when every Knative object is valid (skipped documents do not count), 1 when
//! any is invalid, 2 when a file cannot be read or is not YAML.

use std::io::{Read, Write};
use std::process::ExitCode;

use knative_serving::apis::Defaults;
use knative_serving::webhook::{self, Document, Outcome};

/// Arguments of `knative validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A YAML file of Kubernetes objects, one or more documents (`-` reads standard input).
    /// May be given several times.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    pub files: Vec<String>,
}

/// Runs `knative validate`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let code = validate(
        &args.files,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )?;
    Ok(ExitCode::from(code))
}

/// Every Knative object valid.
const VALID: u8 = 0;
/// Some Knative object invalid.
const INVALID: u8 = 1;
/// Some input unreadable.
const UNREADABLE: u8 = 2;

/// Validates `files` (`-` being `stdin`), writing one report per document to `out` and input
/// errors to `err`; returns the exit code.
fn validate(
    files: &[String],
    stdin: &mut impl Read,
    out: &mut impl Write,
    err: &mut impl Write,
) -> std::io::Result<u8> {
    let defaults = Defaults::default();
    let mut code = VALID;
    for file in files {
        let (label, text) = match read(file, stdin) {
            Ok(read) => read,
            Err(e) => {
                writeln!(err, "error: {file}: {e}")?;
                code = UNREADABLE;
                continue;
            }
        };
        match webhook::check_yaml(&text, &defaults) {
            Ok(documents) => {
                let eventing = knative_eventing::apis::check::check_yaml(
                    &text,
                    &knative_eventing::apis::Defaults::default(),
                );
                // Build, BuildTemplate, ClusterBuildTemplate (build.knative.dev/v1alpha1).
                let build = knative_build::apis::check::check_yaml(&text);
                for document in &documents {
                    let passed = match eventing
                        .get(document.index)
                        .and_then(Option::as_ref)
                        .or_else(|| build.get(document.index).and_then(Option::as_ref))
                    {
                        Some(outcome) => report_eventing(document, outcome, out)?,
                        None => report(document, out)?,
                    };
                    if !passed {
                        code = code.max(INVALID);
                    }
                }
            }
            Err(e) => {
                writeln!(err, "error: {label}: document {}: {e}", e.index + 1)?;
                code = UNREADABLE;
            }
        }
    }
    Ok(code)
}

fn read(file: &str, stdin: &mut impl Read) -> std::io::Result<(String, String)> {
    if file == "-" {
        let mut text = String::new();
        stdin.read_to_string(&mut text)?;
        Ok(("<stdin>".to_owned(), text))
    } else {
        Ok((file.to_owned(), std::fs::read_to_string(file)?))
    }
}

/// Writes what was found about one document; returns whether it passes (valid or skipped).
fn report(document: &Document, out: &mut impl Write) -> std::io::Result<bool> {
    let what = if document.api_version.is_empty() && document.kind.is_empty() {
        format!("document {} (no apiVersion or kind)", document.index + 1)
    } else {
        format!(
            "{} {} {}",
            document.api_version,
            document.kind,
            document.qualified_name()
        )
    };
    match &document.outcome {
        Outcome::Unknown { .. } if document.kind.is_empty() => {
            writeln!(out, "skipped  {what}")?;
            Ok(true)
        }
        Outcome::Unknown { .. } => {
            writeln!(out, "skipped  {what} (not a Knative kind)")?;
            Ok(true)
        }
        Outcome::Checked {
            validation: Ok(()), ..
        } => {
            writeln!(out, "ok  {what}")?;
            Ok(true)
        }
        Outcome::Malformed { error, .. }
        | Outcome::Checked {
            validation: Err(error),
            ..
        } => {
            writeln!(out, "invalid  {what}")?;
            for line in error.to_string().lines() {
                writeln!(out, "    {line}")?;
            }
            Ok(false)
        }
    }
}

/// Writes what was found about one document of an Eventing kind; returns whether it is valid.
fn report_eventing(
    document: &Document,
    outcome: &Result<serde_json::Value, knative_eventing::apis::FieldError>,
    out: &mut impl Write,
) -> std::io::Result<bool> {
    let what = format!(
        "{} {} {}",
        document.api_version,
        document.kind,
        document.qualified_name()
    );
    match outcome {
        Ok(_) => {
            writeln!(out, "ok  {what}")?;
            Ok(true)
        }
        Err(error) => {
            writeln!(out, "invalid  {what}")?;
            for line in error.to_string().lines() {
                writeln!(out, "    {line}")?;
            }
            Ok(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_on(stdin: &str) -> (u8, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = validate(&["-".to_owned()], &mut stdin.as_bytes(), &mut out, &mut err).unwrap();
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn documents_without_a_kind_are_skipped() {
        let (code, out, _) = run_on("just: a map\n");
        assert_eq!(code, VALID);
        assert_eq!(out, "skipped  document 1 (no apiVersion or kind)\n");
    }

    #[test]
    fn an_empty_stream_is_valid() {
        assert_eq!(run_on(""), (VALID, String::new(), String::new()));
    }

    #[test]
    fn malformed_objects_are_invalid_with_the_field_named() {
        let (code, out, _) = run_on(
            "apiVersion: serving.knative.dev/v1\nkind: Route\nmetadata:\n  name: r\nspec:\n  traffic:\n    - percent: all\n",
        );
        assert_eq!(code, INVALID);
        assert_eq!(
            out,
            "invalid  serving.knative.dev/v1 Route r\n    invalid type: string \"all\", expected an integer: spec.traffic[0].percent\n"
        );
    }
}
