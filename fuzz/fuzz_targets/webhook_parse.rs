//! A webhook body, as any sender could post it: the envelope parser and the
//! pre-authentication account probe never panic, and they agree on the
//! account a body names.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let probed = mapping::probe_account(body);
    let Ok(webhook) = mapping::parse_webhook(body) else {
        return;
    };
    if let (Some(probed), Some(parsed)) = (&probed, webhook.account()) {
        assert_eq!(
            probed, parsed,
            "the probe and the parser disagree on the account"
        );
    }
    if let mapping::Webhook::Event {
        account: Some(account),
        event,
        sent_at,
        data,
        ..
    } = &webhook
    {
        let id = mapping::webhook_id(account, *event, *sent_at, data);
        assert_eq!(id, mapping::webhook_id(account, *event, *sent_at, data));
        assert_eq!(id.len(), 32);
    }
    let account = domain::AccountId::parse("59808").unwrap_or_else(|_| unreachable!());
    assert_eq!(
        mapping::raw_webhook_id(&account, "unparsed", body).len(),
        32
    );
});
