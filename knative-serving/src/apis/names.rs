//! Kubernetes' name checks (`k8s.io/apimachinery/pkg/util/validation`) and Go's
//! `time.ParseDuration`, with their exact messages, for the validation of this module.

/// The messages of `validation.IsDNS1035Label`; empty when `value` is one.
pub(crate) fn dns1035_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !is_dns1035_label(value) {
        errs.push(regex_error(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
            "[a-z]([-a-z0-9]*[a-z0-9])?",
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// The messages of `validation.NameIsDNS1035Label`: as [`dns1035_label`], but a `prefix`
/// (a `generateName`) may end with a dash.
pub(crate) fn name_is_dns1035_label(name: &str, prefix: bool) -> Vec<String> {
    match name.strip_suffix('-') {
        Some(stem) if prefix => dns1035_label(&format!("{stem}a")),
        _ => dns1035_label(name),
    }
}

/// The messages of `validation.IsDNS1123Subdomain`; empty when `value` is one.
pub(crate) fn dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push(max_len_error(253));
    }
    if value.is_empty() || !value.split('.').all(matches_dns1123_label) {
        errs.push(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
            &["example.com"],
        ));
    }
    errs
}

/// The messages of `validation.IsQualifiedName` (`[prefix/]name`); empty when `value` is one.
pub(crate) fn qualified_name(value: &str) -> Vec<String> {
    const MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
    const FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
    const EXAMPLES: &[&str] = &["MyName", "my.name", "123-abc"];
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_owned());
            } else {
                errs.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(MSG, FMT, EXAMPLES)
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !is_qualified_name_part(name) {
        errs.push(format!("name part {}", regex_error(MSG, FMT, EXAMPLES)));
    }
    errs
}

/// Go's `fmt.Sprint` of a `[]string`: `[a b c]`.
pub(crate) fn go_string_slice(msgs: &[String]) -> String {
    format!("[{}]", msgs.join(" "))
}

/// Go's `time.ParseDuration`, in nanoseconds; `None` where Go returns an error.
pub(crate) fn parse_go_duration(s: &str) -> Option<i128> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(after) => {
                let frac_len = after.bytes().take_while(u8::is_ascii_digit).count();
                after.split_at(frac_len)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            _ => return None,
        };
        let int: i128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        let mut value = int.checked_mul(scale)?;
        let mut frac_scale = scale;
        for digit in frac_part.bytes() {
            frac_scale /= 10;
            value += i128::from(digit - b'0') * frac_scale;
        }
        total = total.checked_add(value)?;
        if total > i128::from(i64::MAX) + i128::from(negative) {
            return None;
        }
        rest = after;
    }
    Some(if negative { -total } else { total })
}

fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

/// `validation.RegexError`: the message, the examples and the regular expression.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{msg} (e.g. {}regex used for validation is '{fmt}')",
        examples.join(" or ")
    )
}

/// `[a-z]([-a-z0-9]*[a-z0-9])?`
fn is_dns1035_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    matches!(bytes.first(), Some(b'a'..=b'z'))
        && matches!(bytes.last(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
}

/// Whether `value` passes `validation.IsDNS1123Label`: at most 63 characters of
/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
pub(crate) fn is_dns1123_label(value: &str) -> bool {
    value.len() <= 63 && matches_dns1123_label(value)
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn matches_dns1123_label(value: &str) -> bool {
    let bytes = value.as_bytes();
    matches!(bytes.first(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && matches!(bytes.last(), Some(b'a'..=b'z' | b'0'..=b'9'))
        && bytes
            .iter()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_qualified_name_part(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1035_labels_start_with_a_letter_and_end_alphanumeric() {
        for ok in ["a", "abc", "a-1", "my-name"] {
            assert!(dns1035_label(ok).is_empty(), "{ok}");
        }
        for bad in ["", "1a", "a-", "A", "a_b", "a.b"] {
            assert_eq!(dns1035_label(bad).len(), 1, "{bad}");
        }
        assert_eq!(
            dns1035_label("A")[0],
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic \
             character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for \
             validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
        );
        assert_eq!(
            dns1035_label(&"a".repeat(64)),
            ["must be no more than 63 characters"]
        );
    }

    #[test]
    fn a_generate_name_prefix_may_end_with_a_dash() {
        assert!(name_is_dns1035_label("hello-", true).is_empty());
        assert_eq!(name_is_dns1035_label("hello-", false).len(), 1);
    }

    #[test]
    fn qualified_names_take_an_optional_subdomain_prefix() {
        for ok in ["foo", "Foo_Bar.baz", "example.com/Foo", "a"] {
            assert!(qualified_name(ok).is_empty(), "{ok}");
        }
        assert_eq!(qualified_name("/foo"), ["prefix part must be non-empty"]);
        assert_eq!(qualified_name("a/b/c").len(), 1);
        assert_eq!(
            qualified_name("-foo"),
            [
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an \
              alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is \
              '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
            ]
        );
    }

    #[test]
    fn dns1123_subdomains_are_dot_separated_labels() {
        assert!(dns1123_subdomain("example.com").is_empty());
        assert!(dns1123_subdomain("0.example").is_empty());
        assert_eq!(dns1123_subdomain("Example.com").len(), 1);
        assert_eq!(dns1123_subdomain("a..b").len(), 1);
    }

    #[test]
    fn go_durations_parse_like_time_parse_duration() {
        const S: i128 = 1_000_000_000;
        let cases: [(&str, Option<i128>); 12] = [
            ("0", Some(0)),
            ("6s", Some(6 * S)),
            ("1m30s", Some(90 * S)),
            ("1h", Some(3600 * S)),
            ("1.5h", Some(5400 * S)),
            ("-2s", Some(-2 * S)),
            ("500ms", Some(S / 2)),
            (".5s", Some(S / 2)),
            ("10", None),
            ("", None),
            ("1d", None),
            ("s", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_go_duration(input), want, "{input}");
        }
    }
}
