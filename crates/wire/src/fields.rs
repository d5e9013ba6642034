//! Text cut into fields at an ASCII separator (a queue URL's path, a credential scope,
//! a host's labels), scanning bytes: `str::split` with a `char` pattern paid about 125
//! instructions a field in its searcher, and addressing one SendMessage cut a dozen.

/// `text` split at each `separator`, as `text.split(separator as char)` gives it.
pub fn split_ascii(text: &str, separator: u8) -> impl Iterator<Item = &str> {
    assert!(separator.is_ascii(), "an ASCII separator never falls inside a character");
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let field = rest?;
        match field.bytes().position(|b| b == separator) {
            Some(at) => {
                rest = Some(&field[at + 1..]);
                Some(&field[..at])
            }
            None => {
                rest = None;
                Some(field)
            }
        }
    })
}

/// `text` cut at its first `separator`, as `text.split_once(separator as char)` gives it.
pub fn split_once_ascii(text: &str, separator: u8) -> Option<(&str, &str)> {
    let mut fields = split_ascii(text, separator);
    let first = fields.next()?;
    (first.len() < text.len()).then(|| (first, &text[first.len() + 1..]))
}

/// `text.split_once("://")`: a URL's scheme and the rest. The standard library's
/// substring search set up a searcher for each call, 330 instructions a SendMessage
/// (`bench/callgrind.sh`), for a URL whose first colon is usually the one.
pub fn split_scheme(text: &str) -> Option<(&str, &str)> {
    let bytes = text.as_bytes();
    let at = memchr::memchr_iter(b':', bytes).find(|&i| bytes[i + 1..].starts_with(b"//"))?;
    Some((&text[..at], &text[at + 3..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_scheme_is_split_once_at_the_separator() {
        for text in ["", ":", "://", "a://b", "h:1/x://y", "a:/b", "a:/", "x::///y", "q", "ü://ü:a//"] {
            assert_eq!(split_scheme(text), text.split_once("://"), "{text}");
        }
    }

    #[test]
    fn fields_are_what_str_split_gives() {
        for text in ["", "/", "//", "a", "/a", "a/", "a//b", "http://h:1/000000000000/q", "é/ü/€x/", "ü"] {
            let ours: Vec<&str> = split_ascii(text, b'/').collect();
            let std: Vec<&str> = text.split('/').collect();
            assert_eq!(ours, std, "{text:?}");
            assert_eq!(split_once_ascii(text, b'/'), text.split_once('/'), "{text:?}");
        }
    }
}
