//! A request as [`crate::http::handle`] reads it: method, URI, headers and body, from
//! hyper's parts or from Sluice's own HTTP/1.1 loop.
//!
//! The loop's requests keep their head's bytes and where each header lies in them; no
//! `HeaderMap` is built. Building one (a name parsed and hashed per header, the SDK's
//! `x-amz-*` names copied out, two allocations for the map) and dropping it took 4,900
//! of 40,800 instructions a SendMessage (`bench/callgrind.sh 20000 sqs-send`), for the
//! five headers routing reads and, with `--auth sigv4`, the signed ones.

use axum::body::Body;
use axum::http::{HeaderMap, Method, Uri};
use bytes::Bytes;

/// A header's name and value as offsets into its head: start and end of each.
pub type HeaderPlace = (usize, usize, usize, usize);

/// A request's method, URI and headers.
pub struct RequestHead {
    pub method: Method,
    pub uri: Uri,
    pub headers: Headers,
}

/// A request's headers, in the order they came.
pub enum Headers {
    /// hyper's, for the requests hyper serves.
    Map(HeaderMap),
    /// The loop's: the head's bytes and where each header is in them. httparse checked
    /// the names and values against the rules `http` checks them by (token names; values
    /// of visible ASCII, space, tab and bytes past 0x7F).
    Raw { head: Bytes, places: Box<[HeaderPlace]> },
}

impl Headers {
    /// Each header's name and value; a name as it came (hyper's in lower case).
    pub fn each(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let (map, raw) = match self {
            Headers::Map(map) => (Some(map), None),
            Headers::Raw { head, places } => (None, Some((head, places))),
        };
        let from_map = map.into_iter().flat_map(|map| map.iter().map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes())));
        let from_raw = raw.into_iter().flat_map(|(head, places)| {
            places
                .iter()
                .map(move |&(name, name_end, value, value_end)| (&head[name..name_end], &head[value..value_end]))
        });
        from_map.chain(from_raw)
    }

    /// The first value of the header named `name` (in lower case), as `HeaderMap::get`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.each().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v)
    }
}

/// A request's body: read whole by the loop, or to be read from hyper.
pub enum RequestBody {
    Whole(Bytes),
    Streaming(Body),
}

/// A header value as text when it is visible ASCII (tab allowed), as
/// `HeaderValue::to_str` gives it.
pub fn visible_text(value: &[u8]) -> Option<&str> {
    if value.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &'static str, names: &[&str]) -> Headers {
        let head = Bytes::from_static(text.as_bytes());
        let places = names
            .iter()
            .map(|name| {
                let at = text.find(&format!("{name}: ")).expect("the header is in the head");
                let value = at + name.len() + 2;
                let value_end = value + text[value..].find("\r\n").expect("a line ends");
                (at, at + name.len(), value, value_end)
            })
            .collect();
        Headers::Raw { head, places }
    }

    #[test]
    fn raw_headers_read_as_a_map_of_the_same_headers_would() {
        let text = "POST / HTTP/1.1\r\nHost: a\r\nX-Amz-Target: AmazonSQS.SendMessage\r\nx-amz-target: second\r\n\r\n";
        let raw = raw(text, &["Host", "X-Amz-Target", "x-amz-target"]);
        let mut map = HeaderMap::new();
        map.append("host", "a".parse().unwrap());
        map.append("x-amz-target", "AmazonSQS.SendMessage".parse().unwrap());
        map.append("x-amz-target", "second".parse().unwrap());
        let map = Headers::Map(map);
        for headers in [&raw, &map] {
            assert_eq!(headers.get("x-amz-target"), Some(&b"AmazonSQS.SendMessage"[..]));
            assert_eq!(headers.get("host"), Some(&b"a"[..]));
            assert_eq!(headers.get("authorization"), None);
            assert_eq!(headers.each().count(), 3);
        }
        let names: Vec<_> = raw.each().map(|(n, _)| n.to_ascii_lowercase()).collect();
        let map_names: Vec<_> = map.each().map(|(n, _)| n.to_vec()).collect();
        assert_eq!(names, map_names);
    }

    #[test]
    fn visible_text_is_what_header_value_to_str_takes() {
        for value in [&b"plain text\twith tab"[..], b"caf\xc3\xa9", b"bell\x07", b"del\x7f", b""] {
            let header = axum::http::HeaderValue::from_bytes(value);
            let expected = header.as_ref().ok().and_then(|h| h.to_str().ok());
            assert_eq!(visible_text(value), expected, "{value:?}");
        }
    }
}
