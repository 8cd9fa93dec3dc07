//! The webhook URL rule on arbitrary strings: never panics, and an accepted
//! URL is accepted again from its own serialisation (so what the store keeps
//! is what delivery checks).
#![no_main]
use libfuzzer_sys::fuzz_target;
use shared::domain::validate_webhook_url;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for allow in [false, true] {
        if let Ok(url) = validate_webhook_url(text, allow) {
            let again =
                validate_webhook_url(url.as_str(), allow).expect("accepted URLs stay accepted");
            assert_eq!(again.as_str(), url.as_str());
        }
    }
});
