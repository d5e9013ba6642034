//! Base64 of record payloads (Kinesis and Firehose `Data`, Firehose deliveries to HTTP
//! endpoints and transformation functions) and of blobs being length-checked, which every
//! PutRecords, PutRecordBatch and GetRecords converts record by record: a third of GetRecords' server
//! CPU was base64 encoding with the scalar `base64` crate. `base64-simd` (already in the
//! tree through the AWS SDK) picks SSE/AVX2 code at run time. It accepts and rejects
//! exactly what the `base64` crate's STANDARD engine does (padding required, no stray
//! bits after the last symbol), which the tests below check against it.

/// `data` was not canonical, padded, standard-alphabet base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not valid base64")]
pub struct InvalidBase64;

/// Decodes standard base64 with padding.
pub fn decode(text: &[u8]) -> Result<Vec<u8>, InvalidBase64> {
    base64_simd::STANDARD.decode_to_vec(text).map_err(|_| InvalidBase64)
}

/// The length `text` decodes to, without decoding it (length validation of blobs).
pub fn decoded_len(text: &[u8]) -> Result<usize, InvalidBase64> {
    base64_simd::STANDARD.check(text).map_err(|_| InvalidBase64)?;
    base64_simd::STANDARD.decoded_length(text).map_err(|_| InvalidBase64)
}

/// The standard base64 of `data`, with padding.
pub fn encode(data: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(data)
}

/// Appends the standard base64 of `data`, with padding, to `out`.
pub fn encode_into(data: &[u8], out: &mut Vec<u8>) {
    base64_simd::STANDARD.encode_append(data, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn reference(text: &[u8]) -> Result<Vec<u8>, ()> {
        base64::engine::general_purpose::STANDARD.decode(text).map_err(drop)
    }

    /// A small deterministic generator, so failures reproduce.
    fn bytes(seed: &mut u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (*seed >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn encodes_as_the_base64_crate_does() {
        let mut seed = 1;
        for len in (0..200).chain([1023, 1024, 1025, 4096, 65_537]) {
            let data = bytes(&mut seed, len);
            let mut out = b"prefix".to_vec();
            encode_into(&data, &mut out);
            let expected = base64::engine::general_purpose::STANDARD.encode(&data);
            assert_eq!(&out[6..], expected.as_bytes(), "length {len}");
            assert_eq!(encode(&data), expected, "length {len}");
            assert_eq!(decode(&out[6..]).unwrap(), data, "round trip of length {len}");
        }
    }

    #[test]
    fn accepts_and_rejects_what_the_base64_crate_does() {
        let cases: &[&[u8]] = &[
            b"",
            b"=",
            b"==",
            b"A",
            b"AA",
            b"AAA",
            b"AA==",
            b"AQ==",
            b"AR==",
            b"AB==",
            b"AAA=",
            b"AAE=",
            b"AAB=",
            b"AAAA",
            b"AA=A",
            b"A===",
            b"AA===",
            b"AA",
            b"AAAAA",
            b"AAAA====",
            b" AAAA",
            b"AAAA ",
            b"AA\nAA",
            b"AA-_",
            b"AA+/",
            b"****",
            b"\xff\xff\xff\xff",
            b"QUJD",
            b"QUJDRA==",
            b"QUJDRA",
            b"QUJDRA=",
            b"QUJDRA==QUJD",
        ];
        let agree = |text: &[u8], what: &str| {
            let expected = reference(text);
            assert_eq!(decode(text).map_err(drop), expected, "{what}");
            assert_eq!(decoded_len(text).map_err(drop), expected.map(|b| b.len()), "length of {what}");
        };
        for case in cases {
            agree(case, &String::from_utf8_lossy(case));
        }
        // Every single-byte change of valid texts of several lengths (both sides of the
        // SIMD block sizes) into every byte value.
        let mut seed = 7;
        for len in [1, 2, 3, 4, 5, 20, 31, 32, 33, 47, 48, 49, 64, 95, 96, 97] {
            let text = base64::engine::general_purpose::STANDARD.encode(bytes(&mut seed, len)).into_bytes();
            for at in 0..text.len() {
                for value in 0..=255u8 {
                    let mut changed = text.clone();
                    changed[at] = value;
                    agree(&changed, &format!("length {len}, byte {at} = {value}"));
                }
            }
        }
    }
}
