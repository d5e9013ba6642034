//! Shard iterators: opaque, tamper-evident tokens naming a position in a shard, valid
//! for five minutes.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// "Shard iterators expire 5 minutes after they are returned to the requester."
pub const ITERATOR_LIFETIME_MS: u64 = 300_000;
const VERSION: u8 = 1;
const MAC_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IteratorToken {
    pub stream_id: i64,
    pub shard_uid: i64,
    pub position: u64,
    pub created_ms: u64,
}

fn mac(secret: &[u8], payload: &[u8]) -> [u8; MAC_LEN] {
    let digest = Sha256::new().chain_update(secret).chain_update(payload).chain_update(secret).finalize();
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&digest[..MAC_LEN]);
    out
}

impl IteratorToken {
    pub fn encode(&self, secret: &[u8]) -> String {
        let mut payload = vec![VERSION];
        payload.extend_from_slice(&self.stream_id.to_be_bytes());
        payload.extend_from_slice(&self.shard_uid.to_be_bytes());
        payload.extend_from_slice(&self.position.to_be_bytes());
        payload.extend_from_slice(&self.created_ms.to_be_bytes());
        let tag = mac(secret, &payload);
        payload.extend_from_slice(&tag);
        base64::engine::general_purpose::STANDARD.encode(payload)
    }

    /// `None` for anything not issued by this data directory, or altered.
    pub fn decode(text: &str, secret: &[u8]) -> Option<IteratorToken> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(text).ok()?;
        if bytes.len() != 33 + MAC_LEN || bytes[0] != VERSION {
            return None;
        }
        let (payload, tag) = bytes.split_at(33);
        if mac(secret, payload) != tag {
            return None;
        }
        let n = |i: usize| u64::from_be_bytes(payload[i..i + 8].try_into().unwrap_or_default());
        Some(IteratorToken { stream_id: n(1) as i64, shard_uid: n(9) as i64, position: n(17), created_ms: n(25) })
    }
}

/// `2024-01-01T00:00:00.000Z`, as ExpiredIteratorException messages show times.
pub fn iso(ms: u64) -> String {
    crate::sns::envelope::iso8601(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_tampering() {
        let t = IteratorToken { stream_id: 3, shard_uid: 9, position: 42, created_ms: 1_700_000_000_000 };
        let s = t.encode(b"secret");
        assert_eq!(IteratorToken::decode(&s, b"secret"), Some(t));
        assert_eq!(IteratorToken::decode(&s, b"other"), None);
        let mut bytes = base64::engine::general_purpose::STANDARD.decode(&s).unwrap();
        bytes[20] ^= 1;
        let forged = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert_eq!(IteratorToken::decode(&forged, b"secret"), None);
        assert_eq!(IteratorToken::decode("garbage", b"secret"), None);
    }
}
