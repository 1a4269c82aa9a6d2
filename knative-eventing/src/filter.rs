//! Trigger filters: which events a Trigger (or a filtered Subscription) wants.
//!
//! A [`Filter`] is compiled once from a Trigger's spec and then matched against every event,
//! without I/O or allocation on the hot path. Two families of filters exist, as in Knative:
//!
//! - the attributes filter (`spec.filter.attributes`): every listed attribute must be present on
//!   the event and equal the given value; the empty value means "present, with any value";
//! - the CloudEvents subscriptions-API dialects (`spec.filters`): `exact`, `prefix`, `suffix`,
//!   and the combinators `all`, `any`, `not`. When `spec.filters` is not empty it takes precedence
//!   over `spec.filter`, as in Knative.
//!
//! CESQL (`cesql`) is not implemented: compiling a filter that uses it fails with
//! [`FilterError::UnsupportedDialect`] instead of silently matching everything or nothing.
//!
//! ```
//! use cloudevents::{EventBuilder, EventBuilderV10};
//! use knative_eventing::filter::Filter;
//!
//! let event = EventBuilderV10::new()
//!     .id("1")
//!     .source("/orders")
//!     .ty("com.example.order.created")
//!     .build()
//!     .unwrap();
//! let created = Filter::all([
//!     Filter::prefix("type", "com.example.order."),
//!     Filter::not(Filter::suffix("type", ".deleted")),
//! ]);
//! assert!(created.matches(&event));
//! assert!(!Filter::present("subject").matches(&event));
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;

use cloudevents::{AttributesReader, Event};

use crate::apis::eventing::trigger::{SubscriptionsAPIFilter, TriggerFilter};

/// A compiled event filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// Passes when every nested filter passes (and so when there are none).
    All(Vec<Filter>),
    /// Passes when at least one nested filter passes.
    Any(Vec<Filter>),
    /// Passes when the nested filter does not.
    Not(Box<Filter>),
    /// The attribute is present with exactly this value.
    Exact {
        /// The attribute's name (`type`, `source`, an extension's name, ...).
        attribute: String,
        /// The value it must have.
        value: String,
    },
    /// The attribute is present and its value starts with this prefix.
    Prefix {
        /// The attribute's name.
        attribute: String,
        /// The prefix its value must start with.
        prefix: String,
    },
    /// The attribute is present and its value ends with this suffix.
    Suffix {
        /// The attribute's name.
        attribute: String,
        /// The suffix its value must end with.
        suffix: String,
    },
    /// The attribute is present, with any value.
    Present(String),
}

/// Why a filter could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// The filter uses a dialect this data plane does not evaluate.
    #[error("{path}: the {dialect} dialect is not supported")]
    UnsupportedDialect {
        /// The field path of the expression, relative to the Trigger's spec.
        path: String,
        /// The dialect's name.
        dialect: &'static str,
    },
    /// A subscriptions-API expression sets no dialect at all, or more than one.
    #[error("{path}: expected exactly one dialect, found {found}")]
    NotOneDialect {
        /// The field path of the expression.
        path: String,
        /// How many dialects it sets.
        found: usize,
    },
}

impl Filter {
    /// The filter that passes every event.
    pub fn pass() -> Self {
        Filter::All(Vec::new())
    }

    /// Passes when every filter passes.
    pub fn all(filters: impl IntoIterator<Item = Filter>) -> Self {
        Filter::All(filters.into_iter().collect())
    }

    /// Passes when any filter passes.
    pub fn any(filters: impl IntoIterator<Item = Filter>) -> Self {
        Filter::Any(filters.into_iter().collect())
    }

    /// Passes when `filter` does not.
    #[allow(clippy::should_implement_trait)]
    pub fn not(filter: Filter) -> Self {
        Filter::Not(Box::new(filter))
    }

    /// `attribute` equals `value`.
    pub fn exact(attribute: impl Into<String>, value: impl Into<String>) -> Self {
        Filter::Exact {
            attribute: attribute.into(),
            value: value.into(),
        }
    }

    /// `attribute` starts with `prefix`.
    pub fn prefix(attribute: impl Into<String>, prefix: impl Into<String>) -> Self {
        Filter::Prefix {
            attribute: attribute.into(),
            prefix: prefix.into(),
        }
    }

    /// `attribute` ends with `suffix`.
    pub fn suffix(attribute: impl Into<String>, suffix: impl Into<String>) -> Self {
        Filter::Suffix {
            attribute: attribute.into(),
            suffix: suffix.into(),
        }
    }

    /// `attribute` is present.
    pub fn present(attribute: impl Into<String>) -> Self {
        Filter::Present(attribute.into())
    }

    /// The attributes filter of `spec.filter.attributes`: each attribute present and equal to its
    /// value, the empty value meaning "any value".
    pub fn from_attributes<'a>(attributes: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Filter::All(
            attributes
                .into_iter()
                .map(|(name, value)| {
                    if value.is_empty() {
                        Filter::present(name)
                    } else {
                        Filter::exact(name, value)
                    }
                })
                .collect(),
        )
    }

    /// Compiles a Trigger's filters: `spec.filters` when it is not empty, else
    /// `spec.filter.attributes`, else the filter that passes everything.
    pub fn compile(
        filter: Option<&TriggerFilter>,
        filters: &[SubscriptionsAPIFilter],
    ) -> Result<Self, FilterError> {
        if !filters.is_empty() {
            return Ok(Filter::All(
                filters
                    .iter()
                    .enumerate()
                    .map(|(i, f)| Filter::from_subscriptions_api(f, &format!("filters[{i}]")))
                    .collect::<Result<_, _>>()?,
            ));
        }
        Ok(match filter {
            Some(f) => {
                Filter::from_attributes(f.attributes.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            }
            None => Filter::pass(),
        })
    }

    /// Compiles one subscriptions-API expression; `path` names it in errors (`filters[0]`).
    pub fn from_subscriptions_api(
        filter: &SubscriptionsAPIFilter,
        path: &str,
    ) -> Result<Self, FilterError> {
        let found = usize::from(!filter.all.is_empty())
            + usize::from(!filter.any.is_empty())
            + usize::from(filter.not.is_some())
            + usize::from(!filter.exact.is_empty())
            + usize::from(!filter.prefix.is_empty())
            + usize::from(!filter.suffix.is_empty())
            + usize::from(!filter.sql.is_empty());
        if found != 1 {
            return Err(FilterError::NotOneDialect {
                path: path.to_owned(),
                found,
            });
        }
        let nested = |list: &[SubscriptionsAPIFilter], dialect: &str| {
            list.iter()
                .enumerate()
                .map(|(i, f)| Filter::from_subscriptions_api(f, &format!("{path}.{dialect}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
        };
        let pairs = |map: &BTreeMap<String, String>, make: fn(&str, &str) -> Filter| {
            let mut compiled: Vec<Filter> = map.iter().map(|(k, v)| make(k, v)).collect();
            if compiled.len() == 1 {
                compiled.remove(0)
            } else {
                Filter::All(compiled)
            }
        };
        Ok(if !filter.all.is_empty() {
            Filter::All(nested(&filter.all, "all")?)
        } else if !filter.any.is_empty() {
            Filter::Any(nested(&filter.any, "any")?)
        } else if let Some(not) = &filter.not {
            Filter::not(Filter::from_subscriptions_api(not, &format!("{path}.not"))?)
        } else if !filter.exact.is_empty() {
            pairs(&filter.exact, |k, v| Filter::exact(k, v))
        } else if !filter.prefix.is_empty() {
            pairs(&filter.prefix, |k, v| Filter::prefix(k, v))
        } else if !filter.suffix.is_empty() {
            pairs(&filter.suffix, |k, v| Filter::suffix(k, v))
        } else {
            return Err(FilterError::UnsupportedDialect {
                path: format!("{path}.cesql"),
                dialect: "cesql",
            });
        })
    }

    /// Whether `event` passes this filter.
    pub fn matches(&self, event: &Event) -> bool {
        self.matches_with(&|name| attribute_value(event, name))
    }

    /// Whether an event passes this filter, its attributes read through `attribute` (the
    /// canonical string form of a context attribute or extension, `None` when absent): a data
    /// plane can filter an event it has not decoded.
    pub fn matches_with<'a>(&self, attribute: &impl Fn(&str) -> Option<Cow<'a, str>>) -> bool {
        match self {
            Filter::All(filters) => filters.iter().all(|f| f.matches_with(attribute)),
            Filter::Any(filters) => filters.iter().any(|f| f.matches_with(attribute)),
            Filter::Not(filter) => !filter.matches_with(attribute),
            Filter::Exact {
                attribute: name,
                value,
            } => attribute(name).is_some_and(|v| v == value.as_str()),
            Filter::Prefix {
                attribute: name,
                prefix,
            } => attribute(name).is_some_and(|v| v.starts_with(prefix.as_str())),
            Filter::Suffix {
                attribute: name,
                suffix,
            } => attribute(name).is_some_and(|v| v.ends_with(suffix.as_str())),
            Filter::Present(name) => attribute(name).is_some(),
        }
    }
}

/// The value of a context attribute or extension of `event`, as a string (CloudEvents' canonical
/// string form), or `None` when the event does not carry it.
pub fn attribute_value<'e>(event: &'e Event, name: &str) -> Option<Cow<'e, str>> {
    match name {
        "id" => Some(Cow::Borrowed(event.id())),
        "type" => Some(Cow::Borrowed(event.ty())),
        "source" => Some(Cow::Borrowed(event.source().as_str())),
        "specversion" => Some(Cow::Owned(event.specversion().to_string())),
        "subject" => event.subject().map(Cow::Borrowed),
        "datacontenttype" => event.datacontenttype().map(Cow::Borrowed),
        "dataschema" => event.dataschema().map(|u| Cow::Borrowed(u.as_str())),
        "time" => event.time().map(|t| Cow::Owned(t.to_rfc3339())),
        extension => event.extension(extension).map(|v| match v {
            cloudevents::event::ExtensionValue::String(s) => Cow::Borrowed(s.as_str()),
            other => Cow::Owned(other.to_string()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudevents::{EventBuilder, EventBuilderV10};

    fn event() -> Event {
        EventBuilderV10::new()
            .id("42")
            .source("https://example.com/orders")
            .ty("com.example.order.created")
            .subject("order-7")
            .extension("region", "eu-west")
            .extension("priority", 3i64)
            .build()
            .unwrap()
    }

    fn subs(json: serde_json::Value) -> SubscriptionsAPIFilter {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn exact_matches_only_the_same_value() {
        assert!(Filter::exact("type", "com.example.order.created").matches(&event()));
        assert!(!Filter::exact("type", "com.example.order").matches(&event()));
    }

    #[test]
    fn exact_on_an_absent_attribute_fails() {
        assert!(!Filter::exact("dataschema", "x").matches(&event()));
    }

    #[test]
    fn extensions_match_by_their_string_form() {
        assert!(Filter::exact("region", "eu-west").matches(&event()));
        assert!(Filter::exact("priority", "3").matches(&event()));
    }

    #[test]
    fn prefix_and_suffix_match_the_ends_of_the_value() {
        assert!(Filter::prefix("source", "https://example.com/").matches(&event()));
        assert!(Filter::suffix("type", ".created").matches(&event()));
        assert!(!Filter::suffix("type", ".deleted").matches(&event()));
    }

    #[test]
    fn empty_attribute_value_means_present_with_any_value() {
        let f = Filter::from_attributes([("subject", ""), ("type", "com.example.order.created")]);
        assert!(f.matches(&event()));
        let absent = Filter::from_attributes([("dataschema", "")]);
        assert!(!absent.matches(&event()));
    }

    #[test]
    fn an_empty_filter_passes_everything() {
        assert!(Filter::compile(None, &[]).unwrap().matches(&event()));
        let empty = TriggerFilter::default();
        assert!(
            Filter::compile(Some(&empty), &[])
                .unwrap()
                .matches(&event())
        );
    }

    #[test]
    fn combinators_nest() {
        let f = Filter::any([
            Filter::exact("type", "nope"),
            Filter::all([
                Filter::present("region"),
                Filter::not(Filter::present("nope")),
            ]),
        ]);
        assert!(f.matches(&event()));
        assert!(!Filter::any([]).matches(&event()));
    }

    #[test]
    fn subscriptions_api_filters_take_precedence_over_attributes() {
        let attributes = TriggerFilter {
            attributes: [("type".to_owned(), "nope".to_owned())].into(),
        };
        let filters = [subs(
            serde_json::json!({"prefix": {"type": "com.example."}}),
        )];
        let f = Filter::compile(Some(&attributes), &filters).unwrap();
        assert!(f.matches(&event()));
    }

    #[test]
    fn subscriptions_api_dialects_compile_to_their_meaning() {
        let f = subs(serde_json::json!({
            "all": [
                {"exact": {"subject": "order-7"}},
                {"any": [{"suffix": {"type": ".deleted"}}, {"prefix": {"region": "eu-"}}]},
                {"not": {"exact": {"region": "us-east"}}}
            ]
        }));
        let compiled = Filter::from_subscriptions_api(&f, "filters[0]").unwrap();
        assert!(compiled.matches(&event()));
    }

    #[test]
    fn exact_with_several_attributes_requires_all_of_them() {
        let f = subs(serde_json::json!({"exact": {"subject": "order-7", "region": "us"}}));
        let compiled = Filter::from_subscriptions_api(&f, "filters[0]").unwrap();
        assert!(!compiled.matches(&event()));
    }

    #[test]
    fn cesql_is_rejected_with_its_path() {
        let filters = [
            subs(serde_json::json!({"exact": {"type": "x"}})),
            subs(serde_json::json!({"not": {"cesql": "type = 'x'"}})),
        ];
        let err = Filter::compile(None, &filters).unwrap_err();
        assert_eq!(
            err.to_string(),
            "filters[1].not.cesql: the cesql dialect is not supported"
        );
    }

    #[test]
    fn an_expression_with_two_dialects_is_rejected() {
        let f = subs(serde_json::json!({"exact": {"type": "x"}, "prefix": {"type": "y"}}));
        let err = Filter::from_subscriptions_api(&f, "filters[0]").unwrap_err();
        assert_eq!(
            err,
            FilterError::NotOneDialect {
                path: "filters[0]".into(),
                found: 2
            }
        );
    }
}
