//! The subset of Go's `text/template` Knative's ConfigMaps use for names: `domain-template`,
//! `tag-template` (config-network), `container-name-template` and `init-container-name-template`
//! (config-defaults).
//!
//! Supported: text, fields (`{{.Name}}`, `{{.Labels.app}}`), `{{index .Annotations "key"}}`,
//! `{{if …}}…{{else}}…{{end}}`, comments (`{{/* … */}}`) and the trim markers `{{- ` and ` -}}`.
//! A template is checked against the fields it will be executed with when it is parsed, so a
//! misspelt field is an error in the ConfigMap rather than at reconcile time.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A template Knative would reject, or one using Go template features this SDK does not
/// implement.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub(crate) String);

/// What a field of the template's data is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A string, e.g. `.Name`.
    Text,
    /// A `map[string]string`, e.g. `.Labels`.
    Map,
}

/// A value a template is executed with.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Value<'a> {
    Text(&'a str),
    Map(Option<&'a BTreeMap<String, String>>),
}

/// A parsed template, checked against a set of fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Template {
    nodes: Vec<Node>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Text(String),
    Print(Pipeline),
    If {
        condition: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pipeline {
    /// `.Field` or `.Map.key`.
    Field { field: String, key: Option<String> },
    /// `index .Map "key"`.
    Index { field: String, key: String },
}

impl Template {
    /// Parses `source`, checking every field against `fields`.
    pub(crate) fn parse(source: &str, fields: &[(&str, Kind)]) -> Result<Self, TemplateError> {
        let mut parser = Parser {
            fields,
            stack: vec![Frame::root()],
        };
        let mut rest = source;
        let mut trim_next = false;
        while !rest.is_empty() {
            let Some(open) = rest.find("{{") else {
                parser.text(rest, trim_next, false);
                break;
            };
            let (text, after_open) = rest.split_at(open);
            let after_open = &after_open[2..];
            let trim_before = starts_with_trim(after_open);
            parser.text(text, trim_next, trim_before);
            let close = find_close(after_open)
                .ok_or_else(|| TemplateError("unclosed action: missing \"}}\"".into()))?;
            let mut action = &after_open[..close];
            rest = &after_open[close + 2..];
            if trim_before {
                action = &action[1..];
            }
            trim_next = ends_with_trim(action);
            if trim_next {
                action = &action[..action.len() - 1];
            }
            parser.action(action.trim())?;
        }
        parser.finish()
    }

    /// Executes the template; `lookup` answers the fields it was parsed against.
    pub(crate) fn render<'a>(&self, lookup: &dyn Fn(&str) -> Value<'a>) -> String {
        let mut out = String::new();
        render_nodes(&self.nodes, lookup, &mut out);
        out
    }
}

/// Go only trims when the dash is followed by white space (`{{-3}}` prints -3).
fn starts_with_trim(action: &str) -> bool {
    action.starts_with('-') && action[1..].starts_with(|c: char| c.is_ascii_whitespace())
}

fn ends_with_trim(action: &str) -> bool {
    action.ends_with('-') && action[..action.len() - 1].ends_with(|c: char| c.is_ascii_whitespace())
}

/// The offset of the `}}` closing an action, skipping quoted strings.
fn find_close(action: &str) -> Option<usize> {
    let bytes = action.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if bytes.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

struct Frame {
    condition: Option<Pipeline>,
    then: Vec<Node>,
    otherwise: Option<Vec<Node>>,
}

impl Frame {
    fn root() -> Self {
        Self {
            condition: None,
            then: Vec::new(),
            otherwise: None,
        }
    }

    fn nodes(&mut self) -> &mut Vec<Node> {
        match &mut self.otherwise {
            Some(otherwise) => otherwise,
            None => &mut self.then,
        }
    }
}

struct Parser<'f> {
    fields: &'f [(&'f str, Kind)],
    stack: Vec<Frame>,
}

impl Parser<'_> {
    fn current(&mut self) -> &mut Vec<Node> {
        self.stack
            .last_mut()
            .expect("the root frame is never popped")
            .nodes()
    }

    fn text(&mut self, text: &str, trim_start: bool, trim_end: bool) {
        let text = if trim_start { text.trim_start() } else { text };
        let text = if trim_end { text.trim_end() } else { text };
        if !text.is_empty() {
            self.current().push(Node::Text(text.to_owned()));
        }
    }

    fn action(&mut self, action: &str) -> Result<(), TemplateError> {
        if action.starts_with("/*") && action.ends_with("*/") {
            return Ok(());
        }
        if let Some(condition) = action.strip_prefix("if ") {
            let condition = self.pipeline(condition.trim())?;
            self.stack.push(Frame {
                condition: Some(condition),
                then: Vec::new(),
                otherwise: None,
            });
            return Ok(());
        }
        match action {
            "else" => {
                let frame = self.stack.last_mut().expect("root frame");
                if frame.condition.is_none() || frame.otherwise.is_some() {
                    return Err(TemplateError("unexpected {{else}}".into()));
                }
                frame.otherwise = Some(Vec::new());
                Ok(())
            }
            "end" => {
                if self.stack.len() < 2 {
                    return Err(TemplateError("unexpected {{end}}".into()));
                }
                let frame = self.stack.pop().expect("checked above");
                let node = Node::If {
                    condition: frame
                        .condition
                        .expect("only the root frame has no condition"),
                    then: frame.then,
                    otherwise: frame.otherwise.unwrap_or_default(),
                };
                self.current().push(node);
                Ok(())
            }
            _ => {
                let pipeline = self.pipeline(action)?;
                self.current().push(Node::Print(pipeline));
                Ok(())
            }
        }
    }

    fn pipeline(&self, text: &str) -> Result<Pipeline, TemplateError> {
        if let Some(args) = text.strip_prefix("index ") {
            let args = args.trim();
            let (field, key) = args
                .split_once(|c: char| c.is_ascii_whitespace())
                .ok_or_else(|| {
                    TemplateError(format!("{{{{index {args}}}}}: expected a map and a key"))
                })?;
            let (field, nested) = self.field(field)?;
            if nested.is_some() || self.kind(&field) != Some(Kind::Map) {
                return Err(TemplateError(format!(
                    "{{{{index {args}}}}}: .{field} is not a map"
                )));
            }
            let key = unquote(key.trim()).ok_or_else(|| {
                TemplateError(format!(
                    "{{{{index {args}}}}}: the key must be a quoted string"
                ))
            })?;
            return Ok(Pipeline::Index { field, key });
        }
        let (field, key) = self.field(text)?;
        Ok(Pipeline::Field { field, key })
    }

    /// `.Field` or `.Map.key`, checked against the known fields.
    fn field(&self, text: &str) -> Result<(String, Option<String>), TemplateError> {
        let unsupported = || {
            TemplateError(format!(
                "unsupported template action {{{{{text}}}}}: only fields such as {{{{.Name}}}}, index and if/else/end are supported"
            ))
        };
        let path = text.strip_prefix('.').ok_or_else(unsupported)?;
        let mut parts = path.split('.');
        let field = parts
            .next()
            .filter(|f| is_identifier(f))
            .ok_or_else(unsupported)?;
        let key = parts.next();
        if parts.next().is_some() || key.is_some_and(|k| !is_identifier(k)) {
            return Err(unsupported());
        }
        match (self.kind(field), key) {
            (None, _) => Err(TemplateError(format!(
                "can't evaluate field {field}: the fields are {}",
                self.fields
                    .iter()
                    .map(|(name, _)| format!(".{name}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
            (Some(Kind::Text), Some(key)) => Err(TemplateError(format!(
                "can't evaluate field {key} of .{field}: it is a string"
            ))),
            (Some(_), key) => Ok((field.to_owned(), key.map(str::to_owned))),
        }
    }

    fn kind(&self, field: &str) -> Option<Kind> {
        self.fields
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, kind)| *kind)
    }

    fn finish(mut self) -> Result<Template, TemplateError> {
        if self.stack.len() != 1 {
            return Err(TemplateError(
                "unexpected end of template: missing {{end}}".into(),
            ));
        }
        let root = self.stack.pop().expect("root frame");
        Ok(Template { nodes: root.then })
    }
}

fn is_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
}

/// A Go string literal: `"…"` with the common escapes, or a raw `` `…` ``.
fn unquote(text: &str) -> Option<String> {
    if let Some(raw) = text.strip_prefix('`').and_then(|t| t.strip_suffix('`')) {
        return Some(raw.to_owned());
    }
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(match chars.next()? {
                'n' => '\n',
                't' => '\t',
                '\\' => '\\',
                '"' => '"',
                _ => return None,
            }),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// What a pipeline evaluates to: a string, a map, or a missing map entry (Go's "no value").
enum Evaluated<'a> {
    Text(&'a str),
    Map(Option<&'a BTreeMap<String, String>>),
    NoValue,
}

fn evaluate<'a>(pipeline: &Pipeline, lookup: &dyn Fn(&str) -> Value<'a>) -> Evaluated<'a> {
    match pipeline {
        Pipeline::Field { field, key: None } => match lookup(field) {
            Value::Text(text) => Evaluated::Text(text),
            Value::Map(map) => Evaluated::Map(map),
        },
        Pipeline::Field {
            field,
            key: Some(key),
        } => match lookup(field) {
            Value::Map(map) => map
                .and_then(|m| m.get(key))
                .map_or(Evaluated::NoValue, |v| Evaluated::Text(v)),
            Value::Text(_) => Evaluated::NoValue,
        },
        // `index` yields the zero value, "", for a missing key.
        Pipeline::Index { field, key } => match lookup(field) {
            Value::Map(map) => {
                Evaluated::Text(map.and_then(|m| m.get(key)).map_or("", String::as_str))
            }
            Value::Text(_) => Evaluated::Text(""),
        },
    }
}

fn render_nodes<'a>(nodes: &[Node], lookup: &dyn Fn(&str) -> Value<'a>, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Print(pipeline) => match evaluate(pipeline, lookup) {
                Evaluated::Text(text) => out.push_str(text),
                Evaluated::NoValue => out.push_str("<no value>"),
                Evaluated::Map(map) => {
                    // Go prints a map as map[k1:v1 k2:v2], keys sorted.
                    out.push_str("map[");
                    for (i, (k, v)) in map.into_iter().flatten().enumerate() {
                        if i > 0 {
                            out.push(' ');
                        }
                        let _ = write!(out, "{k}:{v}");
                    }
                    out.push(']');
                }
            },
            Node::If {
                condition,
                then,
                otherwise,
            } => {
                let truthy = match evaluate(condition, lookup) {
                    Evaluated::Text(text) => !text.is_empty(),
                    Evaluated::Map(map) => map.is_some_and(|m| !m.is_empty()),
                    Evaluated::NoValue => false,
                };
                render_nodes(if truthy { then } else { otherwise }, lookup, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[(&str, Kind)] = &[
        ("Name", Kind::Text),
        ("Domain", Kind::Text),
        ("Annotations", Kind::Map),
    ];

    fn render(
        source: &str,
        annotations: &BTreeMap<String, String>,
    ) -> Result<String, TemplateError> {
        let template = Template::parse(source, FIELDS)?;
        Ok(template.render(&|field| match field {
            "Name" => Value::Text("foo"),
            "Domain" => Value::Text("example.com"),
            _ => Value::Map(Some(annotations)),
        }))
    }

    #[test]
    fn fields_and_text_render() {
        assert_eq!(
            render("{{.Name}}.{{ .Domain }}", &BTreeMap::new()).unwrap(),
            "foo.example.com"
        );
    }

    #[test]
    fn index_and_if_render_as_go() {
        let template = r#"{{if index .Annotations "sub"}}{{index .Annotations "sub"}}{{else}}{{.Name}}{{end}}.{{.Domain}}"#;
        assert_eq!(
            render(template, &BTreeMap::new()).unwrap(),
            "foo.example.com"
        );
        let annotations = BTreeMap::from([("sub".to_owned(), "bar".to_owned())]);
        assert_eq!(render(template, &annotations).unwrap(), "bar.example.com");
    }

    #[test]
    fn missing_map_field_prints_no_value_as_go() {
        assert_eq!(
            render("{{.Annotations.x}}", &BTreeMap::new()).unwrap(),
            "<no value>"
        );
    }

    #[test]
    fn trim_markers_trim_white_space() {
        assert_eq!(
            render("a  {{- .Name -}}  b", &BTreeMap::new()).unwrap(),
            "afoob"
        );
    }

    #[test]
    fn comments_render_nothing() {
        assert_eq!(
            render("{{/* hi */}}{{.Name}}", &BTreeMap::new()).unwrap(),
            "foo"
        );
    }

    #[test]
    fn unknown_field_is_rejected() {
        let err = Template::parse("{{.Namespace}}", FIELDS).unwrap_err();
        assert!(
            err.to_string().contains("can't evaluate field Namespace"),
            "{err}"
        );
    }

    #[test]
    fn unbalanced_blocks_are_rejected() {
        assert!(Template::parse("{{if .Name}}x", FIELDS).is_err());
        assert!(Template::parse("x{{end}}", FIELDS).is_err());
        assert!(Template::parse("{{else}}", FIELDS).is_err());
        assert!(Template::parse("{{.Name", FIELDS).is_err());
    }

    #[test]
    fn unsupported_actions_are_rejected() {
        assert!(Template::parse("{{printf \"%s\" .Name}}", FIELDS).is_err());
        assert!(Template::parse("{{.}}", FIELDS).is_err());
        assert!(Template::parse("{{.Name.x}}", FIELDS).is_err());
    }
}
