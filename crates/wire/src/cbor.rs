//! The CBOR flavour of AWS JSON 1.1 (`application/x-amz-cbor-1.1`), which the Java SDKs
//! and the KCL send to Kinesis by default. Requests decode into the same JSON value a
//! JSON client sends (byte strings as base64, tag-1 timestamps as epoch seconds);
//! responses are encoded by walking the output shape, so blobs become byte strings and
//! timestamps tag 1 with integer epoch **milliseconds**, as the Java SDKs expect.

use crate::model::{Model, Shape};
use base64::Engine as _;
use minicbor::data::{Tag, Type};
use minicbor::{Decoder, Encoder};
use serde_json::{Map, Number, Value};

#[derive(Debug, thiserror::Error)]
#[error("malformed CBOR: {0}")]
pub struct CborError(String);

fn e(x: impl std::fmt::Display) -> CborError {
    CborError(x.to_string())
}

/// Maximum nesting accepted from a client.
const MAX_DEPTH: usize = 64;

pub fn decode(bytes: &[u8]) -> Result<Value, CborError> {
    let mut d = Decoder::new(bytes);
    let v = item(&mut d, 0)?;
    if d.position() != bytes.len() {
        return Err(CborError("trailing bytes after the CBOR item".into()));
    }
    Ok(v)
}

fn num(n: f64) -> Value {
    Number::from_f64(n).map(Value::Number).unwrap_or(Value::Null)
}

fn item(d: &mut Decoder<'_>, depth: usize) -> Result<Value, CborError> {
    if depth > MAX_DEPTH {
        return Err(CborError("nesting too deep".into()));
    }
    Ok(match d.datatype().map_err(e)? {
        Type::Bool => Value::Bool(d.bool().map_err(e)?),
        Type::Null => {
            d.null().map_err(e)?;
            Value::Null
        }
        Type::Undefined => {
            d.undefined().map_err(e)?;
            Value::Null
        }
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => Value::from(d.u64().map_err(e)?),
        Type::I8 | Type::I16 | Type::I32 | Type::I64 => Value::from(d.i64().map_err(e)?),
        Type::F16 | Type::F32 => num(f64::from(d.f32().map_err(e)?)),
        Type::F64 => num(d.f64().map_err(e)?),
        Type::Bytes => Value::String(base64::engine::general_purpose::STANDARD.encode(d.bytes().map_err(e)?)),
        Type::BytesIndef => {
            let mut all = Vec::new();
            for chunk in d.bytes_iter().map_err(e)? {
                all.extend_from_slice(chunk.map_err(e)?);
            }
            Value::String(base64::engine::general_purpose::STANDARD.encode(all))
        }
        Type::String => Value::String(d.str().map_err(e)?.to_owned()),
        Type::StringIndef => {
            let mut all = String::new();
            for chunk in d.str_iter().map_err(e)? {
                all.push_str(chunk.map_err(e)?);
            }
            Value::String(all)
        }
        Type::Array | Type::ArrayIndef => {
            let len = d.array().map_err(e)?;
            let mut out = Vec::new();
            match len {
                Some(n) => {
                    for _ in 0..n {
                        out.push(item(d, depth + 1)?);
                    }
                }
                None => {
                    while d.datatype().map_err(e)? != Type::Break {
                        out.push(item(d, depth + 1)?);
                    }
                    d.skip().map_err(e)?;
                }
            }
            Value::Array(out)
        }
        Type::Map | Type::MapIndef => {
            let len = d.map().map_err(e)?;
            let mut out = Map::new();
            let mut entry = |d: &mut Decoder<'_>| -> Result<(), CborError> {
                // Member names are text. Turning other keys into their JSON text, as this
                // once did, grows exponentially with nested map keys (found by fuzzing).
                let kind = d.datatype().map_err(e)?;
                let (Type::String | Type::StringIndef, Value::String(key)) = (kind, item(d, depth + 1)?) else {
                    return Err(CborError(format!("map keys must be text strings, not {kind:?}")));
                };
                out.insert(key, item(d, depth + 1)?);
                Ok(())
            };
            match len {
                Some(n) => {
                    for _ in 0..n {
                        entry(d)?;
                    }
                }
                None => {
                    while d.datatype().map_err(e)? != Type::Break {
                        entry(d)?;
                    }
                    d.skip().map_err(e)?;
                }
            }
            Value::Object(out)
        }
        Type::Tag => {
            let tag = d.tag().map_err(e)?;
            let inner = item(d, depth + 1)?;
            if tag == Tag::new(1) {
                // Epoch timestamps: the Java SDKs send integer milliseconds.
                match &inner {
                    Value::Number(n) if n.is_i64() || n.is_u64() => num(n.as_f64().unwrap_or(0.0) / 1000.0),
                    _ => inner,
                }
            } else {
                inner
            }
        }
        other => return Err(CborError(format!("unsupported CBOR type {other:?}"))),
    })
}

/// Encodes `value`, an instance of `shape`, as CBOR.
pub fn encode(model: &Model, shape: &str, value: &Value) -> Vec<u8> {
    let mut enc = Encoder::new(Vec::new());
    write(&mut enc, model, Some(shape), value);
    enc.into_writer()
}

/// Encodes a value without a shape (errors: `{"__type", "message"}`).
pub fn encode_plain(value: &Value) -> Vec<u8> {
    let mut enc = Encoder::new(Vec::new());
    write(&mut enc, &Model::empty(), None, value);
    enc.into_writer()
}

fn write(enc: &mut Encoder<Vec<u8>>, model: &Model, shape: Option<&str>, value: &Value) {
    let kind = shape.and_then(|s| model.shape(s));
    // Writes into a Vec cannot fail.
    let _ = match (kind, value) {
        (Some(Shape::Blob), Value::String(s)) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(s).unwrap_or_default();
            enc.bytes(&bytes).map(|_| ())
        }
        (Some(Shape::Timestamp), Value::Number(n)) => {
            let ms = (n.as_f64().unwrap_or(0.0) * 1000.0).round() as i64;
            enc.tag(Tag::new(1)).and_then(|e| e.i64(ms)).map(|_| ())
        }
        (Some(Shape::Structure { members, .. }), Value::Object(obj)) => {
            let present: Vec<_> = obj.iter().filter(|(_, v)| !v.is_null()).collect();
            let _ = enc.map(present.len() as u64);
            for (k, v) in present {
                let _ = enc.str(k);
                let target = members.iter().find(|m| &m.name == k).map(|m| m.target.as_str());
                write(enc, model, target, v);
            }
            Ok(())
        }
        (Some(Shape::List { member, .. }), Value::Array(items)) => {
            let member = member.clone();
            let _ = enc.array(items.len() as u64);
            for i in items {
                write(enc, model, Some(&member), i);
            }
            Ok(())
        }
        (Some(Shape::Map { value: vshape, .. }), Value::Object(obj)) => {
            let vshape = vshape.clone();
            let _ = enc.map(obj.len() as u64);
            for (k, v) in obj {
                let _ = enc.str(k);
                write(enc, model, Some(&vshape), v);
            }
            Ok(())
        }
        (_, Value::Null) => enc.null().map(|_| ()),
        (_, Value::Bool(b)) => enc.bool(*b).map(|_| ()),
        (_, Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => enc.u64(u).map(|_| ()),
            (None, Some(i)) => enc.i64(i).map(|_| ()),
            _ => enc.f64(n.as_f64().unwrap_or(0.0)).map(|_| ()),
        },
        (_, Value::String(s)) => enc.str(s).map(|_| ()),
        (_, Value::Array(items)) => {
            let _ = enc.array(items.len() as u64);
            for i in items {
                write(enc, model, None, i);
            }
            Ok(())
        }
        (_, Value::Object(obj)) => {
            let _ = enc.map(obj.len() as u64);
            for (k, v) in obj {
                let _ = enc.str(k);
                write(enc, model, None, v);
            }
            Ok(())
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by `fuzz/run.sh cbor`: nested maps used as map keys once grew exponentially
    /// (each level JSON-escaped the one below) until memory ran out.
    #[test]
    fn map_keys_must_be_text() {
        let mut nested_keys = vec![0xA1u8; 40];
        nested_keys.extend([0x61, b'k', 0x00]);
        nested_keys.extend(std::iter::repeat_n(0x00, 40));
        let err = decode(&nested_keys).unwrap_err();
        assert!(err.to_string().contains("map keys must be text strings"), "{err}");
        assert!(decode(&[0xA1, 0x01, 0x02]).is_err(), "an integer key");
        assert_eq!(decode(&[0xA1, 0x61, b'a', 0x02]).unwrap(), serde_json::json!({"a": 2}));
    }

    const MODEL: &str = r#"{"metadata":{"apiVersion":"x"},"shapes":{
        "Out":{"type":"structure","members":{"Data":{"shape":"B"},"At":{"shape":"T"},"N":{"shape":"I"}}},
        "B":{"type":"blob"},"T":{"type":"timestamp"},"I":{"type":"integer"}}}"#;

    #[test]
    fn timestamps_are_tag_1_integer_milliseconds_and_blobs_byte_strings() {
        let model = Model::from_json(MODEL).unwrap();
        let value = serde_json::json!({"Data": "AAEC", "At": 1545084650.987, "N": 7});
        let bytes = encode(&model, "Out", &value);
        // map(3), "Data" bytes(3) 00 01 02, "At" tag(1) uint64, "N" 7 (keys sorted by serde_json).
        let expected_at: [u8; 10] = [0xc1, 0x1b, 0, 0, 0x01, 0x67, 0xbe, 0x38, 0xc5, 0xeb];
        assert_eq!(bytes[0], 0xa3);
        let at = bytes.windows(expected_at.len()).position(|w| w == expected_at);
        assert!(at.is_some(), "tag 1 with 1545084650987 ms: {bytes:02x?}");
        assert!(bytes.windows(4).any(|w| w == [0x43, 0, 1, 2]), "byte string: {bytes:02x?}");
        let back = decode(&bytes).unwrap();
        assert_eq!(back["Data"], "AAEC");
        assert_eq!(back["At"].as_f64(), Some(1545084650.987));
        assert_eq!(back["N"], 7);
    }

    #[test]
    fn rejects_garbage_and_trailing_bytes() {
        assert!(decode(&[0xff]).is_err());
        assert!(decode(&[0xa0, 0x00]).is_err());
        assert_eq!(decode(&[0xa0]).unwrap(), serde_json::json!({}));
    }
}
