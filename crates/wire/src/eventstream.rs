//! AWS event stream framing (`application/vnd.amazon.eventstream`), used by
//! SubscribeToShard: each message is a prelude (total length, headers length, CRC32 of
//! the two), headers, payload, and a CRC32 of everything before it.

/// IEEE CRC-32, as the framing requires.
pub fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, entry) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            }
            *entry = c;
        }
        t
    });
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// Header value type 7: a UTF-8 string.
const STRING_HEADER: u8 = 7;

/// One message with string headers.
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(STRING_HEADER);
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude_crc = crc32(&out);
    out.extend_from_slice(&prelude_crc.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let message_crc = crc32(&out);
    out.extend_from_slice(&message_crc.to_be_bytes());
    out
}

/// An event of an AWS JSON event stream.
pub fn event(event_type: &str, json_payload: &[u8]) -> Vec<u8> {
    encode(
        &[(":message-type", "event"), (":event-type", event_type), (":content-type", "application/x-amz-json-1.1")],
        json_payload,
    )
}

/// A decoded message: string headers and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

/// Decodes one message from the front of `data`; returns it and the bytes it used.
pub fn decode(data: &[u8]) -> Option<(Message, usize)> {
    if data.len() < 16 {
        return None;
    }
    let total = u32::from_be_bytes(data[0..4].try_into().ok()?) as usize;
    let headers_len = u32::from_be_bytes(data[4..8].try_into().ok()?) as usize;
    if data.len() < total || total < 16 + headers_len {
        return None;
    }
    if crc32(&data[0..8]) != u32::from_be_bytes(data[8..12].try_into().ok()?) {
        return None;
    }
    if crc32(&data[..total - 4]) != u32::from_be_bytes(data[total - 4..total].try_into().ok()?) {
        return None;
    }
    let mut headers = Vec::new();
    let mut i = 12;
    while i < 12 + headers_len {
        let name_len = data[i] as usize;
        let name = String::from_utf8(data[i + 1..i + 1 + name_len].to_vec()).ok()?;
        i += 1 + name_len;
        if data[i] != STRING_HEADER {
            return None;
        }
        let value_len = u16::from_be_bytes(data[i + 1..i + 3].try_into().ok()?) as usize;
        let value = String::from_utf8(data[i + 3..i + 3 + value_len].to_vec()).ok()?;
        i += 3 + value_len;
        headers.push((name, value));
    }
    Some((Message { headers, payload: data[12 + headers_len..total - 4].to_vec() }, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn messages_round_trip_and_detect_corruption() {
        let bytes = event("initial-response", b"{}");
        let (m, used) = decode(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(m.payload, b"{}");
        assert!(m.headers.contains(&(":event-type".into(), "initial-response".into())));
        let mut bad = bytes.clone();
        let last = bad.len() - 6;
        bad[last] ^= 1;
        assert!(decode(&bad).is_none());
    }
}
