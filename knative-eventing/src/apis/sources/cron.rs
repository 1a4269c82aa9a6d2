//! Validation of PingSource schedules: standard five-field cron expressions as robfig/cron's
//! `ParseStandard` (which Knative uses) accepts them.
//!
//! The `cron` crate is not used here because it reads six or seven fields and numbers the days
//! of the week 1–7 from Sunday, where standard cron numbers them 0–6.

/// Why a schedule is not a standard cron expression, in robfig/cron's words where it has them.
pub fn validate_schedule(schedule: &str) -> Result<(), String> {
    let schedule = schedule.trim();
    if schedule.is_empty() {
        return Err("empty spec string".to_owned());
    }
    if let Some(descriptor) = schedule.strip_prefix('@') {
        return match descriptor {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                Ok(())
            }
            _ => match descriptor.strip_prefix("every ") {
                Some(duration) if is_go_duration(duration.trim()) => Ok(()),
                Some(duration) => Err(format!("failed to parse duration @every {duration}")),
                None => Err(format!("unrecognized descriptor: {schedule}")),
            },
        };
    }
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let bounds: [(u32, u32, &[&str]); 5] = [
        (0, 59, &[]),
        (0, 23, &[]),
        (1, 31, &[]),
        (1, 12, MONTHS),
        (0, 6, DAYS),
    ];
    for (field, (min, max, names)) in fields.iter().zip(bounds) {
        for part in field.split(',') {
            validate_part(part, min, max, names)?;
        }
    }
    Ok(())
}

fn validate_part(part: &str, min: u32, max: u32, names: &[&str]) -> Result<(), String> {
    let (range, step) = match part.split_once('/') {
        Some((range, step)) => (range, Some(step)),
        None => (part, None),
    };
    let (start, end) = if range == "*" || range == "?" {
        (min, max)
    } else {
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        (value(lo, names)?, value(hi, names)?)
    };
    if start < min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({min}): {part}"
        ));
    }
    if end > max {
        return Err(format!(
            "end of range ({end}) above maximum ({max}): {part}"
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {part}"
        ));
    }
    if let Some(step) = step {
        match step.parse::<u32>() {
            Ok(0) => return Err(format!("step of range should be a positive number: {part}")),
            Ok(_) => {}
            Err(_) => return Err(format!("failed to parse int from {step}")),
        }
    }
    Ok(())
}

fn value(text: &str, names: &[&str]) -> Result<u32, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        return Ok(u32::try_from(i).unwrap_or(u32::MAX) + if names.len() == 12 { 1 } else { 0 });
    }
    text.parse::<u32>()
        .map_err(|_| format!("failed to parse int from {text}"))
}

/// Go's `time.ParseDuration` syntax: a sequence of decimal numbers with units.
fn is_go_duration(text: &str) -> bool {
    let mut rest = text;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .iter()
            .find(|u| rest.starts_with(*u) && !(**u == "m" && rest.starts_with("ms")));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::validate_schedule;

    #[test]
    fn standard_schedules_are_accepted() {
        for ok in [
            "*/1 * * * *",
            "0 9 * * MON-FRI",
            "15,45 */2 1-15 jan,jul 0",
            "@hourly",
            "@every 1h30m",
        ] {
            assert_eq!(validate_schedule(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn out_of_range_values_name_the_bound() {
        assert_eq!(
            validate_schedule("60 * * * *").unwrap_err(),
            "end of range (60) above maximum (59): 60"
        );
        assert_eq!(
            validate_schedule("* * * * 7").unwrap_err(),
            "end of range (7) above maximum (6): 7"
        );
    }

    #[test]
    fn wrong_field_counts_and_garbage_are_rejected() {
        assert_eq!(
            validate_schedule("* * * *").unwrap_err(),
            "expected exactly 5 fields, found 4: [* * * *]"
        );
        assert_eq!(
            validate_schedule("* * * * bogus").unwrap_err(),
            "failed to parse int from bogus"
        );
        assert!(validate_schedule("@every soon").is_err());
        assert!(validate_schedule("").is_err());
    }
}
