//! Duck types shared by every Knative resource: knative.dev/pkg's `apis/duck/v1`.
//!
//! The JSON shapes are Knative's, key for key: a `Destination` in a Knative YAML manifest
//! deserialises into [`Destination`] unchanged.
//!
//! ```
//! use knative_core::apis::duck::Destination;
//!
//! let sink: Destination = serde_json::from_str(
//!     r#"{"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "event-display"}, "uri": "/events"}"#,
//! ).unwrap();
//! assert!(sink.validate().is_ok());
//!
//! let relative: Destination = serde_json::from_str(r#"{"uri": "/events"}"#).unwrap();
//! assert_eq!(
//!     relative.validate().unwrap_err().to_string(),
//!     "invalid value: Relative URI is not allowed when Ref and [apiVersion, kind, name] is absent: uri"
//! );
//! ```

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::condition::{CONDITION_READY, CONDITION_SUCCEEDED, Condition};
use super::validation::{CURRENT_FIELD, FieldError};

/// The status every Knative resource embeds (`duckv1.Status`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The generation last processed by the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The latest available observations of the resource's state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Additional status information.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Status {
    /// The condition of type `t`, if present.
    pub fn get_condition(&self, t: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == t)
    }
}

/// A status type that embeds [`Status`] (usually with `#[serde(flatten)]`).
pub trait KnativeStatus {
    /// The embedded duck status.
    fn duck(&self) -> &Status;
    /// The embedded duck status, mutably.
    fn duck_mut(&mut self) -> &mut Status;
}

impl KnativeStatus for Status {
    fn duck(&self) -> &Status {
        self
    }
    fn duck_mut(&mut self) -> &mut Status {
        self
    }
}

/// Where a resource can be reached (`duckv1.Addressable`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
pub struct Addressable {
    /// The name of the address (e.g. `http`, `https`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The address URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Certification Authority (CA) certificates in PEM format (RFC 7468) that the address
    /// serves with.
    #[serde(rename = "CACerts", default, skip_serializing_if = "Option::is_none")]
    pub ca_certs: Option<String>,
    /// The OIDC audience of this address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// How a status embeds [`Addressable`] (`duckv1.AddressStatus`, usually `#[serde(flatten)]`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressStatus {
    /// A single address. Clients ignore it when `addresses` is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Addressable>,
    /// Addresses for different protocols (HTTP and HTTPS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Addressable>,
}

/// A reference to another object, a trimmed-down `corev1.ObjectReference` (`duckv1.KReference`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct KReference {
    /// Kind of the referent.
    #[serde(default)]
    pub kind: String,
    /// Namespace of the referent; defaulted to the namespace of the object holding it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name of the referent.
    #[serde(default)]
    pub name: String,
    /// API version of the referent.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// API group of the referent without its version, an experimental alternative to
    /// `apiVersion` (only accepted with [`ValidationOptions::group_allowed`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// The name of one of the referent's addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// What pkg's validation reads from its `context.Context`: the parent object's namespace
/// (`apis.ParentMeta`) and the opt-in features `KReferenceGroupAllowed` and
/// `AllowDifferentNamespace`. The default is pkg's plain context.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ValidationOptions {
    /// The namespace of the object holding the reference; empty when unknown.
    pub parent_namespace: String,
    /// Accept `group` as an alternative to `apiVersion`.
    pub group_allowed: bool,
    /// Accept references to another namespace than the parent's.
    pub different_namespace_allowed: bool,
}

impl KReference {
    /// Validates the reference with pkg's default context: `name`, `apiVersion` and `kind`
    /// are required and `group` is not allowed.
    pub fn validate(&self) -> Result<(), FieldError> {
        self.validate_with(&ValidationOptions::default())
    }

    /// Validates the reference as pkg's `KReference.Validate` does under `options`.
    pub fn validate_with(&self, options: &ValidationOptions) -> Result<(), FieldError> {
        let mut errs = FieldError::default();
        if self.name.is_empty() {
            errs = errs.also(FieldError::err_missing_field(["name"]));
        }
        if options.group_allowed {
            if self.api_version.is_empty() && self.group.is_empty() {
                errs = errs
                    .also(FieldError::err_missing_field(["apiVersion"]))
                    .also(FieldError::err_missing_field(["group"]));
            }
            if !self.api_version.is_empty() && !self.group.is_empty() {
                errs = errs.also(
                    FieldError::new(
                        "both apiVersion and group are specified",
                        ["apiVersion", "group"],
                    )
                    .with_details("Only one of them must be specified"),
                );
            }
        } else {
            if !self.group.is_empty() {
                errs = errs.also(FieldError::err_disallowed_fields(["group"]));
            }
            if self.api_version.is_empty() {
                errs = errs.also(FieldError::err_missing_field(["apiVersion"]));
            }
        }
        if self.kind.is_empty() {
            errs = errs.also(FieldError::err_missing_field(["kind"]));
        }
        // Only a namespace that is set is checked: legacy objects may predate defaulting.
        if !self.namespace.is_empty()
            && !options.different_namespace_allowed
            && !options.parent_namespace.is_empty()
            && self.namespace != options.parent_namespace
        {
            errs = errs.also(
                FieldError::new("mismatched namespaces", ["namespace"]).with_details(format!(
                    "parent namespace: \"{}\" does not match ref: \"{}\"",
                    options.parent_namespace, self.namespace
                )),
            );
        }
        errs.into_result()
    }

    /// Defaults an empty namespace to the parent's.
    pub fn set_defaults(&mut self, parent_namespace: &str) {
        if self.namespace.is_empty() {
            self.namespace = parent_namespace.to_owned();
        }
    }
}

/// A target of an invocation over HTTP: an Addressable reference, a URI, or a URI relative
/// to the reference's address (`duckv1.Destination`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
pub struct Destination {
    /// The Addressable to send to.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub ref_: Option<KReference>,
    /// An absolute URL (with scheme and host), or a URI relative to `ref`'s address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// CA certificates in PEM format (RFC 7468), added to those of the Addressable target.
    #[serde(rename = "CACerts", default, skip_serializing_if = "Option::is_none")]
    pub ca_certs: Option<String>,
    /// The OIDC audience; takes precedence over the Addressable's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

impl Destination {
    /// Validates the destination with pkg's default context (see [`Self::validate_with`]).
    pub fn validate(&self) -> Result<(), FieldError> {
        self.validate_with(&ValidationOptions::default())
    }

    /// Validates the destination as pkg's `ValidateDestination` does, in order:
    /// one of `ref` and `uri` is required; a `uri` next to a `ref` must be relative; a `uri`
    /// alone must be absolute with a host; a `ref` alone must itself be valid; otherwise
    /// `CACerts`, when set, must start with a PEM `CERTIFICATE` block holding a certificate.
    pub fn validate_with(&self, options: &ValidationOptions) -> Result<(), FieldError> {
        let err = match (&self.ref_, &self.uri) {
            (None, None) => {
                FieldError::err_generic("expected at least one, got none", ["ref", "uri"])
            }
            (Some(_), Some(uri)) if UriParts::parse(uri).is_absolute() => FieldError::err_generic(
                "Absolute URI is not allowed when Ref or [apiVersion, kind, name] is present",
                ["[apiVersion, kind, name]", "ref", "uri"],
            ),
            (None, Some(uri))
                if !UriParts::parse(uri).is_absolute() || UriParts::parse(uri).host.is_empty() =>
            {
                FieldError::err_invalid_value(
                    "Relative URI is not allowed when Ref and [apiVersion, kind, name] is absent",
                    "uri",
                )
            }
            (Some(reference), None) => reference
                .validate_with(options)
                .err()
                .unwrap_or_default()
                .via_field("ref"),
            _ => self
                .ca_certs
                .as_deref()
                .map(validate_ca_certs)
                .unwrap_or_default(),
        };
        err.via_field(CURRENT_FIELD).into_result()
    }

    /// Defaults the namespace of `ref`, if any, to the parent's.
    pub fn set_defaults(&mut self, parent_namespace: &str) {
        if let Some(reference) = &mut self.ref_ {
            reference.set_defaults(parent_namespace);
        }
    }
}

/// The minimum spec of an event source (`duckv1.SourceSpec`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceSpec {
    /// Where the source sends its events.
    #[serde(default)]
    pub sink: Destination,
    /// Overrides of the events sent to the sink.
    #[serde(
        rename = "ceOverrides",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ce_overrides: Option<CloudEventOverrides>,
}

impl SourceSpec {
    /// Validates the spec as pkg's `SourceSpec.Validate` does: only `ceOverrides` is checked
    /// (the sink is validated by each source's own rules).
    pub fn validate(&self) -> Result<(), FieldError> {
        match &self.ce_overrides {
            Some(overrides) => overrides.validate().map_err(|e| e.via_field("ceOverrides")),
            None => Ok(()),
        }
    }
}

/// Overrides of the CloudEvents a source produces (`duckv1.CloudEventOverrides`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
pub struct CloudEventOverrides {
    /// Extension attributes added to, or replaced on, every outbound event.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, String>,
}

impl CloudEventOverrides {
    /// Extension names must be non-empty and ASCII alphanumeric; the first bad one (in key
    /// order) is reported.
    pub fn validate(&self) -> Result<(), FieldError> {
        for key in self.extensions.keys() {
            let details = if key.is_empty() {
                "keys MUST NOT be empty"
            } else if !key.chars().all(|c| c.is_ascii_alphanumeric()) {
                "keys MUST consist of lower-case letters ('a' to 'z') or digits ('0' to '9') from the ASCII character set"
            } else {
                continue;
            };
            return Err(FieldError::err_invalid_key_name(key, CURRENT_FIELD)
                .with_details(details)
                .via_field("extensions"));
        }
        Ok(())
    }
}

/// The status of an event source (`duckv1.SourceStatus`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SourceStatus {
    /// The embedded duck status.
    #[serde(flatten)]
    pub status: Status,
    /// The sink URI the source currently sends to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_uri: Option<String>,
    /// CA certificates in PEM format (RFC 7468) of the sink.
    #[serde(
        rename = "sinkCACerts",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sink_ca_certs: Option<String>,
    /// The OIDC audience of the sink.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink_audience: Option<String>,
    /// The CloudEvents attributes the source uses.
    #[serde(
        rename = "ceAttributes",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ce_attributes: Vec<CloudEventAttributes>,
    /// The service account(s) generated for the source's OIDC authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthStatus>,
}

impl SourceStatus {
    /// Whether the first `Ready` or `Succeeded` condition is True (pkg's `IsReady`).
    pub fn is_ready(&self) -> bool {
        self.status
            .conditions
            .iter()
            .find(|c| c.type_ == CONDITION_READY || c.type_ == CONDITION_SUCCEEDED)
            .is_some_and(Condition::is_true)
    }
}

impl KnativeStatus for SourceStatus {
    fn duck(&self) -> &Status {
        &self.status
    }
    fn duck_mut(&mut self) -> &mut Status {
        &mut self.status
    }
}

/// The CloudEvents attributes a source uses (`duckv1.CloudEventAttributes`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
pub struct CloudEventAttributes {
    /// The CloudEvents `type` attribute.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub type_: String,
    /// The CloudEvents `source` attribute.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source: String,
}

/// The service account(s) generated for a component's OIDC authentication
/// (`duckv1.AuthStatus`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthStatus {
    /// The generated service account's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// The generated service accounts' names, when the component has several identities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_account_names: Vec<String>,
}

/// The parts of a URI reference that validation looks at, split as Go's `url.Parse` splits
/// them (the URL's JSON form is parsed with it in pkg).
struct UriParts<'a> {
    scheme: &'a str,
    host: &'a str,
}

impl<'a> UriParts<'a> {
    fn parse(raw: &'a str) -> Self {
        let raw = raw.split_once('#').map_or(raw, |(before, _)| before);
        let (scheme, rest) = split_scheme(raw);
        let rest = rest.split_once('?').map_or(rest, |(before, _)| before);
        // Go only reads an authority after `//`; a rootless path with a scheme is opaque.
        let host = match rest.strip_prefix("//") {
            Some(authority) if !scheme.is_empty() || !authority.starts_with('/') => {
                let authority = authority.split_once('/').map_or(authority, |(a, _)| a);
                authority
                    .rsplit_once('@')
                    .map_or(authority, |(_, host)| host)
            }
            _ => "",
        };
        UriParts { scheme, host }
    }

    /// Go's `URL.IsAbs`: the URI has a scheme.
    fn is_absolute(&self) -> bool {
        !self.scheme.is_empty()
    }
}

/// Go's `getScheme`: a letter, then letters, digits, `+`, `-` or `.`, then `:`.
fn split_scheme(raw: &str) -> (&str, &str) {
    for (i, c) in raw.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i > 0 => return (&raw[..i], &raw[i + 1..]),
            _ => break,
        }
    }
    ("", raw)
}

/// pkg's `validateCACerts`: the first PEM block must be a `CERTIFICATE` holding an X.509
/// certificate.
fn validate_ca_certs(ca_certs: &str) -> FieldError {
    match pem_decode(ca_certs) {
        None => FieldError::err_invalid_value("CA Cert provided is invalid", "caCert"),
        Some((kind, _)) if kind != "CERTIFICATE" => {
            FieldError::err_invalid_value("CA Cert provided is not a certificate", "caCert")
        }
        Some((_, der)) if !is_x509_certificate(&der) => {
            FieldError::err_invalid_value("CA Cert provided is invalid", "caCert")
        }
        Some(_) => FieldError::default(),
    }
}

/// The type and bytes of the first well-formed PEM block, found as Go's `pem.Decode` finds it.
fn pem_decode(data: &str) -> Option<(&str, Vec<u8>)> {
    const BEGIN: &str = "-----BEGIN ";
    const END: &str = "\n-----END ";
    const DASHES: &str = "-----";
    let mut rest = data;
    loop {
        rest = match rest.strip_prefix(BEGIN) {
            Some(after) => after,
            None => &rest[rest.find("\n-----BEGIN ")? + 1 + BEGIN.len()..],
        };
        let (type_line, after_type) = get_line(rest);
        rest = after_type;
        let Some(kind) = type_line.strip_suffix(DASHES) else {
            continue;
        };
        let mut has_headers = false;
        loop {
            let (line, next) = get_line(rest);
            if rest.is_empty() || !line.contains(':') {
                break;
            }
            has_headers = true;
            rest = next;
        }
        let (body_end, trailer_start) = if !has_headers && rest.starts_with(&END[1..]) {
            (0, END.len() - 1)
        } else {
            match rest.find(END) {
                Some(i) => (i, i + END.len()),
                None => continue,
            }
        };
        let trailer = &rest[trailer_start..];
        let Some(after_trailer) = trailer
            .strip_prefix(kind)
            .and_then(|t| t.strip_prefix(DASHES))
        else {
            continue;
        };
        if !get_line(after_trailer).0.is_empty() {
            continue;
        }
        match base64_decode(&rest[..body_end]) {
            Some(bytes) => return Some((kind, bytes)),
            None => continue,
        }
    }
}

/// Go's pem `getLine`: the line without its end and trailing spaces, tabs and `\r`, and the rest.
fn get_line(data: &str) -> (&str, &str) {
    let (line, rest) = data.split_once('\n').unwrap_or((data, ""));
    (line.trim_end_matches([' ', '\t', '\r']), rest)
}

/// Standard, padded base64, ignoring whitespace.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let symbols: Vec<u8> = text.bytes().filter(|b| !b" \t\r\n".contains(b)).collect();
    if !symbols.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(symbols.len() / 4 * 3);
    let chunks = symbols.len() / 4;
    for (n, chunk) in symbols.chunks(4).enumerate() {
        let padding = chunk.iter().rev().take_while(|&&b| b == b'=').count();
        if padding > 2 || (padding > 0 && n + 1 != chunks) {
            return None;
        }
        let mut acc = 0u32;
        for &b in &chunk[..4 - padding] {
            let v = match b {
                b'A'..=b'Z' => b - b'A',
                b'a'..=b'z' => b - b'a' + 26,
                b'0'..=b'9' => b - b'0' + 52,
                b'+' => 62,
                b'/' => 63,
                _ => return None,
            };
            acc = (acc << 6) | u32::from(v);
        }
        acc <<= 6 * padding as u32;
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - padding]);
    }
    Some(out)
}

/// Whether `der` has the DER structure of an X.509 certificate: `SEQUENCE { tbsCertificate,
/// signatureAlgorithm, signatureValue }` with the TBS fields in order and nothing left over.
fn is_x509_certificate(der: &[u8]) -> bool {
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const BIT_STRING: u8 = 0x03;
    let Some((SEQUENCE, certificate, [])) = der_element(der) else {
        return false;
    };
    let Some((SEQUENCE, tbs, rest)) = der_element(certificate) else {
        return false;
    };
    let Some((SEQUENCE, _, rest)) = der_element(rest) else {
        return false;
    };
    let Some((BIT_STRING, _, [])) = der_element(rest) else {
        return false;
    };
    // Optional explicit [0] version, then serialNumber, signature, issuer, validity, subject,
    // subjectPublicKeyInfo, then only the optional [1], [2] and [3] fields.
    let mut rest = tbs;
    if let Some((0xa0, _, after)) = der_element(rest) {
        rest = after;
    }
    for expected in [INTEGER, SEQUENCE, SEQUENCE, SEQUENCE, SEQUENCE, SEQUENCE] {
        match der_element(rest) {
            Some((tag, _, after)) if tag == expected => rest = after,
            _ => return false,
        }
    }
    let mut last_optional = 0;
    while !rest.is_empty() {
        match der_element(rest) {
            Some((tag @ (0x81 | 0xa1 | 0x82 | 0xa2 | 0xa3), _, after))
                if tag & 0x1f > last_optional =>
            {
                last_optional = tag & 0x1f;
                rest = after;
            }
            _ => return false,
        }
    }
    true
}

/// One DER element: its tag, contents and what follows. Only low tag numbers and definite
/// lengths in their shortest form, as DER requires.
fn der_element(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, data) = data.split_first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let (&first, data) = data.split_first()?;
    let (len, data) = if first < 0x80 {
        (usize::from(first), data)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || data.len() < count || data[0] == 0 {
            return None;
        }
        let len = data[..count]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        if len < 0x80 {
            return None;
        }
        (len, &data[count..])
    };
    (data.len() >= len).then(|| (tag, &data[..len], &data[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A self-signed ECDSA certificate generated for these tests.
    const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBiDCCAS+gAwIBAgIUQWULu8Nz9dIGWoMwGn4hvMezVM8wCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPa25hdGl2ZS1ycy10ZXN0MB4XDTI2MTEyODAxMjc1N1oXDTM2
MTEyNTAxMjc1N1owGjEYMBYGA1UEAwwPa25hdGl2ZS1ycy10ZXN0MFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEwASNJuhDLTWcSzQwfkpKWY3fnBRM7Bkjr755qwYj
xR+mJTJP8V+qaLiYoIZO6lojIE2+HBQbKVEP2CaqQkXGu6NTMFEwHQYDVR0OBBYE
FDtgm/6tcVfYEWvbt0nSNmzWeKvCMB8GA1UdIwQYMBaAFDtgm/6tcVfYEWvbt0nS
NmzWeKvCMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgRLu4f7hE
bwIflZ9EgvgrZIbbokzJt1CBVQ9/EbZvbHkCIAxyxYUzpt/2FgYT18IdK0goW/Fq
PIkbcJHPSloijBj6
-----END CERTIFICATE-----
";

    /// A certificate signing request for the same key: PEM, but not a certificate.
    const TEST_CSR: &str = "-----BEGIN CERTIFICATE REQUEST-----
MIHUMHwCAQAwGjEYMBYGA1UEAwwPa25hdGl2ZS1ycy10ZXN0MFkwEwYHKoZIzj0C
AQYIKoZIzj0DAQcDQgAEwASNJuhDLTWcSzQwfkpKWY3fnBRM7Bkjr755qwYjxR+m
JTJP8V+qaLiYoIZO6lojIE2+HBQbKVEP2CaqQkXGu6AAMAoGCCqGSM49BAMCA0gA
MEUCIBLkSPMZMl5/zzf0pdB6vfhtJslgaR6orNDR3FF9wC/sAiEAoZLpadvXR4sc
aX4Y85V5HNiiK4vGvkt7XEJcPLjUqns=
-----END CERTIFICATE REQUEST-----
";

    fn valid_ref() -> KReference {
        KReference {
            kind: "SomeKind".into(),
            api_version: "v1mega1".into(),
            name: "a-name".into(),
            namespace: "b-namespace".into(),
            ..KReference::default()
        }
    }

    fn dest(reference: Option<KReference>, uri: Option<&str>) -> Destination {
        Destination {
            ref_: reference,
            uri: uri.map(str::to_owned),
            ..Destination::default()
        }
    }

    fn error_of(d: &Destination) -> String {
        d.validate().expect_err("invalid").to_string()
    }

    #[test]
    fn destination_round_trips_knatives_json() {
        let json = json!({
            "ref": {"kind": "Service", "namespace": "default", "name": "event-display", "apiVersion": "serving.knative.dev/v1", "address": "https"},
            "uri": "/extra/path",
            "CACerts": "-----BEGIN CERTIFICATE-----\n...",
            "audience": "my-audience"
        });
        let d: Destination = serde_json::from_value(json.clone()).unwrap();
        let reference = d.ref_.as_ref().unwrap();
        assert_eq!(
            (reference.kind.as_str(), reference.api_version.as_str()),
            ("Service", "serving.knative.dev/v1")
        );
        assert_eq!(reference.address.as_deref(), Some("https"));
        assert_eq!(
            d.ca_certs.as_deref(),
            Some("-----BEGIN CERTIFICATE-----\n...")
        );
        assert_eq!(serde_json::to_value(&d).unwrap(), json);
        assert_eq!(
            serde_json::to_value(Destination::default()).unwrap(),
            json!({})
        );
    }

    #[test]
    fn kreference_always_writes_kind_and_name() {
        assert_eq!(
            serde_json::to_value(KReference::default()).unwrap(),
            json!({"kind": "", "name": ""})
        );
    }

    #[test]
    fn addressable_and_address_status_use_knatives_keys() {
        let json = json!({
            "address": {"name": "http", "url": "http://hello.default.svc.cluster.local", "CACerts": "pem", "audience": "aud"},
            "addresses": [
                {"name": "http", "url": "http://hello.default.svc.cluster.local"},
                {"name": "https", "url": "https://hello.default.svc.cluster.local", "CACerts": "pem"}
            ]
        });
        let status: AddressStatus = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(status.addresses[1].ca_certs.as_deref(), Some("pem"));
        assert_eq!(
            status.address.as_ref().unwrap().audience.as_deref(),
            Some("aud")
        );
        assert_eq!(serde_json::to_value(&status).unwrap(), json);
        assert_eq!(
            serde_json::to_value(AddressStatus::default()).unwrap(),
            json!({})
        );
    }

    #[test]
    fn source_spec_and_status_round_trip_knatives_json() {
        let spec = json!({
            "sink": {"uri": "https://tableflip.dev?flip=mattmoor"},
            "ceOverrides": {"extensions": {"boosh": "kakow"}}
        });
        let parsed: SourceSpec = serde_json::from_value(spec.clone()).unwrap();
        assert_eq!(
            parsed.ce_overrides.as_ref().unwrap().extensions["boosh"],
            "kakow"
        );
        assert_eq!(serde_json::to_value(&parsed).unwrap(), spec);

        let status = json!({
            "observedGeneration": 42,
            "conditions": [{"type": "SinkProvided", "status": "True", "lastTransitionTime": "1984-02-28T18:52:00Z"}],
            "annotations": {"a": "b"},
            "sinkUri": "https://tableflip.dev?flip=mattmoor",
            "sinkCACerts": "pem",
            "sinkAudience": "aud",
            "ceAttributes": [{"type": "dev.knative.foo", "source": "http://knative.dev/knative/eventing"}],
            "auth": {"serviceAccountName": "sa", "serviceAccountNames": ["sa", "sb"]}
        });
        let parsed: SourceStatus = serde_json::from_value(status.clone()).unwrap();
        assert_eq!(parsed.duck().observed_generation, Some(42));
        assert_eq!(parsed.ce_attributes[0].type_, "dev.knative.foo");
        assert_eq!(serde_json::to_value(&parsed).unwrap(), status);
        assert_eq!(
            serde_json::to_value(SourceStatus::default()).unwrap(),
            json!({})
        );
    }

    #[test]
    fn source_status_is_ready_follows_its_happy_condition() {
        let mut status = SourceStatus::default();
        assert!(!status.is_ready());
        status.duck_mut().conditions.push(Condition::new(
            "SinkProvided",
            crate::apis::ConditionStatus::True,
        ));
        assert!(!status.is_ready());
        status
            .duck_mut()
            .conditions
            .push(Condition::new("Ready", crate::apis::ConditionStatus::True));
        assert!(status.is_ready());
    }

    #[test]
    fn a_valid_ref_alone_is_valid() {
        assert_eq!(dest(Some(valid_ref()), None).validate(), Ok(()));
    }

    #[test]
    fn a_ref_alone_must_have_name_api_version_and_kind() {
        let missing = |f: fn(&mut KReference)| {
            let mut r = valid_ref();
            f(&mut r);
            error_of(&dest(Some(r), None))
        };
        assert_eq!(missing(|r| r.name.clear()), "missing field(s): ref.name");
        assert_eq!(
            missing(|r| r.api_version.clear()),
            "missing field(s): ref.apiVersion"
        );
        assert_eq!(missing(|r| r.kind.clear()), "missing field(s): ref.kind");
        assert_eq!(
            error_of(&dest(Some(KReference::default()), None)),
            "missing field(s): ref.apiVersion, ref.kind, ref.name"
        );
    }

    #[test]
    fn an_absolute_uri_alone_is_valid() {
        assert_eq!(dest(None, Some("http://host")).validate(), Ok(()));
        assert_eq!(
            dest(None, Some("HTTPS://user@host:8443/path?q#frag")).validate(),
            Ok(())
        );
    }

    #[test]
    fn a_uri_alone_must_have_a_scheme_and_a_host() {
        let want = "invalid value: Relative URI is not allowed when Ref and [apiVersion, kind, name] is absent: uri";
        for uri in [
            "http:",
            "http://",
            "//host",
            "/handler",
            "host",
            "mailto:someone@example.com",
            "1http://host",
            "",
        ] {
            assert_eq!(error_of(&dest(None, Some(uri))), want, "{uri:?}");
        }
    }

    #[test]
    fn an_absolute_uri_next_to_a_ref_is_invalid() {
        assert_eq!(
            error_of(&dest(Some(valid_ref()), Some("http://host"))),
            "Absolute URI is not allowed when Ref or [apiVersion, kind, name] is present: [apiVersion, kind, name], ref, uri"
        );
        // A scheme without a host is still absolute.
        assert!(dest(Some(valid_ref()), Some("http:")).validate().is_err());
    }

    #[test]
    fn a_relative_uri_next_to_a_ref_is_valid_without_checking_the_ref() {
        assert_eq!(dest(Some(valid_ref()), Some("/handler")).validate(), Ok(()));
        assert_eq!(
            dest(Some(valid_ref()), Some("//other-host/path")).validate(),
            Ok(())
        );
        // pkg checks the ref only when it stands alone.
        assert_eq!(
            dest(Some(KReference::default()), Some("/handler")).validate(),
            Ok(())
        );
    }

    #[test]
    fn neither_ref_nor_uri_is_invalid() {
        assert_eq!(
            error_of(&Destination::default()),
            "expected at least one, got none: ref, uri"
        );
    }

    #[test]
    fn ca_certs_must_be_a_pem_certificate() {
        let with_certs = |certs: &str| Destination {
            ca_certs: Some(certs.into()),
            ..dest(Some(valid_ref()), Some("/handler"))
        };
        assert_eq!(with_certs(TEST_CERT).validate(), Ok(()));
        assert_eq!(
            with_certs(&format!("leading text\n{TEST_CERT}")).validate(),
            Ok(())
        );
        assert_eq!(
            error_of(&with_certs("certificate")),
            "invalid value: CA Cert provided is invalid: caCert"
        );
        assert_eq!(
            error_of(&with_certs(TEST_CSR)),
            "invalid value: CA Cert provided is not a certificate: caCert"
        );
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(
            error_of(&with_certs(garbage)),
            "invalid value: CA Cert provided is invalid: caCert"
        );
        let truncated = TEST_CERT.replace("PIkbcJHPSloijBj6\n", "");
        assert_eq!(
            error_of(&with_certs(&truncated)),
            "invalid value: CA Cert provided is invalid: caCert"
        );
        // With an absolute URI alone the certificates are checked too.
        let alone = Destination {
            ca_certs: Some("certificate".into()),
            ..dest(None, Some("https://host"))
        };
        assert_eq!(
            error_of(&alone),
            "invalid value: CA Cert provided is invalid: caCert"
        );
    }

    #[test]
    fn ca_certs_are_not_checked_for_a_ref_alone() {
        let d = Destination {
            ca_certs: Some("certificate".into()),
            ..dest(Some(valid_ref()), None)
        };
        assert_eq!(d.validate(), Ok(()));
    }

    #[test]
    fn kreference_group_is_disallowed_unless_enabled() {
        let mut r = valid_ref();
        r.group = "serving.knative.dev".into();
        assert_eq!(
            r.validate().unwrap_err().to_string(),
            "must not set the field(s): group"
        );
        let group_allowed = ValidationOptions {
            group_allowed: true,
            ..ValidationOptions::default()
        };
        assert_eq!(
            r.validate_with(&group_allowed).unwrap_err().to_string(),
            "both apiVersion and group are specified: apiVersion, group\nOnly one of them must be specified"
        );
        r.api_version.clear();
        assert_eq!(r.validate_with(&group_allowed), Ok(()));
        r.group.clear();
        assert_eq!(
            r.validate_with(&group_allowed).unwrap_err().to_string(),
            "missing field(s): apiVersion, group"
        );
    }

    #[test]
    fn kreference_namespace_must_match_the_parent_unless_allowed() {
        let r = valid_ref();
        let parent = ValidationOptions {
            parent_namespace: "other".into(),
            ..ValidationOptions::default()
        };
        assert_eq!(
            r.validate_with(&parent).unwrap_err().to_string(),
            "mismatched namespaces: namespace\nparent namespace: \"other\" does not match ref: \"b-namespace\""
        );
        let allowed = ValidationOptions {
            different_namespace_allowed: true,
            ..parent
        };
        assert_eq!(r.validate_with(&allowed), Ok(()));
        let mut d = dest(
            Some(KReference {
                namespace: String::new(),
                ..valid_ref()
            }),
            None,
        );
        d.set_defaults("other");
        assert_eq!(d.ref_.as_ref().unwrap().namespace, "other");
        d.set_defaults("ignored");
        assert_eq!(d.ref_.as_ref().unwrap().namespace, "other");
    }

    #[test]
    fn ce_override_extension_names_must_be_alphanumeric() {
        let spec = |key: &str| SourceSpec {
            ce_overrides: Some(CloudEventOverrides {
                extensions: BTreeMap::from([(key.to_owned(), "v".to_owned())]),
            }),
            ..SourceSpec::default()
        };
        assert_eq!(spec("boosh").validate(), Ok(()));
        assert_eq!(
            spec("b_sh").validate().unwrap_err().to_string(),
            "invalid key name \"b_sh\": ceOverrides.extensions\nkeys MUST consist of lower-case letters ('a' to 'z') or digits ('0' to '9') from the ASCII character set"
        );
        assert_eq!(
            spec("").validate().unwrap_err().to_string(),
            "invalid key name \"\": ceOverrides.extensions\nkeys MUST NOT be empty"
        );
        assert_eq!(SourceSpec::default().validate(), Ok(()));
    }

    #[test]
    fn uri_parts_follow_go_url_parse() {
        let parts = |s| {
            let p = UriParts::parse(s);
            (p.scheme, p.host)
        };
        assert_eq!(parts("http://user:pw@host:80/p?q#f"), ("http", "host:80"));
        assert_eq!(parts("http:opaque/path"), ("http", ""));
        assert_eq!(parts("//host/path"), ("", "host"));
        assert_eq!(parts("///path"), ("", ""));
        assert_eq!(parts("/a:b"), ("", ""));
        assert_eq!(parts("a+b.c-d://h"), ("a+b.c-d", "h"));
        assert_eq!(parts(":nothing"), ("", ""));
        assert_eq!(parts("x?y://h"), ("", ""));
    }

    #[test]
    fn base64_and_der_helpers_reject_malformed_input() {
        assert_eq!(base64_decode("TWFu"), Some(b"Man".to_vec()));
        assert_eq!(base64_decode("TWE=\n"), Some(b"Ma".to_vec()));
        assert_eq!(base64_decode("TQ=="), Some(b"M".to_vec()));
        assert_eq!(base64_decode("TQ==TWFu"), None);
        assert_eq!(base64_decode("TWF"), None);
        assert_eq!(base64_decode("TW!u"), None);
        assert!(!is_x509_certificate(&[0x30, 0x00]));
        assert!(!is_x509_certificate(&[0x30, 0x81, 0x05, 0, 0, 0, 0, 0]));
    }
}
