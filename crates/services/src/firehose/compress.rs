//! Object compression for S3 destinations: UNCOMPRESSED, GZIP, ZIP, Snappy (the framing
//! format) and HADOOP_SNAPPY (Hadoop's block format), with AWS's default extensions.

use flate2::write::{DeflateEncoder, GzEncoder};
use flate2::Compression;
use std::io::Write;

/// The extension Firehose gives objects of each format when FileExtension is not set.
pub fn default_extension(format: &str) -> &'static str {
    match format {
        "GZIP" => ".gz",
        "ZIP" => ".zip",
        "Snappy" => ".snappy",
        "HADOOP_SNAPPY" => ".hsnappy",
        _ => "",
    }
}

/// Compresses `data`; `name` is the entry name inside a ZIP archive.
pub fn compress(format: &str, data: &[u8], name: &str) -> std::io::Result<Vec<u8>> {
    match format {
        "GZIP" => {
            let mut e = GzEncoder::new(Vec::new(), Compression::default());
            e.write_all(data)?;
            e.finish()
        }
        "ZIP" => zip_single(name, data),
        "Snappy" => {
            let mut e = snap::write::FrameEncoder::new(Vec::new());
            e.write_all(data)?;
            e.into_inner().map_err(|e| std::io::Error::other(e.to_string()))
        }
        "HADOOP_SNAPPY" => hadoop_snappy(data),
        _ => Ok(data.to_vec()),
    }
}

/// Hadoop's SnappyCodec block stream: per block, the uncompressed length, then chunks of
/// (compressed length, raw Snappy data), all lengths 4-byte big-endian.
const HADOOP_BLOCK: usize = 256 * 1024;

fn hadoop_snappy(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut encoder = snap::raw::Encoder::new();
    for block in data.chunks(HADOOP_BLOCK) {
        let compressed = encoder.compress_vec(block).map_err(|e| std::io::Error::other(e.to_string()))?;
        out.extend_from_slice(&(block.len() as u32).to_be_bytes());
        out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
        out.extend_from_slice(&compressed);
    }
    Ok(out)
}

/// A ZIP archive holding one deflated entry.
fn zip_single(name: &str, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut deflater = DeflateEncoder::new(Vec::new(), Compression::default());
    deflater.write_all(data)?;
    let compressed = deflater.finish()?;
    let crc = sluice_wire::eventstream::crc32(data);
    let name = name.as_bytes();
    let (csize, usize_) = (compressed.len() as u32, data.len() as u32);
    let mut out = Vec::new();
    // Local file header: version 20, no flags, deflate (8), no time/date.
    out.extend_from_slice(&[0x50, 0x4b, 0x03, 0x04, 20, 0, 0, 0, 8, 0, 0, 0, 0x21, 0]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&csize.to_le_bytes());
    out.extend_from_slice(&usize_.to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(name);
    out.extend_from_slice(&compressed);
    let central_offset = out.len() as u32;
    // Central directory header.
    out.extend_from_slice(&[0x50, 0x4b, 0x01, 0x02, 20, 0, 20, 0, 0, 0, 8, 0, 0, 0, 0x21, 0]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&csize.to_le_bytes());
    out.extend_from_slice(&usize_.to_le_bytes());
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&[0; 12]);
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(name);
    let central_size = out.len() as u32 - central_offset;
    // End of central directory.
    out.extend_from_slice(&[0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 1, 0, 1, 0]);
    out.extend_from_slice(&central_size.to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn gzip_and_snappy_round_trip() {
        let data = b"hello firehose ".repeat(100);
        let gz = compress("GZIP", &data, "x").unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        let sn = compress("Snappy", &data, "x").unwrap();
        let mut back = Vec::new();
        snap::read::FrameDecoder::new(&sn[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        let hs = compress("HADOOP_SNAPPY", &data, "x").unwrap();
        assert_eq!(u32::from_be_bytes(hs[0..4].try_into().unwrap()) as usize, data.len());
        let clen = u32::from_be_bytes(hs[4..8].try_into().unwrap()) as usize;
        assert_eq!(snap::raw::Decoder::new().decompress_vec(&hs[8..8 + clen]).unwrap(), data);
        assert_eq!(compress("UNCOMPRESSED", &data, "x").unwrap(), data);
    }

    #[test]
    fn zip_has_one_deflated_entry() {
        let data = b"zip me ".repeat(50);
        let z = compress("ZIP", &data, "obj").unwrap();
        assert_eq!(&z[0..4], &[0x50, 0x4b, 0x03, 0x04]);
        let csize = u32::from_le_bytes(z[18..22].try_into().unwrap()) as usize;
        let start = 30 + 3;
        let mut back = Vec::new();
        flate2::read::DeflateDecoder::new(&z[start..start + csize]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        assert_eq!(&z[z.len() - 22..z.len() - 18], &[0x50, 0x4b, 0x05, 0x06]);
    }
}
