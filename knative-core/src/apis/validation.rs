//! Field errors with paths, combinable, rendered as one message: knative.dev/pkg's
//! `apis.FieldError`.
//!
//! A [`FieldError`] is built at the field that is wrong (with a path relative to it) and
//! gains path prefixes as it travels up the validation walk ([`FieldError::via_field`],
//! [`FieldError::via_index`], ...). Errors combine with [`FieldError::also`]; the empty error
//! ([`FieldError::default`]) plays the part of Go's `nil`, so an accumulator starts empty and
//! ends with [`FieldError::into_result`].
//!
//! ```
//! use knative_core::apis::FieldError;
//!
//! let err = FieldError::default()
//!     .also(FieldError::err_multiple_one_of(["revisionName", "configurationName"]).via_index(0).via_field("traffic"))
//!     .also(FieldError::err_out_of_bounds_value(1001, 0, 1000, "containerConcurrency"))
//!     .via_field("spec");
//! assert_eq!(
//!     err.to_string(),
//!     "expected 0 <= 1001 <= 1000: spec.containerConcurrency\n\
//!      expected exactly one, got both: spec.traffic[0].configurationName, spec.traffic[0].revisionName"
//! );
//! assert!(FieldError::default().into_result().is_ok());
//! ```

use std::fmt;

/// The path to supply when the problem is with the current field itself (pkg's
/// `apis.CurrentField`); it disappears once a prefix is added.
pub const CURRENT_FIELD: &str = "";

/// How severe a diagnostic is (pkg's `apis.DiagnosticLevel`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DiagnosticLevel {
    /// A blocking diagnostic: admission must fail.
    #[default]
    Error,
    /// A non-blocking diagnostic, surfaced as a warning.
    Warning,
}

impl fmt::Display for DiagnosticLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DiagnosticLevel::Error => "Error",
            DiagnosticLevel::Warning => "Warning",
        })
    }
}

/// An error about one or more fields of a resource, with paths such as `spec.traffic[1].percent`.
///
/// Like pkg's type it is a tree: a message of its own (when `message` is not empty) plus the
/// errors combined into it with [`also`](Self::also). Methods never mutate; they return a new
/// error. The empty error (`FieldError::default()`) stands for "no error".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldError {
    /// The error's message, e.g. `expected exactly one, got both`.
    pub message: String,
    /// The paths of the fields concerned.
    pub paths: Vec<String>,
    /// How severe this diagnostic is.
    pub level: DiagnosticLevel,
    /// Further detail for the user, rendered on the line after the message.
    pub details: String,
    errors: Vec<FieldError>,
}

impl FieldError {
    /// An error with `message` about the fields at `paths`.
    pub fn new(
        message: impl Into<String>,
        paths: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        FieldError {
            message: message.into(),
            paths: paths.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// `missing field(s)` (pkg's `ErrMissingField`).
    pub fn err_missing_field(paths: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self::new("missing field(s)", paths)
    }

    /// `must not set the field(s)` (pkg's `ErrDisallowedFields`).
    pub fn err_disallowed_fields(paths: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self::new("must not set the field(s)", paths)
    }

    /// `must not update deprecated field(s)` (pkg's `ErrDisallowedUpdateDeprecatedFields`).
    pub fn err_disallowed_update_deprecated_fields(
        paths: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self::new("must not update deprecated field(s)", paths)
    }

    /// `invalid value: <value>` at `field[index]` (pkg's `ErrInvalidArrayValue`).
    pub fn err_invalid_array_value(value: impl fmt::Display, field: &str, index: usize) -> Self {
        Self::err_invalid_value(value, CURRENT_FIELD).via_field_index(field, index)
    }

    /// `invalid value: <value>` at `path` (pkg's `ErrInvalidValue`; add details with
    /// [`with_details`](Self::with_details)).
    pub fn err_invalid_value(value: impl fmt::Display, path: impl Into<String>) -> Self {
        Self::new(format!("invalid value: {value}"), [path])
    }

    /// `expected exactly one, got neither` (pkg's `ErrMissingOneOf`).
    pub fn err_missing_one_of(paths: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self::new("expected exactly one, got neither", paths)
    }

    /// `expected exactly one, got both` (pkg's `ErrMultipleOneOf`).
    pub fn err_multiple_one_of(paths: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self::new("expected exactly one, got both", paths)
    }

    /// `invalid key name "<key>"` at `path` (pkg's `ErrInvalidKeyName`; add details with
    /// [`with_details`](Self::with_details)).
    pub fn err_invalid_key_name(key: &str, path: impl Into<String>) -> Self {
        Self::new(format!("invalid key name {}", go_quote(key)), [path])
    }

    /// `expected <lower> <= <value> <= <upper>` at `path` (pkg's `ErrOutOfBoundsValue`).
    pub fn err_out_of_bounds_value(
        value: impl fmt::Display,
        lower: impl fmt::Display,
        upper: impl fmt::Display,
        path: impl Into<String>,
    ) -> Self {
        Self::new(format!("expected {lower} <= {value} <= {upper}"), [path])
    }

    /// An error with a message of the caller's choosing (pkg's `ErrGeneric`).
    pub fn err_generic(
        message: impl Into<String>,
        paths: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self::new(message, paths)
    }

    /// Replaces the details of this error's own message, as assigning `Details` does in pkg.
    #[must_use]
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// Prefixes every path with `prefix`: the error was found while validating field `prefix`.
    ///
    /// A dotted prefix (`"spec.template"`) is the same as pkg's variadic
    /// `ViaField("spec", "template")`.
    #[must_use]
    pub fn via_field(self, prefix: &str) -> Self {
        let FieldError {
            message,
            paths,
            level,
            details,
            errors,
        } = self;
        let paths = paths
            .iter()
            .map(|old| flatten([prefix, old.as_str()]))
            .collect();
        let mut new = FieldError {
            message,
            paths,
            level,
            details,
            errors: Vec::new(),
        };
        for e in errors {
            new = new.also(e.via_field(prefix));
        }
        new.or_empty()
    }

    /// Prefixes every path with `[index]`, to be followed by the collection's
    /// [`via_field`](Self::via_field).
    #[must_use]
    pub fn via_index(self, index: usize) -> Self {
        self.via_field(&format!("[{index}]"))
    }

    /// Short for `.via_index(index).via_field(field)`.
    #[must_use]
    pub fn via_field_index(self, field: &str, index: usize) -> Self {
        self.via_index(index).via_field(field)
    }

    /// Prefixes every path with `[key]`, to be followed by the map's
    /// [`via_field`](Self::via_field).
    #[must_use]
    pub fn via_key(self, key: &str) -> Self {
        self.via_field(&format!("[{key}]"))
    }

    /// Short for `.via_key(key).via_field(field)`.
    #[must_use]
    pub fn via_field_key(self, field: &str, key: &str) -> Self {
        self.via_key(key).via_field(field)
    }

    /// Combines this error with `other` (a `FieldError`, or an `Option` of one such as
    /// `result.err()`); empty errors are dropped.
    #[must_use]
    pub fn also(self, other: impl Into<Option<FieldError>>) -> Self {
        match other.into() {
            Some(other) if !other.is_empty() => {
                let mut new = if self.is_empty() {
                    FieldError::default()
                } else {
                    self
                };
                new.errors.push(other);
                new
            }
            _ => self,
        }
    }

    /// The same diagnostics, all at `level` (pkg's `At`).
    #[must_use]
    pub fn at(self, level: DiagnosticLevel) -> Self {
        let FieldError {
            message,
            paths,
            details,
            errors,
            ..
        } = self;
        let mut new = FieldError {
            message,
            paths,
            level,
            details,
            errors: Vec::new(),
        };
        for e in errors {
            new = new.also(e.at(level));
        }
        new.or_empty()
    }

    /// Only the diagnostics at `level` (pkg's `Filter`); empty when there are none.
    #[must_use]
    pub fn filter(&self, level: DiagnosticLevel) -> Self {
        let mut new = if self.level == level {
            self.leaf()
        } else {
            FieldError::default()
        };
        for e in &self.errors {
            new = new.also(e.filter(level));
        }
        new.or_empty()
    }

    /// Whether this is the empty error (pkg's `nil`): no message, details, paths or errors.
    pub fn is_empty(&self) -> bool {
        self.message.is_empty()
            && self.details.is_empty()
            && self.errors.is_empty()
            && self.paths.is_empty()
    }

    /// `Ok(())` when empty, otherwise `Err(self)`.
    pub fn into_result(self) -> Result<(), FieldError> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    /// Every diagnostic with a message, flattened depth-first (pkg's `Normalized`).
    pub fn normalized(&self) -> Vec<FieldError> {
        let mut out = Vec::with_capacity(self.errors.len() + 1);
        self.collect_normalized(&mut out);
        out
    }

    /// The errors combined into this one (pkg's `WrapErrors`).
    pub fn wrapped_errors(&self) -> &[FieldError] {
        &self.errors
    }

    fn collect_normalized(&self, out: &mut Vec<FieldError>) {
        if !self.message.is_empty() {
            out.push(self.leaf());
        }
        for e in &self.errors {
            e.collect_normalized(out);
        }
    }

    /// This error's own diagnostic, without the errors combined into it.
    fn leaf(&self) -> FieldError {
        FieldError {
            message: self.message.clone(),
            paths: self.paths.clone(),
            level: self.level,
            details: self.details.clone(),
            errors: Vec::new(),
        }
    }

    /// pkg returns `nil` wherever a result would be empty.
    fn or_empty(self) -> Self {
        if self.is_empty() {
            FieldError::default()
        } else {
            self
        }
    }
}

impl fmt::Display for FieldError {
    /// pkg's `Error()`: diagnostics with the same level, message and details have their paths
    /// merged, then each renders as `message: path, path` (and the details on the next line),
    /// sorted by message, details and level, one per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in merge(self.normalized()).iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}: {}", e.message, e.paths.join(", "))?;
            if !e.details.is_empty() {
                write!(f, "\n{}", e.details)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for FieldError {}

/// Joins path components with dots, gluing `[index]` and `[key]` components onto the one before
/// and dropping empty ([`CURRENT_FIELD`]) components.
fn flatten<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut new_path: Vec<String> = Vec::new();
    for part in parts {
        for p in part.split('.') {
            if p == CURRENT_FIELD {
                continue;
            }
            match new_path.last_mut() {
                Some(last) if is_index(p) => last.push_str(p),
                _ => new_path.push(p.to_owned()),
            }
        }
    }
    new_path.join(".")
}

fn is_index(part: &str) -> bool {
    part.starts_with('[') && part.ends_with(']')
}

/// pkg's `merge`: diagnostics with the same level, message and details become one whose paths
/// are the union (the first one's paths kept as they are, later ones added if not present);
/// every path list is then sorted, and the diagnostics sorted by message, details, level.
fn merge(errs: Vec<FieldError>) -> Vec<FieldError> {
    let mut merged: Vec<FieldError> = Vec::with_capacity(errs.len());
    for e in errs {
        match merged
            .iter_mut()
            .find(|m| m.level == e.level && m.message == e.message && m.details == e.details)
        {
            Some(m) => {
                for p in e.paths {
                    if !m.paths.contains(&p) {
                        m.paths.push(p);
                    }
                }
            }
            None => merged.push(e),
        }
    }
    for m in &mut merged {
        m.paths.sort();
    }
    merged.sort_by(|a, b| {
        a.message
            .cmp(&b.message)
            .then_with(|| a.details.cmp(&b.details))
            .then(a.level.cmp(&b.level))
    });
    merged
}

/// Go's `%q` for a string: double-quoted with Go's escapes.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            ' ' => out.push(' '),
            c if c < ' ' || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() || c.is_whitespace() => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(message: &str, paths: &[&str]) -> FieldError {
        FieldError::new(message, paths.iter().copied())
    }

    #[test]
    fn a_single_error_renders_its_message_and_path() {
        assert_eq!(
            err("hear me roar", &["foo.bar"]).to_string(),
            "hear me roar: foo.bar"
        );
    }

    #[test]
    fn via_field_prefixes_accumulate_outermost_first() {
        let e = err(r#"invalid value "blah""#, &["foo"])
            .via_field("bar")
            .via_field("baz.ugh")
            .via_field("hoola");
        assert_eq!(
            e.to_string(),
            r#"invalid value "blah": hoola.baz.ugh.bar.foo"#
        );
    }

    #[test]
    fn several_paths_render_sorted_and_comma_separated() {
        let e = err("invalid field(s)", &["foo", "bar"]).via_field("baz.ugh");
        assert_eq!(e.to_string(), "invalid field(s): baz.ugh.bar, baz.ugh.foo");
    }

    #[test]
    fn details_render_on_the_line_after_the_paths() {
        let e = err("invalid field(s)", &["foo", "bar"])
            .with_details("I am a long\nlong\nloooong\nBody.")
            .via_field("baz.ugh");
        assert_eq!(
            e.to_string(),
            "invalid field(s): baz.ugh.bar, baz.ugh.foo\nI am a long\nlong\nloooong\nBody."
        );
    }

    #[test]
    fn current_field_path_becomes_the_prefix_itself() {
        let e = err("invalid field(s)", &[CURRENT_FIELD]).via_field("baz.ugh");
        assert_eq!(e.to_string(), "invalid field(s): baz.ugh");
    }

    #[test]
    fn an_error_without_paths_renders_an_empty_path_list() {
        let e = FieldError::new("invalid field(s)", Vec::<String>::new()).via_field("baz.ugh");
        assert_eq!(e.to_string(), "invalid field(s): ");
    }

    #[test]
    fn the_empty_error_stays_empty_through_prefixes_and_also() {
        let e = FieldError::default()
            .via_field("baz.ugh")
            .via_index(0)
            .via_key("A");
        assert!(e.is_empty());
        let e = e
            .also(None)
            .also(FieldError::default())
            .via_field("nil")
            .also(FieldError::default());
        assert_eq!(e, FieldError::default());
        assert_eq!(e.to_string(), "");
        assert_eq!(e.into_result(), Ok(()));
    }

    #[test]
    fn helpers_render_pkg_messages() {
        let cases = [
            (
                FieldError::err_missing_field(["foo", "bar"]),
                "missing field(s): baz.bar, baz.foo",
            ),
            (
                FieldError::err_disallowed_fields(["foo", "bar"]),
                "must not set the field(s): baz.bar, baz.foo",
            ),
            (
                FieldError::err_invalid_value("foo", "bar"),
                "invalid value: foo: baz.bar",
            ),
            (
                FieldError::err_invalid_value(5, "bar"),
                "invalid value: 5: baz.bar",
            ),
            (
                FieldError::err_missing_one_of(["foo", "bar"]),
                "expected exactly one, got neither: baz.bar, baz.foo",
            ),
            (
                FieldError::err_multiple_one_of(["foo", "bar"]),
                "expected exactly one, got both: baz.bar, baz.foo",
            ),
            (
                FieldError::err_disallowed_update_deprecated_fields(["foo", "bar"]),
                "must not update deprecated field(s): baz.bar, baz.foo",
            ),
            (
                FieldError::err_generic("something odd", ["foo"]),
                "something odd: baz.foo",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.via_field("baz").to_string(), want);
        }
    }

    #[test]
    fn invalid_key_name_quotes_the_key_like_go() {
        let e = FieldError::err_invalid_key_name("b@r", "foo[0].name")
            .with_details("can not use @, do not try")
            .via_field("baz");
        assert_eq!(
            e.to_string(),
            "invalid key name \"b@r\": baz.foo[0].name\ncan not use @, do not try"
        );
        let e = FieldError::err_invalid_key_name("a\"b\\c\nd\u{1}", "");
        assert_eq!(e.message, r#"invalid key name "a\"b\\c\nd\x01""#);
    }

    #[test]
    fn out_of_bounds_value_renders_lower_value_upper() {
        assert_eq!(
            FieldError::err_out_of_bounds_value("a", "b", "c", "string")
                .via_field("spec")
                .to_string(),
            "expected b <= a <= c: spec.string"
        );
        assert_eq!(
            FieldError::err_out_of_bounds_value(-1, 0, 5, "timeout")
                .via_field("spec")
                .to_string(),
            "expected 0 <= -1 <= 5: spec.timeout"
        );
        assert_eq!(
            FieldError::err_out_of_bounds_value(1001, 0, 1000, "containerConcurrency")
                .via_field("spec")
                .to_string(),
            "expected 0 <= 1001 <= 1000: spec.containerConcurrency"
        );
    }

    #[test]
    fn repeated_also_of_the_same_error_merges_into_one_line() {
        let mut fe = err("First", &["A", "B", "C"]);
        for _ in 0..4 {
            fe = fe.clone().also(fe);
        }
        fe = fe.also(err("Second", &["Z", "X", "Y"]));
        for _ in 0..4 {
            fe = fe.clone().also(fe);
        }
        assert_eq!(fe.to_string(), "First: A, B, C\nSecond: X, Y, Z");
    }

    #[test]
    fn doubling_then_prefixing_keeps_one_line_per_message() {
        let mut fe = err("Top", &["A", "B", "C"]);
        for p in ["3", "2", "1"] {
            for _ in 0..3 {
                fe = fe.clone().also(fe);
            }
            fe = fe.via_field(p);
        }
        assert_eq!(fe.to_string(), "Top: 1.2.3.A, 1.2.3.B, 1.2.3.C");
    }

    #[test]
    fn errors_with_different_details_stay_separate() {
        let mut fe = err("Top", &["A", "B", "C"]);
        for p in ["3", "2", "1"] {
            let e = fe.clone().via_field(p).with_details(format!("here at {p}"));
            for _ in 0..3 {
                fe = fe.also(e.clone());
            }
        }
        assert_eq!(
            fe.to_string(),
            "Top: A, B, C\n\
             Top: 1.A, 1.B, 1.C\nhere at 1\n\
             Top: 1.2.A, 1.2.B, 1.2.C, 2.A, 2.B, 2.C\nhere at 2\n\
             Top: 1.2.3.A, 1.2.3.B, 1.2.3.C, 1.3.A, 1.3.B, 1.3.C, 2.3.A, 2.3.B, 2.3.C, 3.A, 3.B, 3.C\nhere at 3"
        );
    }

    #[test]
    fn prefixes_apply_only_to_errors_combined_before_them() {
        let fe = err("First", &["A", "B", "C"]);
        let fe = fe
            .clone()
            .via_field("one")
            .also(fe.clone())
            .via_field("two")
            .also(fe.clone())
            .via_field("three")
            .also(fe);
        let fe = fe.also(err("Second", &["Z", "X", "Y"]));
        assert_eq!(
            fe.to_string(),
            "First: A, B, C, three.A, three.B, three.C, three.two.A, three.two.B, three.two.C, three.two.one.A, three.two.one.B, three.two.one.C\n\
             Second: X, Y, Z"
        );
    }

    #[test]
    fn indices_glue_onto_the_field_before_them() {
        let e = err("hear me roar", &["bar"])
            .via_index(3)
            .via_index(2)
            .via_index(1)
            .via_field("foo");
        assert_eq!(e.to_string(), "hear me roar: foo[1][2][3].bar");
        let e = err("invalid field(s)", &["foo"])
            .via_index(0)
            .via_field("bar")
            .via_index(2)
            .via_index(1)
            .via_field("baz");
        let e = e.via_index(3).via_index(4).via_field("boof");
        assert_eq!(
            e.to_string(),
            "invalid field(s): boof[4][3].baz[1][2].bar[0].foo"
        );
    }

    #[test]
    fn keys_glue_onto_the_field_before_them() {
        let e = err("hear me roar", &["bar"])
            .via_key("C")
            .via_key("B")
            .via_key("A")
            .via_field("foo");
        assert_eq!(e.to_string(), "hear me roar: foo[A][B][C].bar");
        let e = err("invalid field(s)", &["foo", "faa"])
            .via_key("A")
            .via_field("bar")
            .via_index(1)
            .via_field("baz");
        let e = e.via_key("E").via_index(0).via_field("jar");
        assert_eq!(
            e.to_string(),
            "invalid field(s): jar[0][E].baz[1].bar[A].faa, jar[0][E].baz[1].bar[A].foo"
        );
    }

    #[test]
    fn field_index_and_field_key_helpers_match_the_long_form() {
        let e = err("invalid field(s)", &["foo"])
            .via_field_index("bee", 2)
            .via_field_index("baa", 0)
            .via_field("baz")
            .via_field("ugh");
        assert_eq!(e.to_string(), "invalid field(s): ugh.baz.baa[0].bee[2].foo");
        let e = err("invalid field(s)", &["foo"])
            .via_field_key("bee", "AAA")
            .via_field_key("baa", "BBB")
            .via_field("baz.ugh");
        assert_eq!(
            e.to_string(),
            "invalid field(s): baz.ugh.baa[BBB].bee[AAA].foo"
        );
    }

    #[test]
    fn bracketed_prefixes_given_by_hand_glue_like_indices() {
        let e = err("invalid field(s)", &["foo"])
            .via_field("[2]")
            .via_field("[1]")
            .via_field("bar");
        assert_eq!(e.to_string(), "invalid field(s): bar[1][2].foo");
        let e = err("invalid field(s)", &["foo"])
            .via_field("bear.[1].[2].[3].baz.]xxx[")
            .via_field("bar");
        assert_eq!(
            e.to_string(),
            "invalid field(s): bar.bear[1][2][3].baz.]xxx[.foo"
        );
        let e = FieldError::err_missing_field(["foo", "bar"])
            .via_field("[2]")
            .via_field("baz");
        assert_eq!(e.to_string(), "missing field(s): baz[2].bar, baz[2].foo");
    }

    #[test]
    fn invalid_array_value_points_at_the_element() {
        assert_eq!(
            FieldError::err_invalid_array_value("kapot", "indexed", 5).to_string(),
            "invalid value: kapot: indexed[5]"
        );
        assert_eq!(
            FieldError::err_invalid_array_value(42, "indexed", 5).to_string(),
            "invalid value: 42: indexed[5]"
        );
    }

    #[test]
    fn also_renders_every_error_sorted_by_message() {
        let e = FieldError::default()
            .also(err("also this", &["woo"]))
            .via_field("foo");
        assert_eq!(e.to_string(), "also this: foo.woo");
        let e = err("hear me roar", &["bar"])
            .also(err("also this", &["woo"]))
            .via_field("foo.[A].[B].[C]");
        assert_eq!(
            e.to_string(),
            "also this: foo[A][B][C].woo\nhear me roar: foo[A][B][C].bar"
        );
        let e = err("knock knock", &["foo"])
            .also(err("also this", &["A"]))
            .also(err("and this", &["B"]))
            .also(err("not without this", &["C"]))
            .via_field("bar");
        assert_eq!(
            e.to_string(),
            "also this: bar.A\nand this: bar.B\nknock knock: bar.foo\nnot without this: bar.C"
        );
    }

    #[test]
    fn also_accepts_an_optional_error() {
        let failed: Result<(), FieldError> = Err(FieldError::err_missing_field(["name"]));
        let e = FieldError::default()
            .also(Ok::<(), FieldError>(()).err())
            .also(failed.err())
            .via_field("metadata");
        assert_eq!(e.to_string(), "missing field(s): metadata.name");
        assert_eq!(e.wrapped_errors().len(), 1);
    }

    #[test]
    fn errors_with_the_same_message_merge_their_paths_without_duplicates() {
        let e =
            err("A simple error message", &["bar"]).also(err("A simple error message", &["foo"]));
        assert_eq!(e.to_string(), "A simple error message: bar, foo");
        let e = err("A simple error message", &["bar", "foo"])
            .also(err("A simple error message", &["foo"]));
        assert_eq!(e.to_string(), "A simple error message: bar, foo");
    }

    #[test]
    fn merging_groups_by_message_and_details_then_sorts() {
        let mut e = err("this error", &["bar", "foo"])
            .also(err("another", &["right", "left"]))
            .via_field("head");
        for p in ["A", "B", "B", "B", "B", "B", "B", "C", "D"] {
            e = e.also(err("An alpha error message", &[p]));
        }
        e = e.also(err("this error", &["foo"]).with_details("devil is in the details"));
        e = e.also(err("this error", &["foo"]).with_details("more details"));
        assert_eq!(
            e.via_field("this").to_string(),
            "An alpha error message: this.A, this.B, this.C, this.D\n\
             another: this.head.left, this.head.right\n\
             this error: this.head.bar, this.head.foo\n\
             this error: this.foo\ndevil is in the details\n\
             this error: this.foo\nmore details"
        );
    }

    #[test]
    fn flatten_glues_indices_and_skips_empty_components() {
        let cases: [(&[&str], &str); 7] = [
            (&["foo", "[1]"], "foo[1]"),
            (&["foo", "bar"], "foo.bar"),
            (&["foo", "bar", "[0]"], "foo.bar[0]"),
            (&["foo", "[0]", "bar"], "foo[0].bar"),
            (&["[0]", "foo", "bar"], "[0].foo.bar"),
            (&["foo", "[1]", "[0]", "bar"], "foo[1][0].bar"),
            (&["foo", "bar.[0].baz"], "foo.bar[0].baz"),
        ];
        for (parts, want) in cases {
            assert_eq!(flatten(parts.iter().copied()), want, "{parts:?}");
        }
    }

    #[test]
    fn levels_can_be_set_and_filtered() {
        let e = FieldError::err_missing_field(["foo"])
            .also(FieldError::err_disallowed_fields(["bar"]).at(DiagnosticLevel::Warning));
        assert_eq!(
            e.filter(DiagnosticLevel::Error).to_string(),
            "missing field(s): foo"
        );
        assert_eq!(
            e.filter(DiagnosticLevel::Warning).to_string(),
            "must not set the field(s): bar"
        );
        assert!(
            FieldError::err_missing_field(["foo"])
                .filter(DiagnosticLevel::Warning)
                .is_empty()
        );
        let all_warnings = e.at(DiagnosticLevel::Warning);
        assert!(all_warnings.filter(DiagnosticLevel::Error).is_empty());
        assert_eq!(all_warnings.normalized().len(), 2);
    }

    #[test]
    fn same_message_at_different_levels_does_not_merge() {
        let e = FieldError::err_missing_field(["a"])
            .also(FieldError::err_missing_field(["b"]).at(DiagnosticLevel::Warning));
        assert_eq!(e.to_string(), "missing field(s): a\nmissing field(s): b");
        assert_eq!(DiagnosticLevel::Warning.to_string(), "Warning");
    }

    #[test]
    fn into_result_is_err_for_any_diagnostic() {
        let e = FieldError::err_missing_field(["metadata.name"]);
        assert_eq!(e.clone().into_result(), Err(e.clone()));
        assert_eq!(e.to_string(), "missing field(s): metadata.name");
        let boxed: Box<dyn std::error::Error> = Box::new(e);
        assert_eq!(boxed.to_string(), "missing field(s): metadata.name");
    }

    #[test]
    fn normalized_lists_leaves_depth_first() {
        let e = err("one", &["a"]).also(err("two", &["b"]).also(err("three", &["c"])));
        let messages: Vec<_> = e.normalized().into_iter().map(|e| e.message).collect();
        assert_eq!(messages, ["one", "two", "three"]);
    }
}
