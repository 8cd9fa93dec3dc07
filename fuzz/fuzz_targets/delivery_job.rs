//! Delivery jobs (SQS message bodies) from arbitrary bytes: parse never
//! panics, and whatever parses re-serialises to something that parses again.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shared::domain::DeliveryJob;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(job) = DeliveryJob::parse(text) {
        let again = DeliveryJob::parse(&job.to_json()).expect("a parsed job round-trips");
        assert_eq!(again, job);
    }
});
