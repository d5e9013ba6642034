//! Per-delivery-stream counters, after the CloudWatch metrics Firehose publishes
//! (IncomingRecords/IncomingBytes, DeliveryToS3.Records/Bytes/ObjectCount, records sent
//! to the error prefix, failed delivery attempts). They count since the process started
//! and are served in the Prometheus text format at `/_sluice/metrics`.

use sluice_engine::firehose::DeliveryStream;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub incoming_records: u64,
    pub incoming_bytes: u64,
    pub delivered_records: u64,
    pub delivered_bytes: u64,
    pub objects_written: u64,
    pub failed_records: u64,
    pub delivery_failures: u64,
}

/// Counters by delivery stream id.
#[derive(Default)]
pub struct Metrics {
    by_stream: Mutex<HashMap<i64, Counters>>,
}

impl Metrics {
    pub fn update(&self, stream_id: i64, change: impl FnOnce(&mut Counters)) {
        change(self.by_stream.lock().unwrap_or_else(|p| p.into_inner()).entry(stream_id).or_default());
    }

    pub fn get(&self, stream_id: i64) -> Counters {
        self.by_stream.lock().unwrap_or_else(|p| p.into_inner()).get(&stream_id).copied().unwrap_or_default()
    }

    /// The counters of `streams` in the Prometheus text exposition format.
    pub fn prometheus(&self, streams: &[DeliveryStream]) -> String {
        type Field = fn(&Counters) -> u64;
        const SERIES: [(&str, &str, Field); 7] = [
            ("incoming_records", "Records accepted (PutRecord, PutRecordBatch, SNS, Kinesis source).", |c| {
                c.incoming_records
            }),
            ("incoming_bytes", "Bytes of records accepted.", |c| c.incoming_bytes),
            ("delivered_records", "Records delivered to the destination.", |c| c.delivered_records),
            ("delivered_bytes", "Bytes delivered to the destination.", |c| c.delivered_bytes),
            ("objects_written", "S3 objects written to the destination prefix.", |c| c.objects_written),
            ("failed_records", "Records written to the error prefix.", |c| c.failed_records),
            ("delivery_failures", "Failed delivery attempts (retried).", |c| c.delivery_failures),
        ];
        let mut out = String::new();
        for (name, help, field) in SERIES {
            let _ = writeln!(out, "# HELP sluice_firehose_{name}_total {help}");
            let _ = writeln!(out, "# TYPE sluice_firehose_{name}_total counter");
            for s in streams {
                let _ = writeln!(
                    out,
                    "sluice_firehose_{name}_total{{account=\"{}\",region=\"{}\",delivery_stream=\"{}\"}} {}",
                    s.account,
                    s.region,
                    s.name,
                    field(&self.get(s.id))
                );
            }
        }
        out
    }
}
