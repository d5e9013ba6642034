//! KinesisStreamAsSource: each delivery stream reads every shard of its Kinesis stream
//! from the time it was created, and moves its per-shard checkpoint in the same commit
//! as the records it buffers, so a restart neither loses nor re-reads records.
//! KPL-aggregated records are split into their user records, as Firehose does.

use super::FirehoseService;
use serde_json::json;
use sluice_engine::streams::StreamKey;

/// Records read from a shard per poll (a bounded step; the next poll continues).
const READ_RECORDS: usize = 500;
const READ_BYTES: usize = 4 * 1024 * 1024;
/// KPL aggregation magic (awslabs/amazon-kinesis-producer aggregation-format.md).
const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

impl FirehoseService {
    /// Buffers new records of every Kinesis-sourced delivery stream; `true` if any exist.
    pub async fn poll_sources(&self) -> bool {
        let mut any = false;
        for stream in self.store.delivery_streams() {
            if stream.config["type"] != "KinesisStreamAsSource" {
                continue;
            }
            any = true;
            let source = &stream.config["source"];
            let Some(key) = source["KinesisStreamARN"].as_str().and_then(StreamKey::from_arn) else { continue };
            let Some(meta) = self.streams.stream(&key) else { continue };
            let start_ms = source["DeliveryStartMs"].as_u64().unwrap_or(0);
            let mut config = stream.config.clone();
            let mut records = Vec::new();
            for shard in &meta.shards {
                let position = match config["source"]["checkpoints"][shard.uid.to_string()].as_u64() {
                    Some(p) => p,
                    None => match self.streams.shard_seq_ix_at(shard.uid, start_ms) {
                        Ok(p) => p,
                        Err(_) => continue,
                    },
                };
                let Ok(read) = self.streams.read_records(&meta, shard.uid, position, READ_RECORDS, READ_BYTES) else {
                    continue;
                };
                if read.next_seq_ix != position || config["source"]["checkpoints"][shard.uid.to_string()].is_null() {
                    config["source"]["checkpoints"][shard.uid.to_string()] = json!(read.next_seq_ix);
                }
                for r in read.records {
                    records.extend(deaggregate(&r.data));
                }
            }
            if config == stream.config {
                continue;
            }
            let (count, bytes) = (records.len() as u64, records.iter().map(Vec::len).sum::<usize>() as u64);
            match self.store.buffer_records(stream.id, records, Some(config)) {
                Ok(d) => {
                    if d.wait().await.is_ok() {
                        self.count_incoming(stream.id, count, bytes);
                        self.buffered.notify_one();
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading the Kinesis source failed"),
            }
        }
        any
    }
}

fn varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *data.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Length-delimited fields `field` of a protobuf message, skipping others.
fn fields(data: &[u8], wanted: u64) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let tag = varint(data, &mut pos)?;
        match tag & 7 {
            0 => {
                varint(data, &mut pos)?;
            }
            1 => pos += 8,
            2 => {
                let len = varint(data, &mut pos)? as usize;
                let body = data.get(pos..pos + len)?;
                if tag >> 3 == wanted {
                    out.push(body);
                }
                pos += len;
            }
            5 => pos += 4,
            _ => return None,
        }
    }
    Some(out)
}

/// The user records of a KPL-aggregated record, or the record itself.
pub fn deaggregate(data: &[u8]) -> Vec<Vec<u8>> {
    let parsed = (|| {
        let body = data.strip_prefix(&KPL_MAGIC)?;
        if body.len() < 16 {
            return None;
        }
        let (message, checksum) = body.split_at(body.len() - 16);
        if sluice_md5::md5_one(message).as_slice() != checksum {
            return None;
        }
        // AggregatedRecord.records = 3; Record.data = 3.
        let records = fields(message, 3)?;
        records
            .into_iter()
            .map(|r| fields(r, 3).and_then(|d| d.first().map(|x| x.to_vec())))
            .collect::<Option<Vec<_>>>()
    })();
    parsed.unwrap_or_else(|| vec![data.to_vec()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, body: &[u8]) -> Vec<u8> {
        let mut out = vec![((n << 3) | 2) as u8, body.len() as u8];
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn kpl_aggregated_records_split_into_user_records() {
        let mut message = field(1, b"pk");
        for payload in [b"one".as_ref(), b"two"] {
            let mut record = vec![0x08, 0x00];
            record.extend(field(3, payload));
            message.extend(field(3, &record));
        }
        let mut blob = KPL_MAGIC.to_vec();
        blob.extend_from_slice(&message);
        blob.extend_from_slice(&sluice_md5::md5_one(&message));
        assert_eq!(deaggregate(&blob), vec![b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(deaggregate(b"plain"), vec![b"plain".to_vec()]);
        let mut corrupt = blob.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        assert_eq!(deaggregate(&corrupt), vec![corrupt.clone()], "a bad checksum means not aggregated");
    }
}
