//! JSON string literals written byte for byte as serde_json writes them, a block at a
//! time: serde_json looks every byte up in a table (about ten instructions a byte under
//! callgrind), and a received message's body is most of a ReceiveMessage answer.

/// Bytes scanned together; a block without a byte to escape is copied whole.
const BLOCK: usize = 32;

/// `text` as a JSON string literal, quotes included, appended to `out`: `"` and `\`
/// escaped with a backslash, the controls with a short escape where JSON has one and
/// `\u00xx` (lower-case hex) otherwise; everything else, DEL and non-ASCII included, as
/// it is. This is serde_json's output exactly.
pub fn write_string(out: &mut Vec<u8>, text: &str) {
    crate::wide::with_avx2(|| write_string_blocks(out, text));
}

#[inline(always)]
fn write_string_blocks(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut unwritten = 0;
    let blocks = bytes.chunks_exact(BLOCK);
    let tail_start = bytes.len() - blocks.remainder().len();
    for (index, block) in blocks.enumerate() {
        // Arithmetic alone over a fixed length, no early exit, so that the compiler
        // vectorises the test.
        let escapes = block.iter().fold(false, |seen, &b| seen | (b < 0x20) | (b == b'"') | (b == b'\\'));
        if escapes {
            escape_within(out, bytes, &mut unwritten, index * BLOCK..(index + 1) * BLOCK);
        }
    }
    escape_within(out, bytes, &mut unwritten, tail_start..bytes.len());
    out.extend_from_slice(&bytes[unwritten..]);
    out.push(b'"');
}

/// Where the string literal whose bytes (after its opening quote) begin `bytes` ends (the
/// place of its closing quote) and its text, if no backslash or control byte comes
/// before it and its bytes are UTF-8 (a literal that needs no decoding).
/// The quote found by `memchr` (vector code picked for the CPU at run time), the controls
/// by a minimum the compiler vectorises: serde_json reads strings eight bytes at a time,
/// 4% of a SendMessage's instructions for a 1 KiB body, and a block test like
/// [`write_string`]'s about 1.4 instructions a byte.
pub fn plain_string(bytes: &[u8]) -> Option<(usize, &str)> {
    let end = memchr::memchr2(b'"', b'\\', bytes)?;
    let text = &bytes[..end];
    let (lowest, highest) = crate::wide::with_avx2(|| lowest_and_highest(text));
    if bytes[end] != b'"' || lowest < 0x20 {
        return None;
    }
    if highest < 0x80 {
        // SAFETY: every byte of `text` is below 0x80 (its highest is), and a byte below
        // 0x80 is a whole UTF-8 character by itself, so `text` is valid UTF-8. Checked
        // here in the same pass as the controls: `from_utf8` would read a 1 KiB body
        // again at about a byte an instruction.
        return Some((end, unsafe { std::str::from_utf8_unchecked(text) }));
    }
    std::str::from_utf8(text).ok().map(|text| (end, text))
}

#[inline(always)]
fn lowest_and_highest(bytes: &[u8]) -> (u8, u8) {
    bytes.iter().fold((u8::MAX, 0), |(lowest, highest), &b| (lowest.min(b), highest.max(b)))
}

/// Writes the bytes before each byte to escape in `range`, then its escape; `unwritten`
/// is where the bytes not yet written begin.
fn escape_within(out: &mut Vec<u8>, bytes: &[u8], unwritten: &mut usize, range: std::ops::Range<usize>) {
    for at in range {
        let b = bytes[at];
        if b < 0x20 || b == b'"' || b == b'\\' {
            out.extend_from_slice(&bytes[*unwritten..at]);
            push_escape(out, b);
            *unwritten = at + 1;
        }
    }
}

fn push_escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match byte {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        0x08 => out.extend_from_slice(b"\\b"),
        b'\t' => out.extend_from_slice(b"\\t"),
        b'\n' => out.extend_from_slice(b"\\n"),
        0x0C => out.extend_from_slice(b"\\f"),
        b'\r' => out.extend_from_slice(b"\\r"),
        _ => {
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 0xF)]])
        }
    }
}

#[cfg(test)]
mod tests {
    /// The end of a plain literal wherever its quote falls against the blocks; none
    /// past a backslash or control byte before it, or without a closing quote.
    #[test]
    fn a_plain_string_ends_at_its_quote_and_only_if_nothing_needs_decoding() {
        for length in [0, 1, 31, 32, 33, 63, 64, 65, 100] {
            let text = "é".repeat(length / 2) + &"a".repeat(length % 2);
            let literal = format!("{text}\",rest");
            assert_eq!(plain_string(literal.as_bytes()), Some((text.len(), text.as_str())), "{length}");
            let ascii = "a".repeat(length);
            assert_eq!(plain_string(format!("{ascii}\"").as_bytes()), Some((length, ascii.as_str())));
            // Not UTF-8: a lone continuation byte, a truncated sequence.
            for broken in [&[0x80u8][..], &[0xC3], &[b'a', 0xE2, 0x82]] {
                assert_eq!(plain_string(&[broken, b"\""].concat()), None);
            }
            assert_eq!(plain_string(text.as_bytes()), None, "no closing quote");
            for stop in [b'\\', b'\n', 0x00, 0x1F] {
                for at in [0, text.len() / 2, text.len()] {
                    let mut bytes = literal.clone().into_bytes();
                    if !text.is_char_boundary(at) {
                        continue;
                    }
                    bytes.insert(at, stop);
                    assert_eq!(plain_string(&bytes), None, "{length} {stop} at {at}");
                }
            }
            // A backslash after the quote is the next token's business.
            assert_eq!(plain_string(format!("{text}\"\\").as_bytes()), Some((text.len(), text.as_str())));
        }
    }

    use super::*;

    fn written(text: &str) -> String {
        let mut out = Vec::new();
        write_string(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn writes_what_serde_json_writes() {
        let every_ascii: String = (0u8..=0x7F).map(char::from).collect();
        let long_plain = "plain text of a message body ".repeat(40);
        let mut cases = vec![
            String::new(),
            every_ascii.clone(),
            format!("{long_plain}\"{long_plain}"),
            format!("{}\\", "x".repeat(BLOCK - 1)),
            format!("{}\n{}", "y".repeat(BLOCK), "z".repeat(BLOCK + 3)),
            "é ✓ 𝄞 \u{7F} \u{FFFD}".to_owned(),
            long_plain,
        ];
        // Every ASCII byte at every offset across a block's edge.
        for offset in [0, 1, BLOCK - 1, BLOCK, BLOCK + 1, 2 * BLOCK - 1] {
            for c in every_ascii.chars() {
                cases.push(format!("{}{c}{}", "a".repeat(offset), "b".repeat(5)));
            }
        }
        for text in cases {
            let expected = serde_json::to_string(&text).unwrap();
            assert_eq!(written(&text), expected, "{text:?}");
            // The baseline build too, whichever `write_string` picks on this CPU.
            let mut baseline = Vec::new();
            write_string_blocks(&mut baseline, &text);
            assert_eq!(String::from_utf8(baseline).unwrap(), expected, "{text:?}");
        }
    }
}
