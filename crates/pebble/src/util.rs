//! Small formats Pebble shares with Go: durations, timestamps and command lines.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Parses a Go `time.ParseDuration` string ("500ms", "1m30s", "1.5h", "-0s" is refused).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("time: invalid duration \"{text}\"");
    let s = text.trim();
    if s.is_empty() {
        return Err(bad());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s.starts_with('-') {
        return Err(format!("duration \"{text}\" must not be negative"));
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total = 0f64;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        if start == i {
            return Err(bad());
        }
        let number: f64 = s[start..i].parse().map_err(|_| bad())?;
        let unit_start = i;
        while i < bytes.len() && !(bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let scale = match &s[unit_start..i] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => return Err(format!("time: missing unit in duration \"{text}\"")),
            unit => {
                return Err(format!(
                    "time: unknown unit \"{unit}\" in duration \"{text}\""
                ))
            }
        };
        total += number * scale;
    }
    if !total.is_finite() || total > 1e10 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

/// Formats a duration the way Go's `Duration.String` does ("500ms", "30s", "1m0s").
pub fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        let (unit, div) = if nanos < 1_000 {
            ("ns", 1u128)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", frac(nanos, div));
    }
    let hours = nanos / 3_600_000_000_000;
    let rest = nanos % 3_600_000_000_000;
    let minutes = rest / 60_000_000_000;
    let secs = rest % 60_000_000_000;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{}s", frac(secs, 1_000_000_000)));
    out
}

fn frac(value: u128, div: u128) -> String {
    let whole = value / div;
    let part = value % div;
    if part == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{part:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Now, as Pebble writes times: RFC 3339 in UTC with sub-second digits.
pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Formats a time as RFC 3339.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Parses an RFC 3339 time (Go's parser accepts any sub-second precision and offsets).
pub fn parse_rfc3339(text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| format!("invalid time {text:?}: {e}"))
}

/// Splits a command line as Pebble does (shell-like quoting, no shell), returning the base
/// arguments and the default extra arguments written in `[ … ]`.
pub fn parse_command(text: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let words = shlex_split(text)?;
    let mut base = Vec::new();
    let mut extra = Vec::new();
    let mut in_extra = false;
    let mut closed = false;
    for word in words {
        if closed {
            return Err(format!(
                "cannot have any arguments after [ ... ] group in command {text:?}"
            ));
        }
        match word.as_str() {
            "[" if in_extra => {
                return Err(format!("cannot nest [ ... ] groups in command {text:?}"));
            }
            "[" => {
                if base.is_empty() {
                    return Err(format!(
                        "cannot start command with [ ... ] group in command {text:?}"
                    ));
                }
                in_extra = true;
            }
            "]" if in_extra => {
                in_extra = false;
                closed = true;
            }
            "]" => return Err(format!("cannot have ] without [ in command {text:?}")),
            _ if in_extra => extra.push(word),
            _ => base.push(word),
        }
    }
    if in_extra {
        return Err(format!("cannot have [ without ] in command {text:?}"));
    }
    Ok((base, extra))
}

/// POSIX-shell-like word splitting: whitespace separates words; single quotes are literal;
/// double quotes allow backslash escapes of `"`, `\`, `$` and backquote; a backslash outside
/// quotes escapes the next character.
pub fn shlex_split(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut have_word = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if have_word {
                    words.push(std::mem::take(&mut word));
                    have_word = false;
                }
            }
            '\'' => {
                have_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => {
                            return Err(format!("cannot parse command {text:?}: unclosed quote"))
                        }
                    }
                }
            }
            '"' => {
                have_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => {
                                return Err(format!(
                                    "cannot parse command {text:?}: unclosed quote"
                                ))
                            }
                        },
                        Some(c) => word.push(c),
                        None => {
                            return Err(format!("cannot parse command {text:?}: unclosed quote"))
                        }
                    }
                }
            }
            '\\' => {
                have_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => word.push(c),
                    None => {
                        return Err(format!("cannot parse command {text:?}: trailing backslash"))
                    }
                }
            }
            c => {
                have_word = true;
                word.push(c);
            }
        }
    }
    if have_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip_in_go_form() {
        for (text, formatted) in [
            ("500ms", "500ms"),
            ("30s", "30s"),
            ("1m", "1m0s"),
            ("1m30s", "1m30s"),
            ("1.5s", "1.5s"),
            ("2h", "2h0m0s"),
            ("0", "0s"),
            ("250us", "250µs"),
        ] {
            let d = parse_duration(text).unwrap();
            assert_eq!(format_duration(d), formatted, "{text}");
        }
        for bad in ["", "5", "s", "1x", "-1s", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn commands_split_with_default_arguments() {
        assert_eq!(
            parse_command("patroni '/etc/p a.yml' [ --verbose -x ]").unwrap(),
            (
                vec!["patroni".to_string(), "/etc/p a.yml".into()],
                vec!["--verbose".to_string(), "-x".into()]
            )
        );
        assert_eq!(
            parse_command(r#"sh -c "echo \"hi\" $X""#).unwrap().0,
            vec!["sh", "-c", "echo \"hi\" $X"]
        );
        assert!(parse_command("[ a ]").is_err());
        assert!(parse_command("a [ b ] c").is_err());
        assert!(parse_command("a [ b [ c ] ]").is_err());
        assert!(parse_command("a 'b").is_err());
    }
}
