//! S3 object keys as Firehose names them (AWS "Amazon S3 object name format" and
//! "Custom prefixes for Amazon S3 objects"): `<prefix><stream>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid><ext>`,
//! where a prefix without expressions gets the UTC time prefix `YYYY/MM/dd/HH/` appended,
//! and prefixes may use `!{timestamp:<Java DateTimeFormatter pattern>}`,
//! `!{firehose:random-string}` and (error prefixes only) `!{firehose:error-output-type}`.

use super::partition::PartitionKeys;
use rand_core::RngCore;

/// Civil UTC date and time of epoch milliseconds.
pub fn utc(ms: u64) -> sluice_wire::civil::DateTime {
    sluice_wire::civil::from_epoch_ms(ms as i64)
}

/// Formats with the subset of Java's DateTimeFormatter Firehose prefixes use: `y`, `M`,
/// `d`, `H`, `m`, `s`, `S` (repeated for width) and `'quoted'` literals; other letters are
/// rejected, other characters copied.
pub fn format_timestamp(pattern: &str, ms: u64) -> Result<String, String> {
    let t = utc(ms);
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            let end =
                chars[i + 1..].iter().position(|&x| x == '\'').ok_or("unterminated quote in timestamp pattern")?;
            out.extend(&chars[i + 1..i + 1 + end]);
            i += end + 2;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            out.push(c);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        let value: i64 = match c {
            'y' | 'u' => {
                if run == 2 {
                    out.push_str(&format!("{:02}", t.year.rem_euclid(100)));
                    i += run;
                    continue;
                }
                t.year
            }
            'M' => i64::from(t.month),
            'd' => i64::from(t.day),
            'H' => i64::from(t.hour),
            'm' => i64::from(t.minute),
            's' => i64::from(t.second),
            'S' => {
                let digits = format!("{:03}", t.millis);
                out.push_str(&format!("{:0<width$}", &digits[..run.min(3)], width = run));
                i += run;
                continue;
            }
            other => return Err(format!("unsupported pattern letter '{other}' in timestamp expression")),
        };
        out.push_str(&format!("{value:0run$}"));
        i += run;
    }
    Ok(out)
}

/// `ms` shifted by the UTC offset `zone` (CustomTimeZone, an IANA name) has at that
/// instant, so the civil-time formatting above yields the zone's local time; UTC when
/// unset. AWS applies the zone to the time prefix and to the time in object names.
pub fn zoned_ms(ms: u64, zone: Option<&str>) -> Result<u64, String> {
    let Some(zone) = zone.filter(|z| !z.is_empty() && *z != "UTC") else { return Ok(ms) };
    let tz =
        jiff::tz::TimeZone::get(zone).map_err(|_| format!("CustomTimeZone {zone} is not a supported time zone."))?;
    let instant = jiff::Timestamp::from_millisecond(ms as i64).map_err(|e| e.to_string())?;
    let offset_ms = i64::from(tz.to_offset(instant).seconds()) * 1000;
    Ok((ms as i64 + offset_ms).max(0) as u64)
}

/// The 11-character random string of `!{firehose:random-string}`.
pub fn random_string() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand_core::OsRng;
    (0..11).map(|_| ALPHABET[(rng.next_u32() as usize) % ALPHABET.len()] as char).collect()
}

/// `!{namespace:value}` expressions in a prefix.
fn expressions(prefix: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = prefix;
    while let Some(start) = rest.find("!{") {
        let end = rest[start..].find('}').ok_or("an expression in the prefix is not closed with '}'")?;
        let body = &rest[start + 2..start + end];
        let (ns, value) = body.split_once(':').ok_or_else(|| format!("invalid expression !{{{body}}}"))?;
        out.push((ns.to_owned(), value.to_owned()));
        rest = &rest[start + end + 1..];
    }
    Ok(out)
}

/// Validates Prefix and ErrorOutputPrefix together, as CreateDeliveryStream and
/// UpdateDestination do.
pub fn validate(prefix: Option<&str>, error_prefix: Option<&str>, dynamic_partitioning: bool) -> Result<(), String> {
    let prefix_exprs = expressions(prefix.unwrap_or(""))?;
    let error_exprs = expressions(error_prefix.unwrap_or(""))?;
    for (ns, value) in &prefix_exprs {
        match (ns.as_str(), value.as_str()) {
            ("timestamp", pattern) => {
                format_timestamp(pattern, 0)?;
            }
            ("firehose", "random-string") => {}
            ("firehose", "error-output-type") => {
                return Err(
                    "The 'firehose:error-output-type' expression is only allowed in the ErrorOutputPrefix.".into()
                )
            }
            ("partitionKeyFromQuery" | "partitionKeyFromLambda", _) if dynamic_partitioning => {}
            ("partitionKeyFromQuery" | "partitionKeyFromLambda", _) => {
                return Err(
                    "Dynamic partitioning expressions require DynamicPartitioningConfiguration to be enabled.".into()
                )
            }
            (ns, value) => return Err(format!("Unsupported expression !{{{ns}:{value}}} in the Prefix.")),
        }
    }
    for (ns, value) in &error_exprs {
        match (ns.as_str(), value.as_str()) {
            ("timestamp", pattern) => {
                format_timestamp(pattern, 0)?;
            }
            ("firehose", "random-string" | "error-output-type") => {}
            (ns, value) => return Err(format!("Unsupported expression !{{{ns}:{value}}} in the ErrorOutputPrefix.")),
        }
    }
    if !prefix_exprs.is_empty() && error_prefix.is_none_or(str::is_empty) {
        return Err("ErrorOutputPrefix cannot be null or empty when Prefix contains expressions.".into());
    }
    Ok(())
}

/// Evaluates a prefix for an object whose oldest record arrived at `ms`; a prefix without
/// expressions gets the default `YYYY/MM/dd/HH/` time prefix appended.
pub fn evaluate(
    prefix: Option<&str>,
    ms: u64,
    error_output_type: Option<&str>,
    partition: Option<&PartitionKeys>,
) -> Result<String, String> {
    let prefix = prefix.unwrap_or("");
    if expressions(prefix)?.is_empty() {
        return Ok(format!("{prefix}{}", format_timestamp("yyyy/MM/dd/HH/", ms)?));
    }
    let mut out = String::new();
    let mut rest = prefix;
    while let Some(start) = rest.find("!{") {
        out.push_str(&rest[..start]);
        let end = start + rest[start..].find('}').unwrap_or(rest.len() - start - 1);
        let body = &rest[start + 2..end];
        let (ns, value) = body.split_once(':').unwrap_or((body, ""));
        match (ns, value) {
            ("timestamp", pattern) => out.push_str(&format_timestamp(pattern, ms)?),
            ("firehose", "random-string") => out.push_str(&random_string()),
            ("firehose", "error-output-type") => out.push_str(error_output_type.unwrap_or("processing-failed")),
            (ns @ ("partitionKeyFromQuery" | "partitionKeyFromLambda"), key) => out.push_str(
                partition
                    .and_then(|p| p.get(ns, key))
                    .ok_or_else(|| format!("The partition key {key} ({ns}) is missing."))?,
            ),
            _ => {}
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The values of the partition keys a prefix uses, in order: records with equal values
/// share an object. A key the record lacks is an error.
pub fn partition_values(prefix: Option<&str>, partition: &PartitionKeys) -> Result<Vec<String>, String> {
    expressions(prefix.unwrap_or(""))?
        .into_iter()
        .filter(|(ns, _)| ns.starts_with("partitionKeyFrom"))
        .map(|(ns, key)| {
            partition
                .get(&ns, &key)
                .map(str::to_owned)
                .ok_or_else(|| format!("The partition key {key} ({ns}) is missing."))
        })
        .collect()
}

/// The full key of an object.
pub fn object_key(
    prefix: Option<&str>,
    stream: &str,
    version: u64,
    oldest_ms: u64,
    extension: &str,
    partition: Option<&PartitionKeys>,
) -> Result<String, String> {
    let when = format_timestamp("yyyy-MM-dd-HH-mm-ss", oldest_ms)?;
    let prefix = evaluate(prefix, oldest_ms, None, partition)?;
    Ok(format!("{prefix}{stream}-{version}-{when}-{}{extension}", uuid::Uuid::new_v4()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-03-05T07:08:09.123Z
    const T: u64 = 1_772_694_489_123;

    #[test]
    fn java_patterns_and_default_prefix() {
        assert_eq!(format_timestamp("yyyy/MM/dd/HH/", T).unwrap(), "2026/03/05/07/");
        assert_eq!(format_timestamp("'year='yyyy'/month='MM", T).unwrap(), "year=2026/month=03");
        assert_eq!(format_timestamp("yy-M-d H:m:s.SSS", T).unwrap(), "26-3-5 7:8:9.123");
        assert!(format_timestamp("yyyy-QQ", T).is_err());
        assert_eq!(evaluate(None, T, None, None).unwrap(), "2026/03/05/07/");
        assert_eq!(evaluate(Some("logs/"), T, None, None).unwrap(), "logs/2026/03/05/07/");
        assert_eq!(evaluate(Some("logs/!{timestamp:yyyy}/x"), T, None, None).unwrap(), "logs/2026/x");
        assert_eq!(
            evaluate(Some("err/!{firehose:error-output-type}/"), T, Some("processing-failed"), None)
                .unwrap()
                .split('/')
                .nth(1),
            Some("processing-failed")
        );
        let r = evaluate(Some("!{firehose:random-string}/"), T, None, None).unwrap();
        assert_eq!(r.len(), 12);
    }

    #[test]
    fn custom_time_zones() {
        // 07:08 UTC is 16:08 in Tokyo (UTC+9, no DST) and 02:08 in New York in March (EST).
        assert_eq!(format_timestamp("HH", zoned_ms(T, Some("Asia/Tokyo")).unwrap()).unwrap(), "16");
        assert_eq!(format_timestamp("dd HH", zoned_ms(T, Some("America/New_York")).unwrap()).unwrap(), "05 02");
        assert_eq!(zoned_ms(T, None).unwrap(), T);
        assert_eq!(zoned_ms(T, Some("UTC")).unwrap(), T);
        assert!(zoned_ms(T, Some("Mars/Olympus")).is_err());
    }

    #[test]
    fn object_names_follow_aws_layout() {
        let key = object_key(None, "orders", 1, T, ".gz", None).unwrap();
        let (prefix, name) = key.rsplit_once('/').unwrap();
        assert_eq!(prefix, "2026/03/05/07");
        assert!(name.starts_with("orders-1-2026-03-05-07-08-09-"), "{name}");
        assert!(name.ends_with(".gz"));
        assert_eq!(name.len(), "orders-1-2026-03-05-07-08-09-".len() + 36 + 3);
    }

    #[test]
    fn prefix_rules() {
        assert!(validate(Some("a/!{timestamp:yyyy}/"), None, false).is_err(), "error prefix required");
        assert!(validate(Some("a/!{timestamp:yyyy}/"), Some("err/"), false).is_ok());
        assert!(validate(Some("a/!{firehose:error-output-type}/"), Some("e/"), false).is_err());
        assert!(validate(Some("a/!{partitionKeyFromQuery:id}/"), Some("e/"), false).is_err());
        assert!(validate(Some("a/!{nope:x}/"), Some("e/"), false).is_err());
        assert!(validate(Some("plain/"), None, false).is_ok());
        assert!(validate(Some("a/!{partitionKeyFromQuery:id}/"), Some("e/"), true).is_ok());
    }

    #[test]
    fn partition_keys_in_prefixes() {
        let mut p = PartitionKeys::default();
        p.query.insert("customer".into(), "c7".into());
        p.lambda.insert("region".into(), "eu".into());
        let prefix = Some("c=!{partitionKeyFromQuery:customer}/r=!{partitionKeyFromLambda:region}/!{timestamp:yyyy}/");
        assert_eq!(evaluate(prefix, T, None, Some(&p)).unwrap(), "c=c7/r=eu/2026/");
        assert_eq!(partition_values(prefix, &p).unwrap(), vec!["c7", "eu"]);
        p.lambda.clear();
        assert!(evaluate(prefix, T, None, Some(&p)).is_err());
        assert!(partition_values(prefix, &p).is_err());
    }
}
