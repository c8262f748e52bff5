//! Webhook authentication primitives on what an attacker controls: the
//! Basic header and the HMAC headers never panic, and a body signed with a
//! secret verifies with it (and not with another).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mapping::signature;

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let _ = signature::parse_basic(&text);
    let mut parts = text.splitn(4, '\n');
    let (secret, timestamp, header, body) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let now = 1_764_324_000;
    let _ = signature::verify(
        &[secret.as_bytes()],
        timestamp,
        header,
        body.as_bytes(),
        now,
    );
    let signed = signature::sign(secret.as_bytes(), now, body.as_bytes());
    assert!(
        signature::verify(
            &[secret.as_bytes()],
            &now.to_string(),
            &signed,
            body.as_bytes(),
            now
        )
        .is_ok()
    );
    let other = format!("{secret}x");
    assert!(
        signature::verify(
            &[other.as_bytes()],
            &now.to_string(),
            &signed,
            body.as_bytes(),
            now
        )
        .is_err()
    );
});
