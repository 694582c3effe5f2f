//! Any bytes, as (lossy UTF-8) trace text, into the trace loader; a trace
//! that parses is replayed through the hypervisor core over the image's
//! policy. Neither may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(trace) = pvgate_trace::parse(&text, "fuzz.trace.toml") {
        let _ = pvgate_trace::replay(&pvgate::POLICY, &trace);
    }
});
