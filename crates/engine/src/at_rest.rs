//! Encryption at rest for resources that request server-side encryption (SQS
//! `SqsManagedSseEnabled`/`KmsMasterKeyId`, Kinesis StartStreamEncryption, Firehose
//! StartDeliveryStreamEncryption): AES-256-GCM under one local key. This is local-key
//! encryption, not KMS: whoever holds the key file reads the data.
//!
//! Sealed form: version byte, 96-bit random nonce, ciphertext, 128-bit tag. Random nonces
//! keep the chance of a repeat negligible up to about 2^32 sealed values per key (NIST
//! SP 800-38D); a deployment writing more than that should rotate keys (not yet offered).

use crate::store::StoreError;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};
use std::path::Path;

/// The key file created in the data directory when no key is configured.
pub const KEY_FILE: &str = "sluice.key";
const VERSION: u8 = 1;
/// Sealed on first use of a key and checked at every start, so that a wrong key is
/// reported at once rather than as unreadable messages later.
pub const KEY_CHECK_PLAINTEXT: &[u8] = b"sluice at-rest key check";

/// Cloned for the writer, which seals a group's new messages.
#[derive(Clone)]
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(AES-256-GCM)")
    }
}

/// A key given as 64 hexadecimal digits (surrounding whitespace ignored).
pub fn parse_key(text: &str) -> Result<[u8; 32], StoreError> {
    from_hex(text.trim())?
        .try_into()
        .map_err(|_| StoreError::EncryptionKey("an encryption key is 64 hexadecimal digits (32 bytes)".into()))
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn from_hex(text: &str) -> Result<Vec<u8>, StoreError> {
    let bad = || StoreError::EncryptionKey("not hexadecimal".into());
    if !text.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()).ok_or_else(bad))
        .collect()
}

impl Sealer {
    pub fn new(key: &[u8; 32]) -> Sealer {
        let unbound = UnboundKey::new(&AES_256_GCM, key).expect("AES-256 takes a 32-byte key");
        Sealer { key: LessSafeKey::new(unbound) }
    }

    /// The key in `path`, created (random, readable by the owner only) if missing.
    pub fn load_or_create(path: &Path) -> Result<Sealer, StoreError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Sealer::new(&parse_key(&text)?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                SystemRandom::new().fill(&mut key).map_err(|_| StoreError::Internal("no system randomness".into()))?;
                write_private(path, &to_hex(&key))
                    .map_err(|e| StoreError::Internal(format!("writing {}: {e}", path.display())))?;
                Ok(Sealer::new(&key))
            }
            Err(e) => Err(StoreError::Internal(format!("reading {}: {e}", path.display()))),
        }
    }

    pub fn seal(&self, plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(SEALED_OVERHEAD + plaintext.len());
        self.seal_into(plaintext, &mut out);
        out
    }

    /// `plaintext` sealed onto the end of `out`: the message log's writer seals a body
    /// straight into its group's buffer, with no buffer of its own to copy from.
    pub fn seal_into(&self, plaintext: &[u8], out: &mut Vec<u8>) {
        out.reserve(SEALED_OVERHEAD + plaintext.len());
        let start = out.len();
        out.resize(start + HEADER_LEN, 0);
        out.extend_from_slice(plaintext);
        self.seal_after(out, start);
    }

    /// `plaintext` sealed in its own buffer, grown by the header and tag: a Kinesis
    /// record or a Firehose buffer handed over whole is not copied into a second
    /// allocation. A buffer without that room is sealed into a new one instead: glibc's
    /// `realloc` frees the old block past its thread cache, where a `malloc` and a `free`
    /// stay within it.
    pub fn seal_vec(&self, mut buf: Vec<u8>) -> Vec<u8> {
        if buf.capacity() - buf.len() < SEALED_OVERHEAD {
            return self.seal(&buf);
        }
        let len = buf.len();
        buf.resize(HEADER_LEN + len, 0);
        buf.copy_within(0..len, HEADER_LEN);
        self.seal_after(&mut buf, 0);
        buf
    }

    /// Seals in place the plaintext that fills `buf` after a header's room at `start`:
    /// writes the header (version and a fresh nonce) there, encrypts, appends the tag.
    fn seal_after(&self, buf: &mut Vec<u8>, start: usize) {
        // The nonce comes from the thread's CSPRNG (ChaCha12 seeded from the OS and
        // reseeded as it goes) rather than a getrandom syscall per value: SSE is on by
        // default for SQS, so this runs for nearly every message sent.
        let nonce: [u8; NONCE_LEN] = rand::random();
        buf[start] = VERSION;
        buf[start + 1..start + HEADER_LEN].copy_from_slice(&nonce);
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut buf[start + HEADER_LEN..],
            )
            .expect("AES-GCM seals any length Sluice stores");
        buf.extend_from_slice(tag.as_ref());
    }

    /// `sealed` opened in its own buffer: the plaintext moves to the buffer's start as
    /// it is decrypted, so that a value read from disk into a buffer of its own (a
    /// received message's body) is not copied into a second one.
    pub fn open(&self, mut sealed: Vec<u8>) -> Result<Vec<u8>, StoreError> {
        let refused = || StoreError::EncryptionKey("stored data does not decrypt with this key".into());
        if sealed.len() < SEALED_OVERHEAD || sealed[0] != VERSION {
            return Err(refused());
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[1..HEADER_LEN]).map_err(|_| refused())?;
        let plain = self.key.open_within(nonce, Aad::empty(), &mut sealed, HEADER_LEN..).map_err(|_| refused())?;
        let n = plain.len();
        sealed.truncate(n);
        Ok(sealed)
    }

    /// Text sealed as bytes (SQS bodies).
    pub fn open_text(&self, sealed: Vec<u8>) -> Result<String, StoreError> {
        String::from_utf8(self.open(sealed)?)
            .map_err(|_| StoreError::EncryptionKey("decrypted text is not UTF-8".into()))
    }
}

/// A text value as stored: plain as TEXT, sealed as BLOB. SQLite types each value, so
/// a column holds both and a reader tells them apart without a flag.
#[derive(Debug, Clone)]
pub enum StoredText {
    Plain(String),
    Sealed(Vec<u8>),
}

impl StoredText {
    pub fn new(text: String, sealer: Option<&Sealer>) -> StoredText {
        match sealer {
            Some(s) => StoredText::Sealed(s.seal_vec(text.into_bytes())),
            None => StoredText::Plain(text),
        }
    }

    /// Reads a stored value back; a sealed one that does not open is a conversion failure.
    pub fn read(value: ValueRef<'_>, sealer: &Sealer) -> rusqlite::Result<String> {
        let stored = StoredText::from_column(value)?
            .ok_or_else(|| rusqlite::Error::InvalidColumnType(0, "stored text".into(), value.data_type()))?;
        stored.open(sealer).map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, value.data_type(), Box::new(e)))
    }

    /// The stored value of a column as it is, still sealed; `None` for NULL.
    pub fn from_column(value: ValueRef<'_>) -> rusqlite::Result<Option<StoredText>> {
        match value {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(b) => Ok(Some(StoredText::Sealed(b.to_vec()))),
            ValueRef::Text(t) => String::from_utf8(t.to_vec())
                .map(|t| Some(StoredText::Plain(t)))
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, value.data_type(), Box::new(e))),
            other => Err(rusqlite::Error::InvalidColumnType(0, "stored text".into(), other.data_type())),
        }
    }

    /// The text, opened with `sealer` when sealed.
    pub fn open(self, sealer: &Sealer) -> Result<String, StoreError> {
        match self {
            StoredText::Plain(text) => Ok(text),
            StoredText::Sealed(bytes) => sealer.open_text(bytes),
        }
    }
}

impl ToSql for StoredText {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            StoredText::Plain(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            StoredText::Sealed(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// A value that does not open, as the error of the read that found it.
pub fn read_failure(e: StoreError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, Box::new(e))
}

/// Bytes sealing adds to a value: version, nonce and tag.
pub const SEALED_OVERHEAD: usize = HEADER_LEN + 16;

/// A sealed value's header: its version byte and nonce.
const HEADER_LEN: usize = 1 + NONCE_LEN;

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let sealer = Sealer::new(&[7u8; 32]);
        let a = sealer.seal(b"secret message");
        let b = sealer.seal(b"secret message");
        assert_ne!(a, b, "fresh nonce per seal");
        assert!(!a.windows(6).any(|w| w == b"secret"), "ciphertext hides the plaintext");
        assert_eq!(sealer.open(a.clone()).unwrap(), b"secret message");
        assert_eq!(sealer.open(sealer.seal(b"")).unwrap(), b"");
        let mut tampered = a.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(sealer.open(tampered).is_err());
        assert!(Sealer::new(&[8u8; 32]).open(a.clone()).is_err(), "another key does not open it");
        assert!(sealer.open(b"short".to_vec()).is_err());
        // Sealed in the caller's buffer, with and without room to spare for header and tag.
        let body: Vec<u8> = (0..1024u32).map(|i| (i % 251) as u8).collect();
        let mut roomy = Vec::with_capacity(4096);
        roomy.extend_from_slice(&body);
        for buf in [body.clone(), roomy, Vec::new()] {
            let plain = buf.clone();
            assert_eq!(sealer.open(sealer.seal_vec(buf)).unwrap(), plain);
        }
        // Sealed onto the end of a buffer holding something before it.
        let mut group = b"before".to_vec();
        sealer.seal_into(&body, &mut group);
        assert_eq!(&group[..6], b"before");
        assert_eq!(group.len(), 6 + body.len() + SEALED_OVERHEAD);
        assert_eq!(sealer.open(group[6..].to_vec()).unwrap(), body);
    }

    #[test]
    fn key_file_is_created_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let sealed = Sealer::load_or_create(&path).unwrap().seal(b"x");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(parse_key(&text).unwrap().len(), 32);
        assert_eq!(
            Sealer::load_or_create(&path).unwrap().open(sealed.clone()).unwrap(),
            b"x",
            "the same key is reused"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(parse_key("abc").is_err());
        assert!(parse_key(&"zz".repeat(32)).is_err());
    }
}
