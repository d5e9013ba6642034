//! MD5 digests that SDKs verify on SendMessage and ReceiveMessage.

/// One message attribute as it goes into the digest.
pub struct DigestAttribute<'a> {
    pub name: &'a str,
    pub data_type: &'a str,
    pub value: AttributeBytes<'a>,
}

pub enum AttributeBytes<'a> {
    String(&'a str),
    Binary(&'a [u8]),
}

pub use sluice_md5::md5_hex;

fn push_len_prefixed(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    buf.extend_from_slice(bytes);
}

/// AWS's message-attribute digest: attributes sorted by name; each contributes its
/// length-prefixed name and data type (custom suffix included), a transport byte
/// (1 for String/Number, 2 for Binary, chosen by prefix), and its length-prefixed value.
/// Returns `None` for no attributes: AWS then omits the MD5 field entirely.
pub fn md5_of_message_attributes(attributes: &mut [DigestAttribute<'_>]) -> Option<String> {
    if attributes.is_empty() {
        return None;
    }
    attributes.sort_by(|a, b| a.name.cmp(b.name));
    let mut buf = Vec::new();
    for attr in attributes.iter() {
        push_len_prefixed(&mut buf, attr.name.as_bytes());
        push_len_prefixed(&mut buf, attr.data_type.as_bytes());
        match attr.value {
            AttributeBytes::String(s) => {
                buf.push(1);
                push_len_prefixed(&mut buf, s.as_bytes());
            }
            AttributeBytes::Binary(b) => {
                buf.push(2);
                push_len_prefixed(&mut buf, b);
            }
        }
    }
    Some(md5_hex(&buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_body_md5_is_the_standard_digest() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"hello"), "5d41402abc4b2a76b9719d911017c592");
    }

    #[test]
    fn no_attributes_gives_no_digest() {
        assert_eq!(md5_of_message_attributes(&mut []), None);
    }

    #[test]
    fn digest_is_independent_of_input_order_and_depends_on_type() {
        let mut a = vec![
            DigestAttribute { name: "b", data_type: "Number", value: AttributeBytes::String("1") },
            DigestAttribute { name: "a", data_type: "String", value: AttributeBytes::String("x") },
        ];
        let mut b = vec![
            DigestAttribute { name: "a", data_type: "String", value: AttributeBytes::String("x") },
            DigestAttribute { name: "b", data_type: "Number", value: AttributeBytes::String("1") },
        ];
        let mut c = vec![
            DigestAttribute { name: "a", data_type: "String", value: AttributeBytes::String("x") },
            DigestAttribute { name: "b", data_type: "Number.int", value: AttributeBytes::String("1") },
        ];
        let da = md5_of_message_attributes(&mut a).unwrap();
        assert_eq!(Some(da.clone()), md5_of_message_attributes(&mut b));
        assert_ne!(Some(da), md5_of_message_attributes(&mut c));
    }

    #[test]
    fn digest_matches_a_hand_built_buffer() {
        // name "k", type "String", transport 1, value "v"
        let mut buf = Vec::new();
        buf.extend_from_slice(&[0, 0, 0, 1, b'k', 0, 0, 0, 6]);
        buf.extend_from_slice(b"String");
        buf.extend_from_slice(&[1, 0, 0, 0, 1, b'v']);
        let mut attrs = vec![DigestAttribute { name: "k", data_type: "String", value: AttributeBytes::String("v") }];
        assert_eq!(md5_of_message_attributes(&mut attrs), Some(md5_hex(&buf)));
        let mut bin = vec![DigestAttribute { name: "k", data_type: "Binary", value: AttributeBytes::Binary(b"v") }];
        let mut buf2 = Vec::new();
        buf2.extend_from_slice(&[0, 0, 0, 1, b'k', 0, 0, 0, 6]);
        buf2.extend_from_slice(b"Binary");
        buf2.extend_from_slice(&[2, 0, 0, 0, 1, b'v']);
        assert_eq!(md5_of_message_attributes(&mut bin), Some(md5_hex(&buf2)));
    }
}
