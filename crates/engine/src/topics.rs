//! SNS state in the embedded backend: topics, subscriptions, FIFO topic dedup and the
//! delivery outbox, held in memory and written through the group-commit writer.

use crate::at_rest::{Sealer, StoredText};
use crate::db::{internal, SqlOp};
use crate::embedded::{sequence_number, undo_in, EmbeddedStore};
use crate::limits::DEDUP_WINDOW_MS;
use crate::queue_state::DedupEntry;
use crate::store::*;
use rusqlite::params;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

#[derive(Default)]
pub(crate) struct TopicRegistry {
    /// Shared with the callers of `get_topic`: every publish looks its topic up.
    topics: BTreeMap<String, Arc<TopicRecord>>,
    subscriptions: BTreeMap<String, SubscriptionRecord>,
    outbox: BTreeMap<i64, OutboxEntry>,
    dedup: HashMap<(String, String, String), DedupEntry>,
    next_outbox_id: i64,
    resources: BTreeMap<(String, String), serde_json::Value>,
}

impl TopicRegistry {
    pub(crate) fn load(conn: &rusqlite::Connection, now: u64, sealer: &Sealer) -> rusqlite::Result<TopicRegistry> {
        let mut reg = TopicRegistry { next_outbox_id: 1, ..Default::default() };
        let mut stmt = conn.prepare("SELECT record FROM topics")?;
        for row in stmt.query_map([], |r| r.get::<_, String>(0))? {
            let t: TopicRecord = decode(row?)?;
            reg.topics.insert(t.arn.clone(), Arc::new(t));
        }
        let mut stmt = conn.prepare("SELECT record FROM subscriptions")?;
        for row in stmt.query_map([], |r| r.get::<_, String>(0))? {
            let s: SubscriptionRecord = decode(row?)?;
            reg.subscriptions.insert(s.arn.clone(), s);
        }
        let mut stmt = conn.prepare("SELECT id, record FROM sns_outbox")?;
        for row in stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, StoredText::read(r.get_ref(1)?, sealer)?)))? {
            let (id, text) = row?;
            let mut e: OutboxEntry = decode(text)?;
            e.id = id;
            reg.next_outbox_id = reg.next_outbox_id.max(id + 1);
            reg.outbox.insert(id, e);
        }
        let mut stmt = conn.prepare(
            "SELECT topic_arn, scope, dedup_id, expires_ms, message_id, seq FROM topic_dedup WHERE expires_ms > ?1",
        )?;
        let mut rows = stmt.query(params![now as i64])?;
        while let Some(r) = rows.next()? {
            reg.dedup.insert(
                (r.get(0)?, r.get(1)?, r.get(2)?),
                DedupEntry { expires_ms: r.get::<_, i64>(3)? as u64, message_id: r.get(4)?, seq: r.get(5)? },
            );
        }
        Ok(reg)
    }

    pub(crate) fn prune(&mut self, now: u64) -> usize {
        let before = self.dedup.len();
        self.dedup.retain(|_, e| e.expires_ms > now);
        before - self.dedup.len()
    }
}

fn decode<T: serde::de::DeserializeOwned>(text: String) -> rusqlite::Result<T> {
    serde_json::from_str(&text).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

impl TopicRegistry {
    /// Whether an outbox entry's topic requests server-side encryption (`KmsMasterKeyId`).
    fn seals(&self, entry: &OutboxEntry) -> bool {
        self.subscriptions
            .get(&entry.subscription_arn)
            .and_then(|s| self.topics.get(&s.topic_arn))
            .is_some_and(|t| t.attributes.get("KmsMasterKeyId").is_some_and(|k| !k.is_empty()))
    }
}

fn record_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(internal)
}

impl TopicStore for EmbeddedStore {
    fn put_topic(&self, topic: TopicRecord) -> Result<Durable<()>, StoreError> {
        let op = SqlOp::UpsertTopic { arn: topic.arn.clone(), record: record_json(&topic)? };
        let topic = Arc::new(topic);
        let before = self.topic_registry().topics.insert(topic.arn.clone(), topic.clone());
        let undo = undo_in(&self.topics, move |reg| {
            if reg.topics.get(&topic.arn) == Some(&topic) {
                match before {
                    Some(b) => reg.topics.insert(topic.arn.clone(), b),
                    None => reg.topics.remove(&topic.arn),
                };
            }
        });
        self.commit_or_undo((), vec![op], None, undo)
    }

    fn get_topic(&self, arn: &str) -> Option<Arc<TopicRecord>> {
        self.topic_registry().topics.get(arn).cloned()
    }

    fn list_topics(&self, account: &str, region: &str) -> Vec<TopicRecord> {
        let reg = self.topic_registry();
        reg.topics
            .values()
            .filter(|t| t.account == account && t.region == region)
            .map(|t| TopicRecord::clone(t))
            .collect()
    }

    fn delete_topic(&self, arn: &str) -> Result<Durable<()>, StoreError> {
        let mut reg = self.topic_registry();
        let topic = reg.topics.remove(arn);
        let subs: Vec<String> =
            reg.subscriptions.values().filter(|s| s.topic_arn == arn).map(|s| s.arn.clone()).collect();
        let mut ops = vec![SqlOp::DeleteTopic { arn: arn.to_owned() }];
        let mut removed = Vec::with_capacity(subs.len());
        for s in subs {
            removed.extend(reg.subscriptions.remove(&s));
            ops.push(SqlOp::DeleteSubscription { arn: s });
        }
        reg.dedup.retain(|(t, _, _), _| t != arn);
        drop(reg);
        // Not written: the topic and its subscriptions are still on disk, so still served.
        let undo = undo_in(&self.topics, move |reg| {
            let Some(topic) = topic else { return };
            if reg.topics.contains_key(&topic.arn) {
                return;
            }
            reg.topics.insert(topic.arn.clone(), topic);
            for s in removed {
                reg.subscriptions.entry(s.arn.clone()).or_insert(s);
            }
        });
        self.commit_or_undo((), ops, None, undo)
    }

    fn put_subscription(&self, subscription: SubscriptionRecord) -> Result<Durable<()>, StoreError> {
        let op = SqlOp::UpsertSubscription {
            arn: subscription.arn.clone(),
            topic_arn: subscription.topic_arn.clone(),
            record: record_json(&subscription)?,
        };
        let before = self.topic_registry().subscriptions.insert(subscription.arn.clone(), subscription.clone());
        let undo = undo_in(&self.topics, move |reg| {
            if reg.subscriptions.get(&subscription.arn) == Some(&subscription) {
                match before {
                    Some(b) => reg.subscriptions.insert(subscription.arn.clone(), b),
                    None => reg.subscriptions.remove(&subscription.arn),
                };
            }
        });
        self.commit_or_undo((), vec![op], None, undo)
    }

    fn get_subscription(&self, arn: &str) -> Option<SubscriptionRecord> {
        self.topic_registry().subscriptions.get(arn).cloned()
    }

    fn list_subscriptions(&self, account: &str, region: &str) -> Vec<SubscriptionRecord> {
        let prefix = format!("arn:aws:sns:{region}:{account}:");
        self.topic_registry().subscriptions.values().filter(|s| s.arn.starts_with(&prefix)).cloned().collect()
    }

    fn subscriptions_of(&self, topic_arn: &str) -> Vec<SubscriptionRecord> {
        self.topic_registry().subscriptions.values().filter(|s| s.topic_arn == topic_arn).cloned().collect()
    }

    fn delete_subscription(&self, arn: &str) -> Result<Durable<()>, StoreError> {
        let removed = self.topic_registry().subscriptions.remove(arn);
        let undo = undo_in(&self.topics, move |reg| {
            if let Some(s) = removed {
                reg.subscriptions.entry(s.arn.clone()).or_insert(s);
            }
        });
        self.commit_or_undo((), vec![SqlOp::DeleteSubscription { arn: arn.to_owned() }], None, undo)
    }

    fn topic_sequence(
        &self,
        topic_arn: &str,
        scope: &str,
        dedup_id: &str,
    ) -> Result<Durable<(String, i64, bool)>, StoreError> {
        let now = self.clock.now_ms();
        let mut reg = self.topic_registry();
        let key = (topic_arn.to_owned(), scope.to_owned(), dedup_id.to_owned());
        if let Some(e) = reg.dedup.get(&key).filter(|e| e.expires_ms > now) {
            let value = (e.message_id.clone(), e.seq, true);
            drop(reg);
            // Answer only after the original's write is durable too.
            return self.commit(value, vec![], None);
        }
        let seq = self.next_seq.fetch_add(1, Ordering::SeqCst);
        let message_id = crate::store::new_message_id();
        let expires_ms = now + DEDUP_WINDOW_MS;
        reg.dedup.insert(key.clone(), DedupEntry { expires_ms, message_id: message_id.clone(), seq });
        drop(reg);
        // A dedup id whose write failed is given back, or the publisher's retry would be
        // answered as a duplicate of a message that was never delivered.
        let undo = undo_in(&self.topics, move |reg| {
            if reg.dedup.get(&key).is_some_and(|e| e.seq == seq) {
                reg.dedup.remove(&key);
            }
        });
        let ops = vec![
            SqlOp::InsertTopicDedup {
                topic_arn: topic_arn.to_owned(),
                scope: scope.to_owned(),
                dedup_id: dedup_id.to_owned(),
                expires_ms: expires_ms as i64,
                message_id: message_id.clone(),
                seq,
            },
            SqlOp::RaiseLastSeq { seq },
        ];
        self.commit_or_undo((message_id, seq, false), ops, None, undo)
    }

    fn add_outbox(&self, entries: Vec<OutboxEntry>) -> Result<Durable<Vec<i64>>, StoreError> {
        let mut reg = self.topic_registry();
        let mut ids = Vec::with_capacity(entries.len());
        let mut ops = Vec::with_capacity(entries.len());
        for mut e in entries {
            e.id = reg.next_outbox_id;
            reg.next_outbox_id += 1;
            ops.push(SqlOp::UpsertOutbox {
                id: e.id,
                subscription_arn: e.subscription_arn.clone(),
                record: StoredText::new(record_json(&e)?, reg.seals(&e).then_some(&self.sealer)),
                next_attempt_ms: e.next_attempt_ms as i64,
            });
            ids.push(e.id);
            reg.outbox.insert(e.id, e);
        }
        drop(reg);
        // Deliveries that were not written are not attempted: the publish failed.
        let unwritten = ids.clone();
        let undo = undo_in(&self.topics, move |reg| {
            for id in unwritten {
                reg.outbox.remove(&id);
            }
        });
        self.commit_or_undo(ids, ops, None, undo)
    }

    fn update_outbox(&self, entry: OutboxEntry) -> Result<Durable<()>, StoreError> {
        let mut reg = self.topic_registry();
        let op = SqlOp::UpsertOutbox {
            id: entry.id,
            subscription_arn: entry.subscription_arn.clone(),
            record: StoredText::new(record_json(&entry)?, reg.seals(&entry).then_some(&self.sealer)),
            next_attempt_ms: entry.next_attempt_ms as i64,
        };
        reg.outbox.insert(entry.id, entry);
        drop(reg);
        self.commit((), vec![op], None)
    }

    fn remove_outbox(&self, id: i64) -> Result<Durable<()>, StoreError> {
        self.topic_registry().outbox.remove(&id);
        self.commit((), vec![SqlOp::DeleteOutbox { id }], None)
    }

    fn outbox(&self) -> Vec<OutboxEntry> {
        self.topic_registry().outbox.values().cloned().collect()
    }

    fn put_resource(&self, kind: &str, key: &str, record: serde_json::Value) -> Result<Durable<()>, StoreError> {
        let op = SqlOp::UpsertResource { kind: kind.to_owned(), key: key.to_owned(), record: record.to_string() };
        self.topic_registry().resources.insert((kind.to_owned(), key.to_owned()), record);
        self.commit((), vec![op], None)
    }

    fn get_resource(&self, kind: &str, key: &str) -> Option<serde_json::Value> {
        self.topic_registry().resources.get(&(kind.to_owned(), key.to_owned())).cloned()
    }

    fn list_resources(&self, kind: &str, prefix: &str) -> Vec<(String, serde_json::Value)> {
        self.topic_registry()
            .resources
            .iter()
            .filter(|((k, key), _)| k == kind && key.starts_with(prefix))
            .map(|((_, key), v)| (key.clone(), v.clone()))
            .collect()
    }

    fn delete_resource(&self, kind: &str, key: &str) -> Result<Durable<()>, StoreError> {
        self.topic_registry().resources.remove(&(kind.to_owned(), key.to_owned()));
        self.commit((), vec![SqlOp::DeleteResource { kind: kind.to_owned(), key: key.to_owned() }], None)
    }
}

/// FIFO topic sequence numbers share the message counter, so they have SQS's shape.
pub fn topic_sequence_number(seq: i64) -> String {
    sequence_number(seq)
}
