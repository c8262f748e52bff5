//! Credentials at rest: AES-256-GCM under a key from the environment.
//!
//! A stored value reads `v1:{key id}:{base64(nonce ‖ ciphertext ‖ tag)}`. The
//! associated data is `{account id}/{field}`, so a ciphertext copied to another
//! account or field does not decrypt. Two keys may be configured during a key
//! rotation: new values are written under the active key, old ones still read
//! under the previous key until `hostaway-admin accounts rewrap` re-encrypts them.

use std::fmt;

use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const FORMAT: &str = "v1";
const NONCE_LEN: usize = 12;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    #[error("credentials key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("stored credential is not in the v1 format")]
    BadFormat,
    #[error("stored credential was encrypted under key {0}, which is not configured")]
    UnknownKey(String),
    #[error(
        "stored credential does not decrypt under its key (tampered, or moved to another account)"
    )]
    Undecryptable,
    #[error("credential could not be encrypted")]
    Encrypt,
}

struct Key {
    id: String,
    cipher: Aes256Gcm,
}

impl Key {
    fn from_base64(encoded: &SecretString) -> Result<Self, CipherError> {
        let bytes = STANDARD
            .decode(encoded.expose_secret().trim())
            .map_err(|_| CipherError::BadKey)?;
        if bytes.len() != 32 {
            return Err(CipherError::BadKey);
        }
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| CipherError::BadKey)?;
        // The id names the key without revealing it.
        let id = hex::encode(&Sha256::digest(&bytes)[..4]);
        Ok(Self { id, cipher })
    }
}

pub struct CredentialCipher {
    active: Key,
    previous: Option<Key>,
}

impl fmt::Debug for CredentialCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialCipher")
            .field("active_key_id", &self.active.id)
            .field("previous_key_id", &self.previous.as_ref().map(|k| &k.id))
            .finish()
    }
}

impl CredentialCipher {
    pub fn new(
        active: &SecretString,
        previous: Option<&SecretString>,
    ) -> Result<Self, CipherError> {
        Ok(Self {
            active: Key::from_base64(active)?,
            previous: previous.map(Key::from_base64).transpose()?,
        })
    }

    /// 32 bytes from the operating system's generator (what keys are made
    /// of): for bearer tokens and generated webhook passwords.
    pub fn random_bytes() -> [u8; 32] {
        let key = aes_gcm::Key::<Aes256Gcm>::generate();
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(key.as_slice());
        bytes
    }

    /// A fresh random key, base64-encoded (for `hostaway-admin keys generate`).
    pub fn generate_key() -> SecretString {
        let key = aes_gcm::Key::<Aes256Gcm>::generate();
        SecretString::from(STANDARD.encode(key.as_slice()))
    }

    pub fn active_key_id(&self) -> &str {
        &self.active.id
    }

    pub fn encrypt(&self, context: &str, plaintext: &SecretString) -> Result<String, CipherError> {
        let nonce = Nonce::generate();
        let payload = Payload {
            msg: plaintext.expose_secret().as_bytes(),
            aad: context.as_bytes(),
        };
        // Only possible past GCM's 64 GiB message limit.
        let sealed = self
            .active
            .cipher
            .encrypt(&nonce, payload)
            .map_err(|_| CipherError::Encrypt)?;
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(nonce.as_slice());
        blob.extend_from_slice(&sealed);
        Ok(format!(
            "{FORMAT}:{}:{}",
            self.active.id,
            STANDARD.encode(blob)
        ))
    }

    pub fn decrypt(&self, context: &str, stored: &str) -> Result<SecretString, CipherError> {
        let mut parts = stored.splitn(3, ':');
        let (Some(FORMAT), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(CipherError::BadFormat);
        };
        let key = [Some(&self.active), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|k| k.id == key_id)
            .ok_or_else(|| CipherError::UnknownKey(key_id.to_owned()))?;
        let blob = STANDARD.decode(body).map_err(|_| CipherError::BadFormat)?;
        if blob.len() < NONCE_LEN + 16 {
            return Err(CipherError::BadFormat);
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| CipherError::BadFormat)?;
        let plain = key
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CipherError::Undecryptable)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| CipherError::Undecryptable)
    }

    /// Whether a stored value is under a key other than the active one.
    pub fn needs_rewrap(&self, stored: &str) -> bool {
        stored
            .split(':')
            .nth(1)
            .is_some_and(|key_id| key_id != self.active.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn round_trips_under_its_context() {
        let cipher = CredentialCipher::new(&CredentialCipher::generate_key(), None).unwrap();
        let stored = cipher
            .encrypt("59808/webhook_password", &secret("hunter2"))
            .unwrap();
        assert!(!stored.contains("hunter2"));
        assert_eq!(
            cipher
                .decrypt("59808/webhook_password", &stored)
                .unwrap()
                .expose_secret(),
            "hunter2"
        );
    }

    #[test]
    fn a_ciphertext_moved_to_another_account_or_field_does_not_decrypt() {
        let cipher = CredentialCipher::new(&CredentialCipher::generate_key(), None).unwrap();
        let stored = cipher
            .encrypt("59808/webhook_password", &secret("hunter2"))
            .unwrap();
        assert_eq!(
            cipher
                .decrypt("70001/webhook_password", &stored)
                .unwrap_err(),
            CipherError::Undecryptable
        );
        assert_eq!(
            cipher.decrypt("59808/api_key", &stored).unwrap_err(),
            CipherError::Undecryptable
        );
    }

    #[test]
    fn tampering_is_detected() {
        let cipher = CredentialCipher::new(&CredentialCipher::generate_key(), None).unwrap();
        let stored = cipher.encrypt("a/b", &secret("value")).unwrap();
        let (head, body) = stored.rsplit_once(':').unwrap();
        let mut blob = STANDARD.decode(body).unwrap();
        let last = blob.len() - 1;
        blob[last] ^= 1;
        let tampered = format!("{head}:{}", STANDARD.encode(blob));
        assert_eq!(
            cipher.decrypt("a/b", &tampered).unwrap_err(),
            CipherError::Undecryptable
        );
        assert_eq!(
            cipher.decrypt("a/b", "plaintext").unwrap_err(),
            CipherError::BadFormat
        );
    }

    #[test]
    fn a_rotation_reads_old_values_and_writes_new_ones() {
        let old_key = CredentialCipher::generate_key();
        let new_key = CredentialCipher::generate_key();
        let old = CredentialCipher::new(&old_key, None).unwrap();
        let stored = old.encrypt("a/b", &secret("v")).unwrap();

        let rotated = CredentialCipher::new(&new_key, Some(&old_key)).unwrap();
        assert!(rotated.needs_rewrap(&stored));
        assert_eq!(
            rotated.decrypt("a/b", &stored).unwrap().expose_secret(),
            "v"
        );
        assert!(!rotated.needs_rewrap(&rotated.encrypt("a/b", &secret("v")).unwrap()));

        let without_old = CredentialCipher::new(&new_key, None).unwrap();
        assert!(matches!(
            without_old.decrypt("a/b", &stored),
            Err(CipherError::UnknownKey(_))
        ));
    }

    #[test]
    fn bad_keys_are_refused_and_debug_shows_no_key() {
        assert_eq!(
            CredentialCipher::new(&secret("short"), None).unwrap_err(),
            CipherError::BadKey
        );
        let key = CredentialCipher::generate_key();
        let cipher = CredentialCipher::new(&key, None).unwrap();
        assert!(!format!("{cipher:?}").contains(key.expose_secret()));
    }
}
